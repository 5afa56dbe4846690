"""Delete a volume: storage and export first, then the row, then the quota it held."""
from __future__ import annotations

import logging
import time

from sqlalchemy import delete, func, select

from cinderblock.db import tables
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import quotas
from cinderblock.model import transitions
from cinderblock.model.usage import volume_usage
from cinderblock.model.errors import DriverError
from cinderblock.model.states import SnapshotStatus
from cinderblock.volume.workflows import snapshot
from cinderblock.volume.workflows.common import WorkflowDeps, fail, retry_db, volume_lock, volume_ref

LOG = logging.getLogger(__name__)
T = transitions.VOLUME_DELETE


def delete_volume(deps: WorkflowDeps, volume_id: str) -> None:
    # Held across the storage work: no clone reads the volume, on any host, while it goes.
    with deps.locks.lock(volume_lock(volume_id)):
        _delete_volume(deps, volume_id)


def _delete_volume(deps: WorkflowDeps, volume_id: str) -> None:
    with deps.db.read() as session:
        volume = load_volume(session, volume_id)
        if volume is None or volume.status != T.transient:
            LOG.info("volume %s is not being deleted; skipped", volume_id)
            return
        ref = volume_ref(volume)
        cascade = [s.id for s in session.scalars(select(tables.Snapshot).where(
            tables.Snapshot.volume_id == volume_id, tables.Snapshot.status == SnapshotStatus.DELETING))]
    for snapshot_id in cascade:  # delete --cascade: the snapshots go first
        snapshot.delete_snapshot(deps, snapshot_id)
    try:
        if cascade:  # without cascade the domain refused volumes with snapshots
            with deps.db.read() as session:
                left = session.scalar(select(func.count()).where(tables.Snapshot.volume_id == volume_id))
            if left:
                raise DriverError(f"{left} snapshot(s) of the volume could not be deleted")
        deps.driver.remove_export(ref)
        began = time.time()
        deps.driver.delete_volume(ref)
    except Exception as error:
        fail(deps.db, volume_id, T, error)
        return
    destroy_volume_row(deps, volume_id, began)
    deps.stats_changed()


def destroy_volume_row(deps: WorkflowDeps, volume_id: str, began: float) -> None:
    """The row and its quota go; the schedulers get the room back (storage work began at `began`)."""
    freed = retry_db(lambda: _destroy(deps, volume_id), f"delete of volume {volume_id}")
    if freed is not None:
        deps.capacity_freed(volume_id, freed[0], freed[1], began)


def _destroy(deps: WorkflowDeps, volume_id: str) -> tuple[str | None, int] | None:
    """(pool, GiB) of the row this removed; None when another already did."""
    with deps.db.write() as session:
        row = session.execute(select(tables.Volume.size, tables.Volume.project_id, tables.VolumeType.name,
                                     tables.Volume.host)
                              .join(tables.VolumeType).where(tables.Volume.id == volume_id)).first()
        if row is None:
            return None
        size, project_id, type_name, host = row
        usage = volume_usage(size, type_name)
        result = session.execute(delete(tables.Volume).where(
            tables.Volume.id == volume_id, tables.Volume.status == T.transient))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        quotas.release(session, project_id, usage)
    return (host or "").partition("#")[2] or None, size
