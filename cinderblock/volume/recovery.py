"""At start-up: bring what a crash left in a transient state to an end state, checking storage.

A status written by a dead process says only what was *started*. The storage says what happened:
the driver lists what it holds (`list_storage`), taken BEFORE the rows are read, so anything created
meanwhile by another service (a row always exists before its storage, and outlives it) is never
mistaken for an orphan. Then:

- rows of this service in a transient state reach an end state (table below);
- settled rows whose storage is gone (`available` with no file...) become `error`: no row points
  at nothing without saying so;
- storage and exports with no row at all (in any service) are removed: nothing is leaked.

    volume  creating   storage exists → available, else error
            deleting   the delete runs again (idempotent)
            extending  the size asked for (`requested_size`, charged to quota) already on storage
                       → that size and the previous status; else the extend runs again (a
                       failure then gives the charge back). A row from before `requested_size`:
                       storage at a larger size → that size, else error_extending
            reverting  error (the bytes may be either version); its snapshot goes back to available
            attaching  in-use when it has attachments, else available (a reservation died with us)
            detaching  in-use when it still has attachments, else available and the export removed
    snapshot creating  storage exists → available, else error
            deleting   the delete runs again
            restoring  available
    group    creating   (no storage of its own) error when a member's creation failed, else available
             updating   available: the membership is what the rows say (one transaction)
             deleting   the delete runs again (its members' deletes ran just before)
    group snapshot creating | updating  available when every member snapshot is, else error
             deleting   the delete runs again (its members' deletes ran just before)
    group replication  enabling | disabling | failing-over (an API 3.38 action the crash cut off)
            → error, the group and its members alike: the driver may have done part of it, and
            the admin can disable or fail over again from error
"""
from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

from sqlalchemy import func, select

from cinderblock.db import tables
from cinderblock.model.errors import DriverError
from cinderblock.db import transition as state
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions as t
from cinderblock.model.machine import Transition
from cinderblock.model.group_states import GroupSnapshotStatus, GroupStatus
from cinderblock.model.states import SnapshotStatus, VolumeStatus
from cinderblock.volume.driver import SnapshotRef, StorageListing, VolumeRef
from cinderblock.volume.workflows import delete, extend, groups, snapshot
from cinderblock.volume.workflows.common import WorkflowDeps, volume_ref

LOG = logging.getLogger(__name__)
GiB = 1024**3
# Settled statuses that promise the storage exists.
HAS_STORAGE = frozenset({VolumeStatus.AVAILABLE, VolumeStatus.IN_USE, VolumeStatus.RESERVED})
CHUNK = 500  # ids per IN (...) query


# Set while the periodic sweep runs (one sweep at a time per process, see `sweep`).
_CUTOFF: list[dt.datetime | None] = [None]
_WHY = ["recovered after restart"]
_SWEEP_LOCK = threading.Lock()
# What the periodic sweep settles: states only a volume service's own work leaves (attaching and
# detaching wait on a client, and are settled at start-up only).
SWEPT_VOLUME_STATES = (VolumeStatus.CREATING, VolumeStatus.DELETING, VolumeStatus.EXTENDING, VolumeStatus.REVERTING)
SWEPT_SNAPSHOT_STATES = (SnapshotStatus.CREATING, SnapshotStatus.DELETING, SnapshotStatus.RESTORING)


def _changed(table: Any) -> Any:
    return func.coalesce(table.updated_at, table.created_at)


def sweep(deps: WorkflowDeps, max_age: float, busy: Callable[[str], bool]) -> None:
    """Periodic: what is in a transient state on this backend, unchanged for `max_age` seconds and
    not held by an operation of this process (`busy(id)`), is settled by the start-up rules, checking
    storage. Work that stalled (a database that came back, a message handled twice...) ends there
    instead of staying `creating` for ever. No orphan removal: that is for a start-up."""
    with _SWEEP_LOCK:
        _CUTOFF[0], _WHY[0] = tables.utcnow() - dt.timedelta(seconds=max_age), "settled after a stall"
        try:
            _settle(deps, _CUTOFF[0], busy, orphans=False)
        finally:
            _CUTOFF[0], _WHY[0] = None, "recovered after restart"


def recover(deps: WorkflowDeps) -> None:
    with _SWEEP_LOCK:
        _settle(deps, None, lambda _: False, orphans=True)


