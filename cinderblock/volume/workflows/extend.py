"""Extend a volume. The quota for the new size was taken by the domain; a failure gives it back."""
from __future__ import annotations

from cinderblock.db import tables
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import quotas
from cinderblock.model import transitions
from cinderblock.model.usage import extend_usage
from cinderblock.volume.workflows.common import WorkflowDeps, fail, retry_db, succeed, volume_lock, volume_ref


def extend_volume(deps: WorkflowDeps, volume_id: str, new_size: int) -> None:
    with deps.locks.lock(volume_lock(volume_id)):
        _extend_volume(deps, volume_id, new_size)


def _extend_volume(deps: WorkflowDeps, volume_id: str, new_size: int) -> None:
    t = transitions.VOLUME_EXTEND
    with deps.db.read() as session:
        volume = load_volume(session, volume_id)
        if volume is None or volume.status != t.transient:
            return
        ref, previous = volume_ref(volume), volume.previous_status
        usage = extend_usage(new_size - volume.size, volume.volume_type.name)
        project_id = volume.project_id
    try:
        deps.driver.extend_volume(ref, new_size)
    except Exception as error:
        fail(deps.db, tables.Volume, volume_id, t, error)

        def release() -> None:
            with deps.db.write() as session:
                quotas.release(session, project_id, usage)

        retry_db(release, f"extend of volume {volume_id}")
        return
    succeed(deps.db, tables.Volume, volume_id, t, previous, {"size": new_size})
    deps.stats_changed()
