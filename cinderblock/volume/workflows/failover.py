"""Whole-backend failover, failback, freeze and thaw (the service's state machine is declared in
model/group_transitions.py, the volumes' and snapshots' moves in model/transitions.py):

    enabled | failed-over | failover-error --(API, compare-and-swap)--> failing-over
    failing-over --driver switched--> failed-over (target) | enabled (failback)
    failing-over --InvalidReplicationTarget--> what it was (nothing changed)
    failing-over --any other driver error--> failover-error, service disabled (the driver reverted)
    failing-over --service restarted mid-way--> failover-error (see `settle_after_start`)

The order is what keeps it recoverable: the driver switches first, then the service row records the
new active backend, then the volume rows follow in one transaction. A driver failure writes nothing
to any volume (OpenStack Cinder errors the non-replicated volumes before the driver runs, and leaves
them so when it fails). Failback gives the non-replicated volumes their status back when the primary
still holds them (Cinder leaves them in `error` for an admin's reset-state).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import or_, select

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions
from cinderblock.model.machine import Transition
from cinderblock.model.errors import DriverError, InvalidInput, InvalidReplicationTarget, InvalidState
from cinderblock.model.states import ReplicationStatus as R
from cinderblock.model.states import VolumeStatus
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    FailoverResult,
    SupportsReplication,
    VolumeFailover,
)
from cinderblock.volume.workflows.common import WorkflowDeps, model_values, retry_db, volume_ref

LOG = logging.getLogger(__name__)
VOLUME_BINARY = "cinder-volume"
# A volume whose replication is one of these is not replicated: it cannot fail over.
NOT_REPLICATED = frozenset({R.DISABLED.value, R.NOT_CAPABLE.value})
FAILED_OVER_REASON = "failed-over"
FROZEN_REASON = "frozen"


# --- service row helpers -------------------------------------------------------------------------

def _service_filter(deps: WorkflowDeps) -> tuple[Any, ...]:
    return (tables.Service.host == deps.backend.service_host, tables.Service.binary == VOLUME_BINARY)


def _service(deps: WorkflowDeps) -> tables.Service | None:
    with deps.db.read() as session:
        row = session.scalar(select(tables.Service).where(*_service_filter(deps)))
        if row is not None:
            session.expunge(row)
        return row


def _update_service(deps: WorkflowDeps, transition: Transition | None, to: str | None = None,
                    expect: dict[str, Any] | None = None, values: dict[str, Any] | None = None) -> bool:
    """The service row by a declared transition (None: no state changes, only `values` under `expect`)."""
    def write() -> bool:
        with deps.db.write() as session:
            ident = session.scalar(select(tables.Service.id).where(*_service_filter(deps)))
            if ident is None:
                return False
            if transition is None:
                return state.write_fields(session, "service", ident, expect=expect, values=values)
            return state.move(session, transition, ident, to=to, expect=expect, values=values)
    return retry_db(write, f"service row of {deps.backend.service_host}")


def _backend_volumes(deps: WorkflowDeps) -> list[tables.Volume]:
    host = deps.backend.service_host
    with deps.db.read() as session:
        rows = list(session.scalars(select(tables.Volume).where(
            or_(tables.Volume.host == host, tables.Volume.host.like(f"{host}#%")))))
        for row in rows:
            session.expunge(row)
        return rows


def replication_driver(deps: WorkflowDeps) -> SupportsReplication | None:
    driver = deps.driver
    return driver if isinstance(driver, SupportsReplication) else None


# --- start of the service ------------------------------------------------------------------------

def prepare_before_setup(deps: WorkflowDeps) -> None:
    """Tell the driver which backend serves now (the service row remembers it across restarts)."""
    driver = replication_driver(deps)
    service = _service(deps)
    if driver is not None and service is not None:
        driver.set_active_backend(service.active_backend_id or None)


def settle_after_start(deps: WorkflowDeps) -> None:
    """Bootstrap the service's replication status once the driver is set up.

    failing-over: the service stopped in the middle of a failover; the row still names the backend
    that served before it, which the driver serves again now. That is recorded as failover-error
    (disabled), so the admin sees it and runs the failover again. failed-over and failover-error are
    kept. Otherwise: enabled when the driver has replication targets, disabled when not.
    """
    driver = replication_driver(deps)
    capable = driver is not None and bool(driver.replication_targets())
    service = _service(deps)
    if service is None:
        return
    if service.replication_status == R.FAILING_OVER:
        LOG.error("%s restarted during a failover; it serves %s as before. Run the failover again.",
                  deps.backend.service_host, service.active_backend_id or "the primary")
        _update_service(deps, gtr.SERVICE_FAILOVER_ERROR, R.FAILOVER_ERROR,
                        values={"disabled": True, "disabled_reason": "failover interrupted by a restart"})
    elif service.replication_status not in (R.FAILED_OVER, R.FAILOVER_ERROR):
        wanted = R.ENABLED if capable else R.DISABLED
        if service.replication_status != wanted:
            _update_service(deps, gtr.SERVICE_REPLICATION_SETTLE, wanted,
                            expect={"replication_status": service.replication_status})


# --- failover and failback -----------------------------------------------------------------------

def failover_host(deps: WorkflowDeps, secondary_backend_id: str | None) -> None:
    service = _service(deps)
    if service is None or service.replication_status != R.FAILING_OVER:
        LOG.warning("failover of %s skipped: the service is not failing-over", deps.backend.service_host)
        return
    previous = R.FAILED_OVER if service.active_backend_id else R.ENABLED
    driver = replication_driver(deps)
    failback = secondary_backend_id == PRIMARY_BACKEND_ID
    volumes = _backend_volumes(deps)
    replicated = [v for v in volumes if v.replication_status not in NOT_REPLICATED]
    started = time.monotonic()
    LOG.info("%s of %s to %s: %d replicated volume(s), %d other(s)", "failback" if failback else "failover",
             deps.backend.service_host, secondary_backend_id or "a target of the driver's choice",
             len(replicated), len(volumes) - len(replicated))
    try:
        if driver is None:
            raise InvalidReplicationTarget(f"the {type(deps.driver).__name__} of this backend does not replicate")
        result = driver.failover_host([volume_ref(v) for v in replicated], secondary_backend_id,
                                      _progress_log(deps.backend.service_host))
    except InvalidReplicationTarget as error:
        LOG.warning("failover of %s refused, nothing changed: %s", deps.backend.service_host, error)
        _update_service(deps, gtr.SERVICE_FAILOVER_UNDONE, previous)
        return
    except Exception as error:  # the driver reverted to the previous backend (contract)
        LOG.error("failover of %s failed: %s", deps.backend.service_host, error,
                  exc_info=(type(error), error, error.__traceback__))
        _update_service(deps, gtr.SERVICE_FAILOVER_ERROR, R.FAILOVER_ERROR,
                        values={"disabled": True, "disabled_reason": f"failover-error: {error}"[:255]})
        return
    _finish(deps, service, result, replicated, [v for v in volumes if v.replication_status in NOT_REPLICATED],
            failback)
    failed = [u for u in result.volumes if not u.ok]
    LOG.info("%s now served by %s after %.2f s: %d volume(s) switched, %d failed%s",
             deps.backend.service_host, result.active_backend_id or "the primary", time.monotonic() - started,
             len(result.volumes) - len(failed), len(failed) + len(replicated) - len(result.volumes),
             f"; {result.message}" if result.message else "")
    deps.stats_changed()


def _progress_log(host: str) -> Callable[[int], None]:
    """Log a long failover's progress every 10 %."""
    logged = [-10]

    def progress(percent: int) -> None:
        if percent >= logged[0] + 10 or percent == 100:
            logged[0] = percent
            LOG.info("failover of %s: %d%% of the replicated volumes switched", host, percent)
    return progress


