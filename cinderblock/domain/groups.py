"""Generic volume groups (3.13+) and consistency groups (groups of the reserved CG type).

The domain validates and claims a status by compare-and-swap; the scheduler places a new group and
the volume manager of the group's backend owns every later status change (volume/workflows/groups.py).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.db.repos import quotas as quota_repo
from cinderblock.domain import quotas
from cinderblock.domain.common import DomainDeps, claim_and_cast, listed, owned, owner_project
from cinderblock.domain.group_types import find_group_type
from cinderblock.domain.services import assert_not_frozen, known_zones
from cinderblock.domain.types import find_type
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions as t
from cinderblock.model.errors import InvalidInput, InvalidState, NotFound
from cinderblock.model.group_states import CG_GROUP_TYPE, GROUP_RESET_STATUSES, GroupSnapshotStatus, GroupStatus
from cinderblock.model.records import BackendAddress, RequestContext
from cinderblock.model.states import AttachStatus, VolumeStatus
from cinderblock.model.usage import volume_usage

GROUP_USAGE = {"groups": 1}
ADDABLE = {VolumeStatus.AVAILABLE, VolumeStatus.IN_USE}
REMOVABLE = {VolumeStatus.AVAILABLE, VolumeStatus.IN_USE, VolumeStatus.ERROR, VolumeStatus.ERROR_DELETING}


def is_cg(group: tables.Group) -> bool:
    return group.group_type is not None and group.group_type.name == CG_GROUP_TYPE


def not_cg(group_type_id: Any) -> Any:
    """A WHERE clause: the row's group type is not the reserved CG type (the group API hides CGs)."""
    return ~exists(select(tables.GroupType.id).where(tables.GroupType.id == group_type_id,
                                                     tables.GroupType.name == CG_GROUP_TYPE))


def get_group(session: Session, context: RequestContext, group_id: str, cg_api: bool = False) -> tables.Group:
    group = session.get(tables.Group, group_id) or _by_name(session, tables.Group, context, group_id)
    if group is None or not owned(group, context):
        raise NotFound(f"{'ConsistencyGroup' if cg_api else 'Group'} {group_id} could not be found.")
    if not cg_api and is_cg(group):
        raise InvalidInput(f"Invalid input received: Group_type {group.group_type_id} is reserved for migrating "
                           f"CGs to groups. Migrated group can only be operated by CG APIs.")
    return group


def _by_name(session: Session, table: Any, context: RequestContext, name: str) -> Any:
    """openstacksdk and osc send a name where an id belongs: resolve a unique name of the caller's."""
    rows = list(session.scalars(select(table).where(table.display_name == name,
                                                    table.project_id == context.project_id).limit(2)).unique())
    return rows[0] if len(rows) == 1 else None


def group_service_host(group: tables.Group) -> str:
    assert group.host is not None
    return BackendAddress.parse(group.host).service_host


def members(session: Session, group_id: str) -> list[tables.Volume]:
    return list(session.scalars(select(tables.Volume).where(tables.Volume.group_id == group_id)
                                .order_by(tables.Volume.created_at, tables.Volume.id)).unique())


