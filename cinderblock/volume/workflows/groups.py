"""Groups on one backend: create, add/remove members, delete, group snapshots, create from a source.

The domain claimed the transient status; these move the group, its members and its snapshots on.
A member that fails goes to error on its own and takes the group to error; the other members stay
as they were (Cinder's rule for the generic path).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.loading import load_volume
from cinderblock.db.repos import quotas
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions
from cinderblock.model.machine import Transition
from cinderblock.model.group_states import CG_GROUP_TYPE, GroupSnapshotStatus, GroupStatus
from cinderblock.model.states import SnapshotStatus, VolumeStatus
from cinderblock.model.usage import snapshot_usage
from cinderblock.volume.driver import SnapshotRef, SupportsConsistentGroupSnapshot, VolumeDriver, VolumeRef
from cinderblock.volume.workflows.common import WorkflowDeps, model_values, snapshot_ref, volume_ref
from cinderblock.volume.workflows.delete import destroy_volume_row

LOG = logging.getLogger(__name__)
GROUP_USAGE = {"groups": 1}


def consistent_capable(driver: VolumeDriver) -> bool:
    return isinstance(driver, SupportsConsistentGroupSnapshot)


def _set_group(deps: WorkflowDeps, group_id: str, transition: Transition, reason: str | None = None) -> None:
    with deps.db.write() as session:
        state.move(session, transition, group_id, values={"error_reason": reason})


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


# --- create / update ------------------------------------------------------------------------
def create_group(deps: WorkflowDeps, group_id: str) -> None:
    # Nothing to make on storage for a file backend: the group is a set of volumes of one backend.
    _set_group(deps, group_id, gtr.GROUP_CREATE.succeed)


def update_group(deps: WorkflowDeps, group_id: str, add_volumes: list[str], remove_volumes: list[str]) -> None:
    failed: list[str] = []
    with deps.db.write() as session:
        group = session.get(tables.Group, group_id)
        if group is None or group.status != GroupStatus.UPDATING:
            LOG.info("group %s is not being updated; skipped", group_id)
            return
        cg_id = group_id if group.group_type.name == CG_GROUP_TYPE else None
        for volume_id in add_volumes:
            # Checked again here: the volume may have changed since the API looked. Already a member:
            # this update runs again after a commit whose answer was lost (retry_db).
            if not state.move(session, transitions.VOLUME_JOIN_GROUP, volume_id,
                              or_(tables.Volume.group_id.is_(None), tables.Volume.group_id == group_id),
                              values={"group_id": group_id, "consistencygroup_id": cg_id}):
                failed.append(volume_id)
        for volume_id in remove_volumes:
            state.move(session, transitions.VOLUME_LEAVE_GROUP, volume_id, expect={"group_id": group_id},
                       values={"group_id": None, "consistencygroup_id": None})
    for volume_id in failed:
        LOG.error("group %s: volume %s could not be added (changed since the request)", group_id, volume_id)
        with deps.db.write() as session:
            state.move(session, transitions.VOLUME_JOIN_FAILED, volume_id, expect={"group_id": None},
                       values={"error_reason": f"could not be added to group {group_id}"})
    _set_group(deps, group_id, gtr.GROUP_UPDATE.fail if failed else gtr.GROUP_UPDATE.succeed,
               f"volumes {', '.join(failed)} could not be added" if failed else None)


# --- delete ---------------------------------------------------------------------------------
def delete_group(deps: WorkflowDeps, group_id: str) -> None:
    with deps.db.read() as session:
        group = session.get(tables.Group, group_id)
        if group is None or group.status != GroupStatus.DELETING:
            LOG.info("group %s is not being deleted; skipped", group_id)
            return
        project_id = group.project_id
        refs = [(v.id, volume_ref(v)) for v in session.scalars(select(tables.Volume).where(
            tables.Volume.group_id == group_id, tables.Volume.status == VolumeStatus.DELETING)).unique()]
    failed = 0
    for volume_id, ref in refs:
        try:
            deps.driver.remove_export(ref)
            began = time.time()
            deps.driver.delete_volume(ref)
        except Exception as error:  # this member only; the others go on
            LOG.error("group %s: deleting volume %s failed: %s", group_id, volume_id, error)
            failed += 1
            with deps.db.write() as session:
                state.move(session, transitions.VOLUME_GROUP_DELETE.fail, volume_id,
                           values={"error_reason": _reason(error)})
            continue
        destroy_volume_row(deps, volume_id, began)
    if failed:
        _set_group(deps, group_id, gtr.GROUP_DELETE.fail, f"{failed} volume(s) could not be deleted")
    else:
        with deps.db.write() as session:
            result = session.execute(delete(tables.Group).where(tables.Group.id == group_id,
                                                            tables.Group.status == GroupStatus.DELETING))
            if result.rowcount == 1:  # type: ignore[attr-defined]
                quotas.release(session, project_id, GROUP_USAGE)
    deps.stats_changed()


# --- group snapshots ------------------------------------------------------------------------
def _snapshot_refs(deps: WorkflowDeps, group_snapshot_id: str, status: str) -> list[SnapshotRef]:
    with deps.db.read() as session:
        refs = []
        for snapshot in session.scalars(select(tables.Snapshot).where(
                tables.Snapshot.group_snapshot_id == group_snapshot_id, tables.Snapshot.status == status)
                .order_by(tables.Snapshot.volume_id)):
            volume = load_volume(session, snapshot.volume_id)
            assert volume is not None
            refs.append(snapshot_ref(snapshot, volume))
        return refs


def create_group_snapshot(deps: WorkflowDeps, group_snapshot_id: str) -> None:
    with deps.db.read() as session:
        gsnap = session.get(tables.GroupSnapshot, group_snapshot_id)
        if gsnap is None or gsnap.status != GroupSnapshotStatus.CREATING:
            LOG.info("group snapshot %s is not being created; skipped", group_snapshot_id)
            return
    refs = _snapshot_refs(deps, group_snapshot_id, SnapshotStatus.CREATING)
    started = time.monotonic()
    if consistent_capable(deps.driver):
        ok = _consistent(deps, group_snapshot_id, refs)
    else:
        ok = _one_by_one(deps, group_snapshot_id, refs)
    LOG.info("group snapshot %s of %d volume(s): %s in %.0f ms", group_snapshot_id, len(refs),
             "done" if ok else "failed", (time.monotonic() - started) * 1000)
    deps.stats_changed()


def _consistent(deps: WorkflowDeps, group_snapshot_id: str, refs: list[SnapshotRef]) -> bool:
    driver = deps.driver
    assert isinstance(driver, SupportsConsistentGroupSnapshot)
    try:
        result = driver.create_group_snapshot(refs)
    except Exception as error:  # all or nothing: every member snapshot failed with it
        LOG.error("group snapshot %s failed: %s", group_snapshot_id, error, exc_info=error)
        _finish_snapshots(deps, group_snapshot_id, {ref.id: None for ref in refs}, _reason(error), True, None)
        return False
    LOG.info("group snapshot %s: writes held %.1f ms at %d export(s)", group_snapshot_id,
             result.write_pause_ms, len(refs))
    done = {ref.id: model_values(update_) for ref, update_ in zip(refs, result.updates, strict=True)}
    _finish_snapshots(deps, group_snapshot_id, done, None, True, result.write_pause_ms)
    return True


def _one_by_one(deps: WorkflowDeps, group_snapshot_id: str, refs: list[SnapshotRef]) -> bool:
    """No consistent capability: sequential snapshots, so the group snapshot says it is not consistent."""
    LOG.warning("group snapshot %s: driver cannot hold writes across volumes; snapshots are taken one by one "
                "and are NOT consistent with each other", group_snapshot_id)
    done: dict[str, dict[str, str] | None] = {}
    reason = None
    for ref in refs:
        try:
            done[ref.id] = model_values(deps.driver.create_snapshot(ref))
        except Exception as error:
            LOG.error("group snapshot %s: snapshot %s failed: %s", group_snapshot_id, ref.id, error)
            done[ref.id], reason = None, _reason(error)
    _finish_snapshots(deps, group_snapshot_id, done, reason, False, None)
    return reason is None


def _finish_snapshots(deps: WorkflowDeps, group_snapshot_id: str, done: Mapping[str, Mapping[str, Any] | None],
                      reason: str | None, consistent: bool, pause_ms: float | None) -> None:
    t = transitions.SNAPSHOT_CREATE
    with deps.db.write() as session:
        for snapshot_id, values in done.items():
            if values is None:
                state.move(session, t.fail, snapshot_id, values={"error_reason": reason})
            else:
                state.move(session, t.succeed, snapshot_id, values={"progress": "100%", **values})
        create = gtr.GROUP_SNAPSHOT_CREATE
        state.move(session, create.succeed if reason is None else create.fail, group_snapshot_id,
                   values={"error_reason": reason, "consistent": consistent, "write_pause_ms": pause_ms,
                           "taken_at": tables.utcnow()})


def delete_group_snapshot(deps: WorkflowDeps, group_snapshot_id: str) -> None:
    with deps.db.read() as session:
        gsnap = session.get(tables.GroupSnapshot, group_snapshot_id)
        if gsnap is None or gsnap.status != GroupSnapshotStatus.DELETING:
            LOG.info("group snapshot %s is not being deleted; skipped", group_snapshot_id)
            return
    refs = _snapshot_refs(deps, group_snapshot_id, SnapshotStatus.DELETING)
    failed = 0
    for ref in refs:
        try:
            deps.driver.delete_snapshot(ref)
        except Exception as error:
            failed += 1
            LOG.error("group snapshot %s: deleting snapshot %s failed: %s", group_snapshot_id, ref.id, error)
            with deps.db.write() as session:
                state.move(session, transitions.SNAPSHOT_GROUP_DELETE.fail, ref.id,
                           values={"error_reason": _reason(error)})
            continue
        with deps.db.write() as session:
            row = session.get(tables.Snapshot, ref.id)
            if row is not None:
                quotas.release(session, row.project_id, snapshot_usage(row.volume_size, _type_name(session, row)))
                session.delete(row)
    with deps.db.write() as session:
        if failed:
            state.move(session, gtr.GROUP_SNAPSHOT_DELETE.fail, group_snapshot_id)
        else:
            session.execute(delete(tables.GroupSnapshot).where(tables.GroupSnapshot.id == group_snapshot_id,
                                                           tables.GroupSnapshot.status == GroupSnapshotStatus.DELETING))
    deps.stats_changed()


def _type_name(session: Session, snapshot: tables.Snapshot) -> str | None:
    volume = session.get(tables.Volume, snapshot.volume_id)
    return volume.volume_type.name if volume is not None else None


# --- create from a source -------------------------------------------------------------------
def create_group_from_src(deps: WorkflowDeps, group_id: str) -> None:
    t = transitions.VOLUME_CREATE
    jobs: list[tuple[str, VolumeRef, SnapshotRef | None, VolumeRef | None]] = []
    with deps.db.read() as session:
        group = session.get(tables.Group, group_id)
        if group is None or group.status != GroupStatus.CREATING:
            LOG.info("group %s is not being created; skipped", group_id)
            return
        for volume in session.scalars(select(tables.Volume).where(
                tables.Volume.group_id == group_id, tables.Volume.status == t.transient)).unique():
            ref = volume_ref(volume)
            if volume.snapshot_id:
                snapshot = session.get(tables.Snapshot, volume.snapshot_id)
                source = load_volume(session, snapshot.volume_id) if snapshot else None
                src = snapshot_ref(snapshot, source) if snapshot and source else None
                jobs.append((volume.id, ref, src, None))
            else:
                source = load_volume(session, volume.source_volid) if volume.source_volid else None
                jobs.append((volume.id, ref, None, volume_ref(source) if source else None))
    failed = 0
    for volume_id, ref, snap, clone in jobs:
        try:
            if snap is not None:
                values = model_values(deps.driver.create_volume_from_snapshot(ref, snap))
            elif clone is not None:
                values = model_values(deps.driver.create_cloned_volume(ref, clone))
            else:
                raise RuntimeError(f"the source of volume {volume_id} no longer exists")
        except Exception as error:
            failed += 1
            LOG.error("group %s: creating volume %s failed: %s", group_id, volume_id, error)
            with deps.db.write() as session:
                state.move(session, t.fail, volume_id, values={"error_reason": _reason(error)})
            continue
        with deps.db.write() as session:
            state.move(session, t.succeed, volume_id, values={"error_reason": None, **values})
    _set_group(deps, group_id, gtr.GROUP_CREATE.fail if failed else gtr.GROUP_CREATE.succeed,
               f"{failed} volume(s) could not be created" if failed else None)
    deps.stats_changed()