def _finish(deps: WorkflowDeps, service: tables.Service, result: FailoverResult,
            replicated: Sequence[tables.Volume], others: Sequence[tables.Volume], failback: bool) -> None:
    """The service row and every volume row in one transaction (the driver has switched): nobody reads a
    failed-over service whose volumes still say enabled."""
    if result.active_backend_id is None:
        service_to, service_values = R.ENABLED, {
            "active_backend_id": None, "disabled": service.frozen,
            "disabled_reason": FROZEN_REASON if service.frozen else None}
    else:
        service_to, service_values = R.FAILED_OVER, {"active_backend_id": result.active_backend_id,
                                                     "disabled": True, "disabled_reason": FAILED_OVER_REASON}
    outcomes = {u.volume_id: u for u in result.volumes}
    switched_to = R.ENABLED if result.active_backend_id is None else R.FAILED_OVER
    restorable = {v.id for v in others if failback and _primary_has(deps, v)}
    stored_snapshots = _stored_snapshots(deps) if failback else frozenset()

    def write() -> bool:
        with deps.db.write() as session:
            ident = session.scalar(select(tables.Service.id).where(*_service_filter(deps)))
            if ident is None or not state.move(session, gtr.SERVICE_FAILED_OVER, ident, to=service_to,
                                               values=service_values):
                # Done already when a commit's answer was lost and this is the retry; else someone else
                # changed the row.
                row = session.get(tables.Service, ident) if ident is not None else None
                return row is not None and row.replication_status == service_to and all(
                    getattr(row, k) == v for k, v in service_values.items())
            for volume in replicated:
                outcome = outcomes.get(volume.id) or VolumeFailover(volume.id, ok=False,
                                                                    error="the driver returned nothing for it")
                _apply_outcome(session, volume, outcome, switched_to)
                if outcome.ok and not outcome.snapshots_kept:
                    _error_snapshots(session, volume.id)
                elif outcome.ok and failback:
                    _restore_snapshots(session, volume.id, stored_snapshots)
            for volume in others:
                if not failback:
                    _error_volume(session, volume, R.NOT_CAPABLE)
                elif volume.id in restorable:
                    _restore_volume(session, volume)
            # Replicated groups follow their backend (their members did, above).
            host = deps.backend.service_host
            state.move_all(session, gtr.GROUP_BACKEND_FAILOVER,
                           or_(tables.Group.host == host, tables.Group.host.like(f"{host}#%")), to=switched_to)
            return True
    if not retry_db(write, f"service and volume rows of the failover of {deps.backend.service_host}"):
        LOG.error("service row of %s changed during the failover; volume rows not updated",
                  deps.backend.service_host)