def split_ids(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


class GroupService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    # --- queries -------------------------------------------------------------------------
    def get(self, context: RequestContext, group_id: str, cg_api: bool = False) -> tables.Group:
        with self.db.read() as session:
            return get_group(session, context, group_id, cg_api)

    def member_ids(self, group_id: str) -> list[str]:
        with self.db.read() as session:
            return [v.id for v in members(session, group_id)]

    def get_all(self, context: RequestContext, query: ListQuery, all_tenants: bool,
             cg_api: bool = False) -> tuple[list[tables.Group], int | None]:
        query = listed(query, context, all_tenants)
        base = select(tables.Group)
        if not cg_api:  # CGs are hidden from the group API (served by the CG API only)
            base = base.where(not_cg(tables.Group.group_type_id))
        with self.db.read() as session:
            return list_rows(session, tables.Group, query, base)

    # --- create --------------------------------------------------------------------------
    def create(self, context: RequestContext, group_type: str, volume_types: list[str], name: str | None,
               description: str | None, availability_zone: str | None, cg_api: bool = False) -> tables.Group:
        owner_project(context, "consistency group" if cg_api else "group")
        if not volume_types:
            raise InvalidInput("Invalid input received: volume_types must be provided to create group.")
        with self.db.read() as session:
            gtype = find_group_type(session, context, group_type)
            if not cg_api and gtype.name == CG_GROUP_TYPE:
                raise InvalidInput(f"Invalid input received: Group_type {gtype.id} is reserved for migrating CGs "
                                   f"to groups. Migrated group can only be operated by CG APIs.")
            vtypes = [find_type(session, context, ref) for ref in volume_types]
            if len({v.id for v in vtypes}) != len(vtypes):
                raise InvalidInput("Invalid input received: volume_types must be unique.")
            zone = availability_zone or self.deps.settings.default_availability_zone
            if zone not in known_zones(session, self.deps.settings):
                raise InvalidInput(f"Invalid input received: Availability zone '{zone}' is invalid.")
            type_specs = [v.specs() for v in vtypes]
            group_specs = gtype.specs()
        if cg_api:
            group_specs = {**group_specs, "consistencygroup_support": "<is> True"}

        def claim(session: Session) -> str:
            quotas.consume(self.deps.settings.quotas.as_dict(), session, context.project_id, GROUP_USAGE)
            group: tables.Group = state.insert(
                session, gtr.GROUP_INSERT, project_id=context.project_id, user_id=context.user_id,
                display_name=name, display_description=description, availability_zone=zone,
                group_type_id=gtype.id, replication_status="disabled")
            group.volume_types = [tables.GroupVolumeType(volume_type_id=v.id) for v in vtypes]
            session.flush()
            return group.id

        group_id = claim_and_cast(
            self.db, claim,
            lambda group_id: self.deps.scheduler.create_group(context, group_id, type_specs, group_specs, zone),
            lambda session, group_id: _destroy(session, group_id, context.project_id))
        return self.get(context, group_id, cg_api=True)

    def create_from_src(self, context: RequestContext, group_snapshot_id: str | None, source_group_id: str | None,
                        name: str | None, description: str | None, cg_api: bool = False) -> tables.Group:
        owner_project(context, "consistency group" if cg_api else "group")
        if bool(group_snapshot_id) == bool(source_group_id):
            raise InvalidInput("Invalid input received: Either 'group_snapshot_id' or 'source_group_id' must be "
                               "provided, but not both." if not cg_api else
                               "Invalid input received: Either 'cgsnapshot_id' or 'source_cgid' must be "
                               "provided, but not both.")
        defaults = self.deps.settings.quotas.as_dict()

        def claim(session: Session) -> tuple[str, str]:
            if group_snapshot_id:
                gsnap = session.get(tables.GroupSnapshot, group_snapshot_id)
                if gsnap is None or not owned(gsnap, context):
                    kind = 'CgSnapshot' if cg_api else 'GroupSnapshot'
                    raise NotFound(f"{kind} {group_snapshot_id} could not be found.")
                if gsnap.status != GroupSnapshotStatus.AVAILABLE:
                    raise InvalidState(f"Invalid group snapshot: Group snapshot status must be available, "
                                       f"but it is {gsnap.status}.")
                source = get_group(session, context, gsnap.group_id, cg_api)
                snaps = list(session.scalars(select(tables.Snapshot).where(
                    tables.Snapshot.group_snapshot_id == group_snapshot_id).order_by(tables.Snapshot.created_at)))
                sources: list[tuple[tables.Volume, tables.Snapshot | None]] = []
                for snap in snaps:
                    volume = session.get(tables.Volume, snap.volume_id)
                    assert volume is not None
                    sources.append((volume, snap))
            else:
                assert source_group_id is not None
                source = get_group(session, context, source_group_id, cg_api)
                if source.status != GroupStatus.AVAILABLE:
                    raise InvalidState(f"Invalid group: Source group status must be available, but it is "
                                       f"{source.status}.")
                sources = [(volume, None) for volume in members(session, source.id)]
                for volume, _ in sources:
                    if volume.status not in ADDABLE:
                        raise InvalidState(f"Invalid volume: Source volume {volume.id} status must be available or "
                                           f"in-use, but it is {volume.status}.")
            if not sources:
                raise InvalidInput(f"Invalid input received: Source {'CG' if cg_api else 'group'} "
                                   f"{source.id} is empty, nothing to create from.")
            assert source.host is not None
            assert_not_frozen(session, source.host)
            limits = quotas.effective_limits(defaults, session, context.project_id)
            quotas.consume(defaults, session, context.project_id, GROUP_USAGE, limits)
            group: tables.Group = state.insert(
                session, gtr.GROUP_INSERT, project_id=context.project_id, user_id=context.user_id,
                display_name=name, display_description=description, host=source.host,
                availability_zone=source.availability_zone, group_type_id=source.group_type_id,
                group_snapshot_id=group_snapshot_id, source_group_id=source_group_id, replication_status="disabled")
            group.volume_types = [tables.GroupVolumeType(volume_type_id=ident) for ident in source.volume_type_ids()]
            session.flush()
            cg_id = group.id if is_cg(source) else None
            for volume, from_snapshot in sources:
                quotas.consume(defaults, session, context.project_id,
                               volume_usage(volume.size, volume.volume_type.name), limits)
                state.insert(
                    session, t.VOLUME_INSERT,
                    project_id=context.project_id, user_id=context.user_id, display_name=volume.display_name,
                    display_description=volume.display_description, size=volume.size,
                    attach_status=AttachStatus.DETACHED, availability_zone=volume.availability_zone,
                    volume_type_id=volume.volume_type_id, host=volume.host,
                    snapshot_id=from_snapshot.id if from_snapshot else None,
                    source_volid=None if from_snapshot else volume.id, replication_status="disabled",
                    group_id=group.id, consistencygroup_id=cg_id)
            session.flush()
            return group.id, group_service_host(group)

        def undo(session: Session, claimed: tuple[str, str]) -> None:
            for volume in members(session, claimed[0]):
                quota_repo.release(session, volume.project_id, volume_usage(volume.size, volume.volume_type.name))
                session.delete(volume)
            session.flush()  # the members go before their group
            _destroy(session, claimed[0], context.project_id)

        group_id, _ = claim_and_cast(
            self.db, claim, lambda claimed: self.deps.volumes.create_group_from_src(context, claimed[1], claimed[0]),
            undo)
        return self.get(context, group_id, cg_api=True)

    # --- update --------------------------------------------------------------------------
    def update(self, context: RequestContext, group_id: str, name: Any = ..., description: Any = ...,
               add_volumes: str | None = None, remove_volumes: str | None = None, cg_api: bool = False) -> None:
        adds, removes = split_ids(add_volumes), split_ids(remove_volumes)
        if set(adds) & set(removes):
            raise InvalidInput(f"Invalid input received: UUIDs {sorted(set(adds) & set(removes))} are in both "
                               f"add and remove volume list.")

        def claim(session: Session) -> str | None:
            group = get_group(session, context, group_id, cg_api)
            if name is not ...:
                group.display_name = name
            if description is not ...:
                group.display_description = description
            if not adds and not removes:
                # Cinder: a name/description-only update makes the group available whatever it was.
                state.move(session, gtr.GROUP_RENAME, group_id)
                return None
            if group.status != GroupStatus.AVAILABLE:
                raise InvalidState(f"Invalid group: Group {group_id} status must be available, but current "
                                   f"status is: {group.status}.")
            if group.host:
                assert_not_frozen(session, group.host)
            self._check_adds(session, context, group, adds)
            self._check_removes(session, group, removes)
            if not state.move(session, gtr.GROUP_UPDATE.claim, group_id):
                raise InvalidState(f"Invalid group: Group {group_id} status must be available.")
            return group_service_host(group)

        def cast(host: str | None) -> None:
            if host is not None:
                self.deps.volumes.update_group(context, host, group_id, adds, removes)

        claim_and_cast(self.db, claim, cast,
                       lambda session, host: state.move(session, gtr.GROUP_UPDATE.undo, group_id))

    def _check_adds(self, session: Session, context: RequestContext, group: tables.Group, adds: list[str]) -> None:
        types = set(group.volume_type_ids())
        for volume_id in adds:
            volume = session.get(tables.Volume, volume_id)
            why = None
            if volume is None or volume.project_id != group.project_id:
                why = "it does not exist in the group's project"
            elif volume.group_id:
                why = f"it already belongs to group {volume.group_id}"
            elif volume.status not in ADDABLE:
                why = f"its status is {volume.status}, not available or in-use"
            elif volume.volume_type_id not in types:
                why = f"its volume type {volume.volume_type_id} is not supported by the group"
            elif volume.host is None or group.host is None or (BackendAddress.parse(volume.host).service_host
                                                                != group_service_host(group)):
                why = "it is not on the group's backend"
            if why:
                raise InvalidInput(f"Invalid input received: Cannot add volume {volume_id} to group "
                                   f"{group.id} because {why}.")

    def _check_removes(self, session: Session, group: tables.Group, removes: list[str]) -> None:
        for volume_id in removes:
            volume = session.get(tables.Volume, volume_id)
            if volume is None or volume.group_id != group.id:
                raise InvalidInput(f"Invalid input received: Cannot remove volume {volume_id} from group "
                                   f"{group.id} because it is not in the group.")
            if volume.status not in REMOVABLE:
                raise InvalidInput(f"Invalid input received: Cannot remove volume {volume_id} from group "
                                   f"{group.id} because its status is {volume.status}.")

    # --- delete --------------------------------------------------------------------------
    def delete(self, context: RequestContext, group_id: str, delete_volumes: bool, cg_api: bool = False) -> None:
        def claim(session: Session) -> tuple[str, str, dict[str, str]] | None:
            group = get_group(session, context, group_id, cg_api)
            if group.host is None:  # never placed: nothing on storage
                session.delete(group)
                quota_repo.release(session, group.project_id, GROUP_USAGE)
                return None
            assert_not_frozen(session, group.host)
            volumes = members(session, group_id)
            if not delete_volumes:
                if group.status not in (GroupStatus.AVAILABLE, GroupStatus.ERROR):
                    raise InvalidState(f"Invalid group: Group status must be available or error, but current "
                                       f"status is: {group.status}")
                if volumes:
                    raise InvalidState(f"Invalid group: Group {group_id} still contains volumes. The delete-volumes "
                                       f"flag is required to delete it.")
            elif group.status in (GroupStatus.CREATING, GroupStatus.UPDATING, GroupStatus.DELETING):
                raise InvalidState(f"Invalid group: Group {group_id} is {group.status}.")
            for volume in volumes:
                if volume.attach_status == AttachStatus.ATTACHED or volume.attachments:
                    raise InvalidState(f"Invalid volume: Volume {volume.id} in group {group_id} is attached.")
                if session.scalar(select(exists().where(tables.Snapshot.volume_id == volume.id))):
                    raise InvalidState(f"Invalid volume: Volume {volume.id} in group {group_id} has snapshots.")
            if session.scalar(select(exists().where(tables.GroupSnapshot.group_id == group_id))):
                raise InvalidState(f"Invalid group: Group {group_id} has group snapshots.")
            busy = select(tables.Group.id).where(tables.Group.source_group_id == group_id,
                                             tables.Group.status == GroupStatus.CREATING)
            if not state.move(session, gtr.GROUP_DELETE.claim, group_id, ~exists(busy),
                              expect={"status": group.status}):
                raise InvalidState(f"Invalid group: Group {group_id} changed or is a source being copied.")
            for volume in volumes:
                if not state.move(session, t.VOLUME_GROUP_DELETE.claim, volume.id, expect={"status": volume.status},
                                  values={"previous_status": volume.status}):
                    raise InvalidState(f"Invalid volume: Volume {volume.id} changed while the group was deleted.")
            return group_service_host(group), group.status, {v.id: v.status for v in volumes}

        def cast(claimed: tuple[str, str, dict[str, str]] | None) -> None:
            if claimed is not None:
                self.deps.volumes.delete_group(context, claimed[0], group_id)

        def undo(session: Session, claimed: tuple[str, str, dict[str, str]] | None) -> None:
            assert claimed is not None
            state.move(session, gtr.GROUP_DELETE.undo, group_id, to=claimed[1])
            for volume_id, status in claimed[2].items():
                state.move(session, t.VOLUME_GROUP_DELETE.undo, volume_id, to=status)

        claim_and_cast(self.db, claim, cast, undo)

    def reset_status(self, context: RequestContext, group_id: str, status: str) -> None:
        if status not in GROUP_RESET_STATUSES:
            raise InvalidInput(f"Invalid input received: Group status: {status}, group status is invalid.")
        with self.db.write() as session:
            get_group(session, context, group_id)
            state.move(session, gtr.GROUP_RESET, group_id, to=status)

    def volume_count(self, group_id: str) -> int:
        with self.db.read() as session:
            return int(session.scalar(select(func.count()).where(tables.Volume.group_id == group_id)) or 0)


def _destroy(session: Session, group_id: str, project_id: str) -> None:
    row = session.get(tables.Group, group_id)
    if row is not None:
        session.delete(row)
        quota_repo.release(session, project_id, GROUP_USAGE)


def check_volume_in_group(session: Session, group_id: str, volume_type_id: str,
                          context: RequestContext) -> tuple[tables.Group, str]:
    """A volume created into a group: the group must be available and take the volume's type.

    Returns the group and its host, which pins the new volume to the group's backend."""
    group = session.get(tables.Group, group_id)
    if group is None or not owned(group, context):
        raise NotFound(f"Group {group_id} could not be found.")
    if group.status != GroupStatus.AVAILABLE or group.host is None:
        raise InvalidState(f"Invalid group: Group {group_id} status must be available, but it is {group.status}.")
    if volume_type_id not in group.volume_type_ids():
        raise InvalidInput(f"Invalid input received: Invalid volume_type provided: {volume_type_id}. The volume type "
                           f"must be one of the group's types ({', '.join(group.volume_type_ids())}).")
    return group, group.host


