"""Group snapshots (3.14) and cgsnapshots: one snapshot per member, taken by the group's backend."""
from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.domain import quotas
from cinderblock.domain.common import DomainDeps, claim_and_cast, listed, owned
from cinderblock.domain.groups import _by_name, get_group, group_service_host, members, not_cg
from cinderblock.domain.services import assert_not_frozen
from cinderblock.domain.snapshots import destroy_snapshot, insert_snapshot
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions as t
from cinderblock.model.errors import InvalidInput, InvalidState, NotFound
from cinderblock.model.group_states import GROUP_SNAPSHOT_RESET_STATUSES, GroupStatus
from cinderblock.model.records import RequestContext

def get_group_snapshot(session: Session, context: RequestContext, ident: str,
                       cg_api: bool = False) -> tables.GroupSnapshot:
    row = session.get(tables.GroupSnapshot, ident) or _by_name(session, tables.GroupSnapshot, context, ident)
    if row is None or not owned(row, context):
        raise NotFound(f"{'CgSnapshot' if cg_api else 'GroupSnapshot'} {ident} could not be found.")
    if not cg_api:
        get_group(session, context, row.group_id)  # raises for a CG's snapshot
    return row


class GroupSnapshotService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    def get(self, context: RequestContext, ident: str, cg_api: bool = False) -> tables.GroupSnapshot:
        with self.db.read() as session:
            return get_group_snapshot(session, context, ident, cg_api)

    def get_all(self, context: RequestContext, query: ListQuery, all_tenants: bool,
             cg_api: bool = False) -> tuple[list[tables.GroupSnapshot], int | None]:
        query = listed(query, context, all_tenants)
        base = select(tables.GroupSnapshot)
        if not cg_api:
            base = base.where(not_cg(tables.GroupSnapshot.group_type_id))
        with self.db.read() as session:
            return list_rows(session, tables.GroupSnapshot, query, base)

    def create(self, context: RequestContext, group_id: str, name: str | None, description: str | None,
               cg_api: bool = False) -> tables.GroupSnapshot:
        defaults = self.deps.settings.quotas.as_dict()

        def claim(session: Session) -> tuple[tables.GroupSnapshot, str]:
            group = get_group(session, context, group_id, cg_api)
            if group.status != GroupStatus.AVAILABLE or group.host is None:
                raise InvalidState(f"Invalid group: Group {group_id} status must be available, but current status "
                                   f"is: {group.status}.")
            assert_not_frozen(session, group.host)
            volumes = members(session, group_id)
            if not volumes:
                raise InvalidInput(f"Invalid input received: Group {group_id} contains no volumes.")
            for volume in volumes:
                # Touch each member under its status: a racing delete or detach cannot slip in.
                if not state.move(session, t.VOLUME_HOLD_FOR_SNAPSHOT, volume.id,
                                  tables.Volume.migration_status.is_(None)):
                    raise InvalidState(f"Invalid volume: Volume {volume.id} status must be available or in-use, "
                                       f"but it is {volume.status}.")
            limits = quotas.effective_limits(defaults, session, group.project_id)
            gsnap: tables.GroupSnapshot = state.insert(
                session, gtr.GROUP_SNAPSHOT_INSERT, group_id=group_id, project_id=group.project_id,
                user_id=context.user_id, display_name=name, display_description=description,
                group_type_id=group.group_type_id)
            session.flush()
            for volume in volumes:
                snapshot = insert_snapshot(session, context, volume, group.project_id,
                                           f"snapshot-{gsnap.id}" if name is None else name, description, defaults,
                                           limits, group_snapshot_id=gsnap.id)
                snapshot.metadata_items = []
            session.flush()
            return gsnap, group_service_host(group)

        return claim_and_cast(
            self.db, claim, lambda claimed: self.deps.volumes.create_group_snapshot(context, claimed[1], claimed[0].id),
            lambda session, claimed: self._destroy(session, claimed[0].id))[0]

    def _destroy(self, session: Session, ident: str) -> None:
        for snapshot in session.scalars(select(tables.Snapshot).where(tables.Snapshot.group_snapshot_id == ident)):
            volume = session.get(tables.Volume, snapshot.volume_id)
            destroy_snapshot(session, snapshot, volume.volume_type.name if volume else None)
        row = session.get(tables.GroupSnapshot, ident)
        if row is not None:
            session.delete(row)

    def delete(self, context: RequestContext, ident: str, cg_api: bool = False) -> None:
        def claim(session: Session) -> tuple[str, str, dict[str, str]]:
            gsnap = get_group_snapshot(session, context, ident, cg_api)
            group = session.get(tables.Group, gsnap.group_id)
            assert group is not None and group.host is not None
            assert_not_frozen(session, group.host)
            creating_from = select(tables.Group.id).where(tables.Group.group_snapshot_id == ident,
                                                      tables.Group.status == GroupStatus.CREATING)
            if not state.move(session, gtr.GROUP_SNAPSHOT_DELETE.claim, ident, ~exists(creating_from)):
                raise InvalidState(f"Invalid group snapshot: Group snapshot status must be available or error, "
                                   f"and no group may be being created from it (status: {gsnap.status}).")
            snaps = list(session.scalars(select(tables.Snapshot).where(tables.Snapshot.group_snapshot_id == ident)))
            for snap in snaps:
                state.move(session, t.SNAPSHOT_GROUP_DELETE.claim, snap.id)
            return group_service_host(group), gsnap.status, {s.id: s.status for s in snaps}

        def undo(session: Session, claimed: tuple[str, str, dict[str, str]]) -> None:
            state.move(session, gtr.GROUP_SNAPSHOT_DELETE.undo, ident, to=claimed[1])
            for snapshot_id, status in claimed[2].items():
                state.move(session, t.SNAPSHOT_GROUP_DELETE.undo, snapshot_id, to=status)

        claim_and_cast(self.db, claim,
                       lambda claimed: self.deps.volumes.delete_group_snapshot(context, claimed[0], ident), undo)

    def reset_status(self, context: RequestContext, ident: str, status: str) -> None:
        if status not in GROUP_SNAPSHOT_RESET_STATUSES:
            raise InvalidInput(f"Invalid input received: Group snapshot status: {status}, is invalid.")
        with self.db.write() as session:
            get_group_snapshot(session, context, ident)
            state.move(session, gtr.GROUP_SNAPSHOT_RESET, ident, to=status)