def _apply_outcome(session: Any, volume: tables.Volume, outcome: VolumeFailover, switched_to: str) -> None:
    if not outcome.ok:
        LOG.error("volume %s did not fail over: %s", volume.id, outcome.error)
        _error_volume(session, volume, R.FAILOVER_ERROR, outcome.error)
        return
    values = model_values(outcome.update)
    values.pop("replication_status", None)
    if outcome.data_age_seconds:
        LOG.warning("volume %s is served from a copy %.1f s old", volume.id, outcome.data_age_seconds)
    state.move(session, transitions.VOLUME_FAILED_OVER, volume.id, to=switched_to, values=values)


def _error_volume(session: Any, volume: tables.Volume, replication_status: str, reason: str | None = None) -> None:
    """status → error with the old one in previous_status; its snapshots too."""
    values: dict[str, Any] = {}
    if volume.status != VolumeStatus.ERROR:
        values.update(status=VolumeStatus.ERROR, previous_status=volume.status)
    if reason:
        values["error_reason"] = f"failover: {reason}"[:1000]
    state.move(session, transitions.VOLUME_FAILOVER_ERROR, volume.id, to=replication_status, values=values)
    _error_snapshots(session, volume.id)


def _error_snapshots(session: Any, volume_id: str) -> None:
    state.move_all(session, transitions.SNAPSHOT_FAILOVER_ERROR, tables.Snapshot.volume_id == volume_id,
                   values={"previous_status": tables.Snapshot.status})


def _restore_snapshots(session: Any, volume_id: str, stored: frozenset[str]) -> None:
    """Snapshots a failover errored, back to their status where the primary still holds them."""
    if not stored:
        return
    state.move_all(session, transitions.SNAPSHOT_FAILBACK, tables.Snapshot.volume_id == volume_id,
                   tables.Snapshot.previous_status.is_not(None), tables.Snapshot.id.in_(sorted(stored)),
                   to=tables.Snapshot.previous_status, values={"previous_status": None})


def _stored_snapshots(deps: WorkflowDeps) -> frozenset[str]:
    try:
        return deps.driver.list_storage().snapshots
    except Exception as error:  # unknown: leave them for the admin
        LOG.warning("cannot list the snapshots the primary holds: %s", error)
        return frozenset()


def _primary_has(deps: WorkflowDeps, volume: tables.Volume) -> bool:
    try:
        return deps.driver.volume_exists(volume_ref(volume))
    except Exception as error:  # unknown: leave it for the admin
        LOG.warning("cannot tell whether the primary still holds volume %s: %s", volume.id, error)
        return False


def _restore_volume(session: Any, volume: tables.Volume) -> None:
    """A non-replicated volume the failover errored: back to what it was, its snapshots too."""
    if volume.status != VolumeStatus.ERROR or volume.replication_status != R.NOT_CAPABLE:
        return
    state.move(session, transitions.VOLUME_FAILBACK, volume.id, to=volume.previous_status or VolumeStatus.AVAILABLE,
               values={"previous_status": None, "replication_status": R.DISABLED})
    state.move_all(session, transitions.SNAPSHOT_FAILBACK, tables.Snapshot.volume_id == volume.id,
                   tables.Snapshot.previous_status.is_not(None),
                   to=tables.Snapshot.previous_status, values={"previous_status": None})


# --- freeze and thaw -----------------------------------------------------------------------------

def freeze(deps: WorkflowDeps) -> None:
    """The driver agrees first; only then is `frozen` written (with disabled, reason frozen)."""
    _set_frozen(deps, True)


def thaw(deps: WorkflowDeps) -> None:
    """The driver agrees first; a refusal leaves the service frozen and disabled (both agree)."""
    _set_frozen(deps, False)


def _set_frozen(deps: WorkflowDeps, frozen: bool) -> None:
    operation = "freeze_host" if frozen else "thaw_host"
    unchanged = (f"Invalid input received: No service could be changed: frozen in [{frozen}] "
                 f"must be {not frozen}.")
    service = _service(deps)
    if service is None:
        raise InvalidInput(f"No service found with host={deps.backend.service_host}")
    if service.frozen == frozen:
        raise InvalidInput(unchanged)
    driver = replication_driver(deps)
    if driver is not None:
        try:
            driver.freeze_backend() if frozen else driver.thaw_backend()
        except DriverError as error:
            raise InvalidState(f"Backend reported error during {operation} operation: {error}") from error
    values = ({"frozen": True, "disabled": True, "disabled_reason": FROZEN_REASON} if frozen
              else {"frozen": False, "disabled": False, "disabled_reason": None})
    if not _update_service(deps, None, expect={"frozen": not frozen}, values=values):
        raise InvalidInput(unchanged)
    LOG.info("%s %s", deps.backend.service_host, "frozen" if frozen else "thawed")
