"""Group replication (API 3.38): enable, disable and fail over one replicated group's members.

The domain (domain/group_replication.py) moved the group and its members to `enabling`, `disabling`
or `failing-over` by compare-and-swap; these run the driver and move every claimed row on, again by
compare-and-swap on the transient replication status (a reset in between wins over a stale outcome).
The group's `status` only changes on failure (→ error), as in Cinder.

Outcomes:
- enable / disable: members and group → enabled / disabled; a driver error (or a member the driver
  reports as `error`) → group status and replication status `error`, members' replication status
  `error` (their status is left: their data is where it was).
- failover: each member the driver moved → `failed-over` (`enabled` once the primary serves it
  again) with the driver's ModelUpdate written to its row; a member it could not move →
  `failover-error`, status `error`, previous_status its status before; the group → the common value,
  or status/replication status `error` if a member failed. InvalidReplicationTarget: nothing
  changed, every row back to the replication status it had before the claim. Any other driver
  error: group status and replication status `error`, members' replication status `error`.
"""
from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions
from cinderblock.model.group_states import GroupStatus
from cinderblock.model.machine import Operation
from cinderblock.model.states import ReplicationStatus as R
from cinderblock.model.states import VolumeStatus
from cinderblock.volume.driver import SupportsGroupReplication, VolumeRef
from cinderblock.volume.workflows.common import WorkflowDeps, model_values, retry_db, volume_ref

LOG = logging.getLogger(__name__)


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


def _capable(deps: WorkflowDeps) -> SupportsGroupReplication:
    driver = deps.driver
    if not isinstance(driver, SupportsGroupReplication):
        raise DriverError(f"the driver of {deps.backend.service_host} ({type(driver).__name__}) does not support "
                          f"group replication")
    return driver


def _claimed(deps: WorkflowDeps, group_id: str, transient: str) -> list[tuple[VolumeRef, str]] | None:
    """The members claimed with the group (ref, status), or None when the group is not `transient`."""
    with deps.db.read() as session:
        group = session.get(tables.Group, group_id)
        if group is None or group.replication_status != transient:
            LOG.info("group %s is not %s; skipped", group_id, transient)
            return None
        volumes = session.scalars(select(tables.Volume).where(
            tables.Volume.group_id == group_id, tables.Volume.replication_status == transient)
            .order_by(tables.Volume.created_at, tables.Volume.id)).unique()
        return [(volume_ref(volume), volume.status) for volume in volumes]


def _without_status(update: Any) -> dict[str, Any]:
    values = model_values(update)
    values.pop("replication_status", None)
    return values


# The declared operations (group's, members') of each action.
ENABLE = (gtr.GROUP_ENABLE_REPLICATION, transitions.VOLUME_ENABLE_REPLICATION)
DISABLE = (gtr.GROUP_DISABLE_REPLICATION, transitions.VOLUME_DISABLE_REPLICATION)
FAILOVER = (gtr.GROUP_FAILOVER_REPLICATION, transitions.VOLUME_FAILOVER_REPLICATION)


def _fail_all(deps: WorkflowDeps, group_id: str, action: tuple[Operation, Operation], volume_ids: list[str],
              reason: str) -> None:
    """Group status and replication status → error; members' replication status → error."""
    group_op, volume_op = action

    def write() -> None:
        with deps.db.write() as session:
            for volume_id in volume_ids:
                state.move(session, volume_op.fail, volume_id)
            state.move(session, group_op.fail, group_id,
                       values={"status": GroupStatus.ERROR, "error_reason": reason})

    retry_db(write, f"replication outcome of group {group_id}")


# --- enable / disable -----------------------------------------------------------------------
def _toggle(deps: WorkflowDeps, group_id: str, enable: bool) -> None:
    action = ENABLE if enable else DISABLE
    group_op, volume_op = action
    transient, verb = group_op.transient, "enable" if enable else "disable"
    claimed = _claimed(deps, group_id, transient)
    if claimed is None:
        return
    refs = [ref for ref, _ in claimed]
    try:
        driver = _capable(deps)
        method = driver.enable_group_replication if enable else driver.disable_group_replication
        updates = tuple(method(group_id, refs))
        if len(updates) != len(refs):
            raise DriverError(f"the driver returned {len(updates)} update(s) for {len(refs)} volume(s)")
        failed = [ref.id for ref, update in zip(refs, updates, strict=True) if update.replication_status == R.ERROR]
        if failed:
            raise DriverError(f"the driver could not {verb} replication of volume(s) {', '.join(failed)}")
    except Exception as error:  # the whole group: a replicated group is one consistent set
        LOG.error("%s replication of group %s failed: %s", verb, group_id, error,
                  exc_info=(type(error), error, error.__traceback__))
        _fail_all(deps, group_id, action, [ref.id for ref in refs], _reason(error))
        return

    def write() -> None:
        with deps.db.write() as session:
            for ref, update in zip(refs, updates, strict=True):
                state.move(session, volume_op.succeed, ref.id, values=_without_status(update))
            if not state.move(session, group_op.succeed, group_id, values={"error_reason": None}):
                LOG.warning("group %s left %s before %s replication finished; outcome not written",
                            group_id, transient, verb)

    retry_db(write, f"{verb} replication of group {group_id}")
    LOG.info("replication of group %s (%d volume(s)) %sd", group_id, len(refs), verb)


