"""Snapshots: create, delete, and revert a volume to its latest snapshot."""
from __future__ import annotations

import logging
import time

from sqlalchemy import delete, update

from cinderblock.db import tables
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import quotas
from cinderblock.model import transitions
from cinderblock.model.errors import DatabaseUnavailable
from cinderblock.model.usage import snapshot_usage
from cinderblock.volume.driver import ProgressCallback
from cinderblock.volume.workflows.common import (
    WorkflowDeps,
    fail,
    model_values,
    retry_db,
    snapshot_lock,
    snapshot_ref,
    succeed,
    volume_lock,
)

LOG = logging.getLogger(__name__)


def _progress_writer(deps: WorkflowDeps, snapshot_id: str) -> ProgressCallback:
    """Writes `progress` at most every half second, so long copies show it without flooding."""
    last = [0.0, -1]

    def report(percent: int) -> None:
        now = time.monotonic()
        if percent != 100 and (now - last[0] < 0.5 or percent == last[1]):
            return
        last[0], last[1] = now, percent
        LOG.info("snapshot %s: %d%% copied", snapshot_id, percent)
        try:
            with deps.db.write() as session:
                session.execute(update(tables.Snapshot).where(tables.Snapshot.id == snapshot_id)
                                .values(progress=f"{percent}%"))
        except DatabaseUnavailable:  # progress is informative: the copy goes on
            LOG.warning("snapshot %s: progress not recorded (database unreachable)", snapshot_id)

    return report


def create_snapshot(deps: WorkflowDeps, snapshot_id: str) -> None:
    t = transitions.SNAPSHOT_CREATE
    with deps.db.read() as session:
        snapshot = session.get(tables.Snapshot, snapshot_id)
        volume = load_volume(session, snapshot.volume_id) if snapshot else None
        if snapshot is None or volume is None or snapshot.status != t.transient:
            LOG.info("snapshot %s is not being created; skipped", snapshot_id)
            return
        ref = snapshot_ref(snapshot, volume)
    try:
        # The volume's lock: no extend or revert of it, on any host, during the copy.
        with deps.locks.lock(volume_lock(ref.volume.id)):
            update_ = deps.driver.create_snapshot(ref, _progress_writer(deps, snapshot_id))
    except Exception as error:
        fail(deps.db, snapshot_id, t, error)
        return
    succeed(deps.db, snapshot_id, t, None, {"progress": "100%", **model_values(update_)})
    deps.stats_changed()


def delete_snapshot(deps: WorkflowDeps, snapshot_id: str) -> None:
    # Held across the storage work: no volume is created from it, on any host, while it goes.
    with deps.locks.lock(snapshot_lock(snapshot_id)):
        _delete_snapshot(deps, snapshot_id)


def _delete_snapshot(deps: WorkflowDeps, snapshot_id: str) -> None:
    t = transitions.SNAPSHOT_DELETE
    with deps.db.read() as session:
        snapshot = session.get(tables.Snapshot, snapshot_id)
        volume = load_volume(session, snapshot.volume_id) if snapshot else None
        if snapshot is None or volume is None or snapshot.status != t.transient:
            LOG.info("snapshot %s is not being deleted; skipped", snapshot_id)
            return
        ref = snapshot_ref(snapshot, volume)
        usage = snapshot_usage(snapshot.volume_size, volume.volume_type.name)
        project_id = snapshot.project_id
    try:
        deps.driver.delete_snapshot(ref)
    except Exception as error:
        fail(deps.db, snapshot_id, t, error)
        return

    def destroy_row() -> None:
        with deps.db.write() as session:
            result = session.execute(delete(tables.Snapshot).where(
                tables.Snapshot.id == snapshot_id, tables.Snapshot.status == t.transient))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                quotas.release(session, project_id, usage)

    retry_db(destroy_row, f"delete of snapshot {snapshot_id}")
    deps.stats_changed()


def revert_to_snapshot(deps: WorkflowDeps, volume_id: str, snapshot_id: str) -> None:
    with deps.locks.lock(volume_lock(volume_id)), deps.locks.lock(snapshot_lock(snapshot_id)):
        _revert_to_snapshot(deps, volume_id, snapshot_id)


def _revert_to_snapshot(deps: WorkflowDeps, volume_id: str, snapshot_id: str) -> None:
    volume_t, snap_t = transitions.VOLUME_REVERT, transitions.SNAPSHOT_RESTORE
    with deps.db.read() as session:
        snapshot = session.get(tables.Snapshot, snapshot_id)
        volume = load_volume(session, volume_id)
        if snapshot is None or volume is None:
            return
        ref = snapshot_ref(snapshot, volume)
    try:
        deps.driver.revert_to_snapshot(ref.volume, ref)
    except Exception as error:
        fail(deps.db, volume_id, volume_t, error)
        succeed(deps.db, snapshot_id, snap_t, None)
        return
    succeed(deps.db, volume_id, volume_t, None)
    succeed(deps.db, snapshot_id, snap_t, None)