def _settle(deps: WorkflowDeps, cutoff: dt.datetime | None, busy: Callable[[str], bool], orphans: bool) -> None:
    listing = deps.driver.list_storage()
    prefix = deps.backend.service_host
    with deps.db.read() as session:
        query = select(tables.Volume).where((tables.Volume.host == prefix) | tables.Volume.host.like(f"{prefix}#%"))
        if cutoff is not None:
            query = query.where(tables.Volume.status.in_(SWEPT_VOLUME_STATES), _changed(tables.Volume) < cutoff)
        # A member is busy while its group's operation runs, a snapshot while its volume's does.
        volumes = [v for v in session.scalars(query) if not busy(v.id) and not (v.group_id and busy(v.group_id))]
        if cutoff is None:
            snapshots = list(_in_chunks(session, tables.Snapshot, tables.Snapshot.volume_id, [v.id for v in volumes]))
        else:
            snapshots = [s for s in session.scalars(select(tables.Snapshot).join(
                tables.Volume, tables.Volume.id == tables.Snapshot.volume_id).where(
                (tables.Volume.host == prefix) | tables.Volume.host.like(f"{prefix}#%"),
                tables.Snapshot.status.in_(SWEPT_SNAPSHOT_STATES), _changed(tables.Snapshot) < cutoff))
                if not (busy(s.id) or busy(s.volume_id) or (s.group_snapshot_id and busy(s.group_snapshot_id)))]
    if cutoff is not None:
        for volume in volumes:
            _recover_volume(deps, volume, listing)
        for snap in snapshots:
            _recover_snapshot(deps, snap, listing)
        _recover_group_snapshots(deps, cutoff, busy)
        _recover_groups(deps, cutoff, busy)
        return
    # Orphans are judged now, before the transient rows are settled (a rerun delete removes rows).
    volume_rows = _existing(deps, tables.Volume, set(listing.volumes) | set(listing.exports))
    snapshot_rows = _existing(deps, tables.Snapshot, listing.snapshots)
    for volume in volumes:
        _recover_volume(deps, volume, listing)
    for snap in snapshots:
        _recover_snapshot(deps, snap, listing)
    # After their members: a group's outcome is read from its members' settled rows.
    _recover_group_snapshots(deps, None, busy)
    _recover_groups(deps, None, busy)
    _recover_group_replication(deps)
    if orphans:
        _remove_orphans(deps, listing, volume_rows, snapshot_rows)


REPLICATION_TRANSIENT = ("enabling", "disabling", "failing-over")


def _recover_group_replication(deps: WorkflowDeps) -> None:
    prefix = deps.backend.service_host
    with deps.db.write() as session:
        groups = list(session.scalars(select(tables.Group.id).where(
            (tables.Group.host == prefix) | tables.Group.host.like(f"{prefix}#%"),
            tables.Group.replication_status.in_(REPLICATION_TRANSIENT))))
        for group_id in groups:
            LOG.warning("recovery: group %s replication change interrupted → error", group_id)
            state.move(session, gtr.GROUP_REPLICATION_INTERRUPTED, group_id, values={
                "status": "error", "error_reason": "recovered after restart: replication change interrupted"})
            state.move_all(session, t.VOLUME_REPLICATION_INTERRUPTED, tables.Volume.group_id == group_id)


def _in_chunks(session: Any, table: Any, column: Any, values: list[str]) -> Iterator[Any]:
    for start in range(0, len(values), CHUNK):
        yield from session.scalars(select(table).where(column.in_(values[start:start + CHUNK])))


def _set(deps: WorkflowDeps, transition: Transition, ident: str, expected: str, status: str, reason: str,
         **values: Any) -> None:
    """The row from `expected` (found so) to `status`, by the declared transition."""
    table = state.TABLES[transition.resource]
    # In the periodic sweep: only a row still unchanged since it was found stale (no claim meanwhile).
    conditions = [_changed(table) < _CUTOFF[0]] if _CUTOFF[0] is not None else []
    with deps.db.write() as session:
        if state.move(session, transition, ident, *conditions, to=status, expect={"status": expected},
                      values={"error_reason": f"{_WHY[0]}: {reason}", **values}):
            LOG.warning("recovery: %s %s %s → %s (%s)", table.__name__, ident, expected, status, reason)