def enable_replication(deps: WorkflowDeps, group_id: str) -> None:
    _toggle(deps, group_id, enable=True)


def disable_replication(deps: WorkflowDeps, group_id: str) -> None:
    _toggle(deps, group_id, enable=False)


# --- failover / failback --------------------------------------------------------------------
def _restore(deps: WorkflowDeps, group_id: str, volume_ids: list[str], previous: dict[str, str] | None,
             reason: str) -> None:
    """Nothing changed on storage: every claimed row back to its replication status before the claim."""
    before = previous or {}
    group_before = before.get(group_id, R.ENABLED)
    LOG.warning("failover of group %s refused, nothing changed: %s", group_id, reason)

    group_op, volume_op = FAILOVER

    def write() -> None:
        with deps.db.write() as session:
            for volume_id in volume_ids:
                state.move(session, volume_op.undo, volume_id, to=before.get(volume_id, group_before))
            state.move(session, group_op.undo, group_id, to=group_before)

    retry_db(write, f"failover of group {group_id}")


def failover_replication(deps: WorkflowDeps, group_id: str, secondary_backend_id: str | None,
                         allow_attached_volume: bool, previous: dict[str, str] | None = None) -> None:
    claimed = _claimed(deps, group_id, R.FAILING_OVER)
    if claimed is None:
        return
    refs = [ref for ref, _ in claimed]
    ids = [ref.id for ref in refs]
    attached = [ref.id for ref, status in claimed if status == VolumeStatus.IN_USE]
    if attached and not allow_attached_volume:  # attached since the API looked
        _restore(deps, group_id, ids, previous,
                 f"volume(s) {', '.join(attached)} are attached and allow_attached_volume is false")
        return
    try:
        result = _capable(deps).failover_group(group_id, refs, secondary_backend_id)
    except InvalidReplicationTarget as error:
        _restore(deps, group_id, ids, previous, _reason(error))
        return
    except Exception as error:
        LOG.error("failover of group %s to %s failed: %s", group_id, secondary_backend_id, error,
                  exc_info=(type(error), error, error.__traceback__))
        _fail_all(deps, group_id, FAILOVER, ids, _reason(error))
        return

    # The primary serves the members again (failback to "default"): enabled; else failed-over.
    done = R.ENABLED if result.active_backend_id is None else R.FAILED_OVER
    outcomes = {outcome.volume_id: outcome for outcome in result.volumes}
    failed: list[str] = []
    for ref in refs:
        outcome = outcomes.get(ref.id)
        if outcome is None or not outcome.ok:
            failed.append(ref.id)
        elif outcome.data_age_seconds:
            LOG.warning("group %s: volume %s now serves data %.1f s old (writes after that are lost)",
                        group_id, ref.id, outcome.data_age_seconds)
    if result.message:
        LOG.warning("failover of group %s: %s", group_id, result.message)

    group_op, volume_op = FAILOVER

    def write() -> None:
        with deps.db.write() as session:
            for ref in refs:
                outcome = outcomes.get(ref.id)
                if ref.id not in failed:
                    assert outcome is not None
                    state.move(session, volume_op.succeed, ref.id, to=done, values=_without_status(outcome.update))
                    continue
                row = session.get(tables.Volume, ref.id)
                if row is None or row.replication_status != R.FAILING_OVER:
                    continue
                why = (outcome.error if outcome is not None else None) or "the driver reported no outcome"
                state.move(session, transitions.VOLUME_GROUP_FAILOVER_ERROR, ref.id, expect={"status": row.status},
                           values={"status": VolumeStatus.ERROR, "previous_status": row.status,
                                   "error_reason": f"failover of group {group_id} failed: {why}"[:1000]})
            if failed:
                moved = state.move(session, group_op.fail, group_id, values={
                    "status": GroupStatus.ERROR,
                    "error_reason": f"failover failed for volume(s) {', '.join(failed)}"[:1000]})
            else:
                moved = state.move(session, group_op.succeed, group_id, to=done, values={"error_reason": None})
            if not moved:
                LOG.warning("group %s left failing-over before its failover finished; outcome not written", group_id)

    retry_db(write, f"failover of group {group_id}")
    if failed:
        LOG.error("failover of group %s to %s: volume(s) %s failed (%s)", group_id,
                  result.active_backend_id or "the primary", ", ".join(failed),
                  "; ".join(f"{i}: {outcomes[i].error}" for i in failed if i in outcomes))
    else:
        LOG.info("group %s (%d volume(s)) now served by %s", group_id, len(refs),
                 result.active_backend_id or "the primary")
