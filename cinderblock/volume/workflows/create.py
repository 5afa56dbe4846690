"""Create a volume: empty, from a snapshot, or as a clone of another volume."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable

from sqlalchemy import or_
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import messages
from cinderblock.model import transitions
from cinderblock.model.errors import DriverError, ServiceUnavailable
from cinderblock.model.records import RequestSpec
from cinderblock.volume.driver import ModelUpdate, VolumeDriver, VolumeRef
from cinderblock.volume.workflows.common import (
    WorkflowDeps,
    fail,
    model_values,
    retry_db,
    snapshot_lock,
    snapshot_ref,
    succeed,
    volume_lock,
    volume_ref,
)

LOG = logging.getLogger(__name__)
T = transitions.VOLUME_CREATE


def create_volume(deps: WorkflowDeps, volume_id: str, pool: str | None, spec: RequestSpec | None = None,
                  reschedule: Callable[[RequestSpec], None] | None = None) -> None:
    """`reschedule(spec)` hands a create the driver failed back to the scheduler (see _give_up)."""
    host = f"{deps.backend.service_host}#{pool}" if pool else deps.backend.service_host

    def claim() -> bool:
        # Take the volume for this backend (its zone is the backend's); one deleted meanwhile is skipped.
        # Already ours counts too: a commit whose answer the database connection lost did happen, and
        # this message is then run again (retry_db) — it must go on, not leave the volume `creating`.
        with deps.db.write() as session:
            return state.move(session, transitions.VOLUME_PLACE, volume_id,
                              or_(tables.Volume.host.is_(None), tables.Volume.host == host),
                              values={"host": host, "availability_zone": deps.backend.availability_zone})

    if not retry_db(claim, f"create of volume {volume_id}", budget=None):
        LOG.info("volume %s is no longer waiting to be created; skipped", volume_id)
        return
    try:
        # A database blink here is no failure of the backend's: wait for it (nothing was done yet).
        source_lock, job = retry_db(lambda: _read_job(deps, volume_id), f"create of volume {volume_id}")
        # The source (snapshot or volume) must not be deleted, on any host, while it is copied.
        with deps.locks.lock(source_lock) if source_lock else contextlib.nullcontext():
            update = job(deps.driver)
    except Exception as error:
        _give_up(deps, volume_id, host, pool, error, spec, reschedule)
        return
    if not succeed(deps.db, volume_id, T, None, model_values(update)):
        _drop_if_orphaned(deps, volume_id)
    deps.stats_changed()


def _give_up(deps: WorkflowDeps, volume_id: str, host: str, pool: str | None, error: Exception,
             spec: RequestSpec | None, reschedule: Callable[[RequestSpec], None] | None) -> None:
    """The driver failed the create. Remove whatever it left, then let go of the volume: the row
    never keeps the host of a backend that gave up on it. With the scheduler's spec the volume stays
    `creating` and goes back to the scheduler, which tries another pool or puts it in `error` with
    a user message; without one (or with no scheduler to take it) it goes to `error` here."""
    try:
        deps.driver.delete_volume(VolumeRef(id=volume_id, size_gb=0, pool=pool))
    except Exception:
        LOG.exception("volume %s: removing what the failed create left failed; the volume stays on %s",
                      volume_id, host)
        fail(deps.db, volume_id, T, error)  # keeps the host: a delete cleans up there
        return
    if spec is None or reschedule is None:
        fail(deps.db, volume_id, T, error, {"host": None})
        return
    LOG.warning("volume %s: create failed on %s (%s); asking the scheduler for another backend",
                volume_id, host, error, exc_info=(type(error), error, error.__traceback__))
    reason = f"{type(error).__name__}: {error}"[:1000]

    def let_go() -> bool:
        with deps.db.write() as session:
            return state.move(session, transitions.VOLUME_PLACE, volume_id, expect={"host": host},
                              values={"host": None, "error_reason": reason})

    if not retry_db(let_go, f"reschedule of volume {volume_id}"):
        return  # deleted or reset meanwhile
    try:
        reschedule(dataclasses.replace(spec, attempted=(*spec.attempted, host)))
    except ServiceUnavailable as unreachable:
        why = f"{reason}; no scheduler to retry: {unreachable.message}"[:1000]

        def give_up() -> None:
            with deps.db.write() as session:
                if state.move(session, T.fail, volume_id, expect={"host": None}, values={"error_reason": why}):
                    messages.record(session, spec.project_id, None, volume_id, messages.SCHEDULE_ALLOCATE_VOLUME,
                                    messages.DRIVER_FAILED)

        retry_db(give_up, f"create of volume {volume_id}")


def _read_job(deps: WorkflowDeps, volume_id: str) -> tuple[str | None, Callable[[VolumeDriver], ModelUpdate]]:
    with deps.db.read() as session:  # outside the write: SQLite has one writer at a time
        return _prepare(session, volume_id)


def _prepare(session: Session, volume_id: str) -> tuple[str | None, Callable[[VolumeDriver], ModelUpdate]]:
    """Read what the driver needs while the row is fresh; the storage work runs after the commit.
    Also names the lock of the source the copy reads, if any."""
    volume = load_volume(session, volume_id)
    if volume is None:
        raise DriverError(f"volume {volume_id} vanished before creation")
    ref = volume_ref(volume)
    progress = _progress_logger(volume_id)
    if volume.snapshot_id:
        snapshot = session.get(tables.Snapshot, volume.snapshot_id)
        source = load_volume(session, snapshot.volume_id) if snapshot else None
        if snapshot is None or source is None:
            raise DriverError(f"snapshot {volume.snapshot_id} no longer exists")
        snap_ref = snapshot_ref(snapshot, source)
        return snapshot_lock(snapshot.id), lambda driver: driver.create_volume_from_snapshot(ref, snap_ref, progress)
    if volume.source_volid:
        source = load_volume(session, volume.source_volid)
        if source is None:
            raise DriverError(f"source volume {volume.source_volid} no longer exists")
        source_ref = volume_ref(source)
        return volume_lock(source.id), lambda driver: driver.create_cloned_volume(ref, source_ref, progress)
    return None, lambda driver: driver.create_volume(ref)


def _progress_logger(volume_id: str):  # type: ignore[no-untyped-def]
    def report(percent: int) -> None:
        LOG.debug("volume %s: copy %d%% done", volume_id, percent)

    return report


def _drop_if_orphaned(deps: WorkflowDeps, volume_id: str) -> None:
    """The row left `creating` while we worked (force-deleted): remove what we made."""
    with deps.db.read() as session:
        volume = session.get(tables.Volume, volume_id)
        if volume is not None:
            return
    LOG.info("volume %s was deleted during creation; removing its storage", volume_id)
    deps.driver.delete_volume(VolumeRef(id=volume_id, size_gb=0))