def _recover_volume(deps: WorkflowDeps, volume: tables.Volume, listing: StorageListing) -> None:
    status, stored = volume.status, listing.volumes.get(volume.id)
    if status == VolumeStatus.CREATING:
        # Drivers only make a volume visible under its final name once it is complete.
        if stored is not None:
            _set(deps, t.VOLUME_CREATE.succeed, volume.id, status, VolumeStatus.AVAILABLE, "storage exists")
        else:
            _set(deps, t.VOLUME_CREATE.fail, volume.id, status, VolumeStatus.ERROR, "storage was never completed")
    elif status == VolumeStatus.DELETING:
        LOG.warning("recovery: Volume %s deleting: the delete runs again", volume.id)
        delete.delete_volume(deps, volume.id)
    elif status == VolumeStatus.EXTENDING and volume.requested_size is not None:
        requested = volume.requested_size
        if stored is not None and stored >= requested * GiB:
            _set(deps, t.VOLUME_EXTEND_IN_USE.succeed, volume.id, status,
                 volume.previous_status or VolumeStatus.AVAILABLE, "extend had completed on storage", size=requested,
                 requested_size=None)
        else:  # the quota for it is charged: finish it (a failure gives the charge back)
            LOG.warning("recovery: Volume %s extending: the extend to %d GiB runs again", volume.id, requested)
            extend.extend_volume(deps, volume.id, requested)
    elif status == VolumeStatus.EXTENDING:  # a row from before requested_size was kept
        if stored is not None and stored > volume.size * GiB:
            _set(deps, t.VOLUME_EXTEND_IN_USE.succeed, volume.id, status,
                 volume.previous_status or VolumeStatus.AVAILABLE, "extend had completed on storage",
                 size=math.ceil(stored / GiB))
        else:
            _set(deps, t.VOLUME_EXTEND_IN_USE.fail, volume.id, status, t.VOLUME_EXTEND.failure, "extend interrupted")
    elif status == VolumeStatus.REVERTING:
        _set(deps, t.VOLUME_REVERT.fail, volume.id, status, t.VOLUME_REVERT.failure, "revert interrupted")
    elif status in (VolumeStatus.ATTACHING, VolumeStatus.DETACHING):
        attached = bool(volume.attachments)
        _set(deps, t.VOLUME_SETTLE_ATTACH, volume.id, status,
             VolumeStatus.IN_USE if attached else VolumeStatus.AVAILABLE, f"{status} interrupted")
        if not attached and volume.id in listing.exports:
            deps.driver.remove_export(volume_ref(volume))
    elif status in HAS_STORAGE and stored is None:
        _set(deps, t.VOLUME_STORAGE_LOST, volume.id, status, VolumeStatus.ERROR, "its storage is missing")


def _recover_snapshot(deps: WorkflowDeps, snap: tables.Snapshot, listing: StorageListing) -> None:
    stored = snap.id in listing.snapshots
    if snap.status == SnapshotStatus.CREATING:
        if stored:
            _set(deps, t.SNAPSHOT_CREATE.succeed, snap.id, snap.status, SnapshotStatus.AVAILABLE, "storage exists")
        else:
            _set(deps, t.SNAPSHOT_CREATE.fail, snap.id, snap.status, SnapshotStatus.ERROR, "creation interrupted")
    elif snap.status == SnapshotStatus.DELETING:
        LOG.warning("recovery: Snapshot %s deleting: the delete runs again", snap.id)
        snapshot.delete_snapshot(deps, snap.id)
    elif snap.status == SnapshotStatus.RESTORING:
        _set(deps, t.SNAPSHOT_RESTORE.succeed, snap.id, snap.status, SnapshotStatus.AVAILABLE, "revert interrupted")
    elif snap.status == SnapshotStatus.AVAILABLE and not stored:
        _set(deps, t.SNAPSHOT_STORAGE_LOST, snap.id, snap.status, SnapshotStatus.ERROR, "its storage is missing")


def _on_this_host(deps: WorkflowDeps) -> Any:
    prefix = deps.backend.service_host
    return (tables.Group.host == prefix) | tables.Group.host.like(f"{prefix}#%")


def _stale(table: Any, cutoff: dt.datetime | None) -> list[Any]:
    return [] if cutoff is None else [_changed(table) < cutoff]


