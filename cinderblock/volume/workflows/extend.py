"""Extend a volume. The quota for the new size was taken by the domain, which also stored the size
asked for (`requested_size`); a failure gives the charge back in the same transaction as the status,
so no crash can leave one without the other."""
from __future__ import annotations

import logging

from sqlalchemy import select

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import quotas
from cinderblock.model import transitions
from cinderblock.model.usage import extend_usage
from cinderblock.volume.workflows.common import WorkflowDeps, retry_db, succeed, volume_lock, volume_ref

LOG = logging.getLogger(__name__)
# Either kind of extend (in-use or not) ends here: its success is back to the status before.
T = transitions.VOLUME_EXTEND_IN_USE


def extend_volume(deps: WorkflowDeps, volume_id: str, new_size: int) -> None:
    with deps.locks.lock(volume_lock(volume_id)):
        _extend_volume(deps, volume_id, new_size)


def _extend_volume(deps: WorkflowDeps, volume_id: str, new_size: int) -> None:
    with deps.db.read() as session:
        volume = load_volume(session, volume_id)
        if volume is None or volume.status != T.transient:
            return
        ref, previous = volume_ref(volume), volume.previous_status
    try:
        deps.driver.extend_volume(ref, new_size)
    except Exception as error:
        LOG.error("extend of volume %s failed: %s", volume_id, error, exc_info=error)
        fail_extend(deps, volume_id, f"{type(error).__name__}: {error}", new_size)
        return
    succeed(deps.db, volume_id, T, previous, {"size": new_size, "requested_size": None})
    deps.stats_changed()


def fail_extend(deps: WorkflowDeps, volume_id: str, reason: str, new_size: int | None = None) -> bool:
    """extending → error_extending, and the quota charged for the extend released, in one transaction.
    The size comes from the row (`requested_size`); `new_size` only for a row written before it existed."""

    def write() -> bool:
        with deps.db.write() as session:
            row = session.execute(select(tables.Volume.size, tables.Volume.requested_size, tables.Volume.project_id,
                                         tables.VolumeType.name).join(tables.VolumeType)
                                  .where(tables.Volume.id == volume_id)).first()
            if row is None:
                return False
            size, requested, project_id, type_name = row
            if not state.move(session, T.fail, volume_id, values={"error_reason": reason[:1000],
                                                                  "requested_size": None}):
                return False
            wanted = requested if requested is not None else new_size
            if wanted is not None and wanted > size:
                quotas.release(session, project_id, extend_usage(wanted - size, type_name))
            return True

    return retry_db(write, f"extend of volume {volume_id}")