def _recover_group_snapshots(deps: WorkflowDeps, cutoff: dt.datetime | None, busy: Callable[[str], bool]) -> None:
    create, delete_ = gtr.GROUP_SNAPSHOT_CREATE, gtr.GROUP_SNAPSHOT_DELETE
    with deps.db.read() as session:
        rows = [(ident, status) for ident, status in session.execute(
            select(tables.GroupSnapshot.id, tables.GroupSnapshot.status).join(
                tables.Group, tables.Group.id == tables.GroupSnapshot.group_id).where(
                _on_this_host(deps), tables.GroupSnapshot.status.in_(
                    [create.transient, GroupSnapshotStatus.UPDATING, delete_.transient]),
                *_stale(tables.GroupSnapshot, cutoff))).all() if not busy(ident)]
        members = {ident: list(session.scalars(select(tables.Snapshot.status).where(
            tables.Snapshot.group_snapshot_id == ident))) for ident, _ in rows}
    for ident, status in rows:
        if status == delete_.transient:
            LOG.warning("recovery: GroupSnapshot %s deleting: the delete runs again", ident)
            groups.delete_group_snapshot(deps, ident)
        elif members[ident] and set(members[ident]) == {SnapshotStatus.AVAILABLE}:
            _set(deps, gtr.GROUP_SNAPSHOT_SETTLE, ident, status, GroupSnapshotStatus.AVAILABLE,
                 "every member snapshot exists")
        else:
            _set(deps, gtr.GROUP_SNAPSHOT_SETTLE, ident, status, create.failure,
                 f"member snapshots {', '.join(sorted(set(members[ident]))) or 'missing'}")


def _recover_groups(deps: WorkflowDeps, cutoff: dt.datetime | None, busy: Callable[[str], bool]) -> None:
    create, update_, delete_ = gtr.GROUP_CREATE, gtr.GROUP_UPDATE, gtr.GROUP_DELETE
    with deps.db.read() as session:
        rows = [(ident, status) for ident, status in session.execute(select(tables.Group.id, tables.Group.status).where(
            _on_this_host(deps), tables.Group.status.in_([create.transient, update_.transient, delete_.transient]),
            *_stale(tables.Group, cutoff))).all() if not busy(ident)]
        failed = {ident: session.scalar(select(func.count()).where(
            tables.Volume.group_id == ident, tables.Volume.status == VolumeStatus.ERROR)) for ident, _ in rows}
    for ident, status in rows:
        if status == delete_.transient:
            LOG.warning("recovery: Group %s deleting: the delete runs again", ident)
            groups.delete_group(deps, ident)
        elif status == update_.transient:
            _set(deps, update_.succeed, ident, status, GroupStatus.AVAILABLE, "update interrupted; members as listed")
        elif failed[ident]:
            _set(deps, create.fail, ident, status, create.failure, f"{failed[ident]} member(s) not created")
        else:
            _set(deps, create.succeed, ident, status, GroupStatus.AVAILABLE, "nothing left to create")


def _remove_orphans(deps: WorkflowDeps, listing: StorageListing, volume_rows: set[str],
                    snapshot_rows: set[str]) -> None:
    """Storage with no row at all, in any service: left by a crash between storage and row work. One
    that cannot be removed is logged and left: a leftover must not keep the backend down."""
    for volume_id in sorted(set(listing.volumes) - volume_rows):  # delete_volume also withdraws its export
        _remove_orphan(f"volume {volume_id}", partial(deps.driver.delete_volume, VolumeRef(id=volume_id, size_gb=0)))
    for volume_id in sorted(listing.exports - volume_rows - set(listing.volumes)):
        _remove_orphan(f"export of volume {volume_id}",
                       partial(deps.driver.remove_export, VolumeRef(id=volume_id, size_gb=0)))
    for snapshot_id in sorted(listing.snapshots - snapshot_rows):
        _remove_orphan(f"snapshot {snapshot_id}", partial(deps.driver.delete_snapshot, SnapshotRef(
            id=snapshot_id, volume=VolumeRef(id="", size_gb=0), size_gb=0)))


def _remove_orphan(what: str, remove: Callable[[], None]) -> None:
    LOG.warning("recovery: removing orphan %s (no row)", what)
    try:
        remove()
    except DriverError as error:
        LOG.error("recovery: could not remove orphan %s, left in place: %s", what, error.message)


def _existing(deps: WorkflowDeps, table: Any, ids: Iterable[str]) -> set[str]:
    wanted = sorted(ids)
    found: set[str] = set()
    with deps.db.read() as session:
        for start in range(0, len(wanted), CHUNK):
            found.update(session.scalars(select(table.id).where(table.id.in_(wanted[start:start + CHUNK]))))
    return found
