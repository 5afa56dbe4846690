"""Volume requests: validate, claim a status by compare-and-swap, reserve quota, hand to a service."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.db.repos import quotas as quota_repo
from cinderblock.domain import quotas
from cinderblock.domain.common import (DomainDeps, check_metadata, claim_and_cast, get_snapshot, get_volume,
                                       owner_project, replace_metadata)
from cinderblock.domain.groups import check_volume_in_group, is_cg
from cinderblock.domain.services import assert_not_frozen, known_zones
from cinderblock.domain.types import resolve_type
from cinderblock.model import transitions as t
from cinderblock.domain.in_doubt import undo_create_in_doubt
from cinderblock.model.errors import (Conflict, DatabaseUnavailable, InvalidInput, InvalidState, NotFound)
from cinderblock.model.records import BackendAddress, RequestContext, RequestSpec
from cinderblock.model.specs import malformed_specs, spec_is_true
from cinderblock.model.machine import KEEP, Operation, Transition
from cinderblock.model.states import AttachStatus, SnapshotStatus, VolumeStatus
from cinderblock.model.usage import extend_usage, volume_usage
from cinderblock.placement import pools as pool_queries
from cinderblock.placement.request import type_zones

LOG = logging.getLogger(__name__)

DELETE_REFUSED = ("Invalid volume: Volume status must be available or error or error_restoring or "
                  "error_extending or error_managing and must not be migrating, attached, belong to a group, "
                  "have snapshots, awaiting a transfer, or be disassociated from snapshots after volume transfer.")


@dataclass(frozen=True)
class VolumeCreate:
    size: int | None
    name: str | None = None
    description: str | None = None
    volume_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    snapshot_id: str | None = None
    source_volid: str | None = None
    availability_zone: str | None = None
    # Create into a group (3.13 group_id, or the CG API's consistencygroup_id).
    group_id: str | None = None


@dataclass(frozen=True)
class _CreatePlan:
    """What validation decided for a create, before the write transaction."""

    size: int
    zone: str
    volume_type: tables.VolumeType
    specs: dict[str, str]
    source_host: str | None
    limits: dict[str, int]
    # The group the volume joins and whether it is a consistency group.
    group_id: str | None = None
    group_is_cg: bool = False


class VolumeService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    # --- queries -------------------------------------------------------------------------
    def get(self, context: RequestContext, volume_id: str) -> tables.Volume:
        with self.db.read() as session:
            return get_volume(session, context, volume_id)

    def get_all(self, context: RequestContext, query: ListQuery, all_tenants: bool,
             metadata: dict[str, str] | None = None) -> tuple[list[tables.Volume], int | None]:
        if not (context.is_admin and all_tenants):
            query = query.scoped(project_id=context.project_id)
        base = select(tables.Volume)
        for key, value in (metadata or {}).items():
            base = base.where(exists(select(tables.VolumeMetadata.id).where(
                tables.VolumeMetadata.volume_id == tables.Volume.id,
                tables.VolumeMetadata.key == key, tables.VolumeMetadata.value == str(value))))
        with self.db.read() as session:
            return list_rows(session, tables.Volume, query, base)

    def summary(self, context: RequestContext, all_tenants: bool) -> dict[str, Any]:
        with self.db.read() as session:
            statement = select(tables.Volume)
            if not (context.is_admin and all_tenants):
                statement = statement.where(tables.Volume.project_id == context.project_id)
            volumes = list(session.scalars(statement))
        metadata: dict[str, list[str]] = {}
        for volume in volumes:
            for key, value in volume.metadata_dict().items():
                metadata.setdefault(key, [])
                if value not in metadata[key]:
                    metadata[key].append(value)
        return {"total_count": len(volumes), "total_size": sum(v.size for v in volumes), "metadata": metadata}

    # --- create --------------------------------------------------------------------------
    def create(self, context: RequestContext, request: VolumeCreate) -> tables.Volume:
        # Validation reads first, then a write transaction that only takes quota and inserts:
        # SQLite serialises writers, so the shorter the write, the more creates per second.
        check_metadata(request.metadata, self.deps.settings.max_metadata_items)
        with self.db.read() as session:
            plan = self._plan(session, context, request)
        # A transaction run again if the database aborts it to break a deadlock (MariaDB does when
        # racing creates make a project's first quota rows).
        made: list[tables.Volume] = []

        def insert(session: Session) -> tables.Volume:
            made.append(self._insert(session, context, request, plan))
            return made[-1]

        def run(claim: Callable[[Session], tables.Volume]) -> tables.Volume:
            try:
                return self.db.transaction(claim)
            except DatabaseUnavailable:
                if made:  # flushed, so the commit was cut: it may have happened (domain/in_doubt.py)
                    undo_create_in_doubt(self.db, made[-1].id, context.project_id,
                                         volume_usage(plan.size, plan.volume_type.name))
                raise

        # No zone asked for and a type listing zones: the scheduler picks among the type's zones.
        free_zone = (request.availability_zone is None and not request.snapshot_id and not request.source_volid
                     and bool(type_zones(plan.specs)))

        def cast(volume: tables.Volume) -> None:
            self.deps.scheduler.create_volume(context, RequestSpec(
                volume_id=volume.id, size_gb=plan.size, project_id=context.project_id,
                volume_type_id=plan.volume_type.id, extra_specs=plan.specs,
                availability_zone=None if free_zone else plan.zone, required_backend=plan.source_host,
                snapshot_id=request.snapshot_id, source_volume_id=request.source_volid))

        return claim_and_cast(self.db, insert, cast, self._undo_create, run=run)

    def _plan(self, session: Session, context: RequestContext, request: VolumeCreate) -> "_CreatePlan":
        owner_project(context, "volume")
        size = request.size
        source_host: str | None = None
        zone = request.availability_zone
        type_ref = request.volume_type
        if request.snapshot_id:
            snapshot = get_snapshot(session, context, request.snapshot_id)
            if snapshot.status != SnapshotStatus.AVAILABLE:
                raise InvalidState("Invalid snapshot: Originating snapshot status must be 'available'.")
            source = session.get(tables.Volume, snapshot.volume_id)
            assert source is not None
            size = size or snapshot.volume_size
            if size < snapshot.volume_size:
                raise InvalidInput(f"Invalid input received: Volume size '{size}' must not be less than the "
                                   f"snapshot size {snapshot.volume_size}.")
            source_host, zone = source.host, zone or source.availability_zone
            type_ref = type_ref or source.volume_type_id
        if request.source_volid:
            source = get_volume(session, context, request.source_volid)
            if source.status not in t.CLONE_SOURCE_STATES:
                raise InvalidState(f"Invalid volume: Source volume status must be available or in-use, "
                                   f"not {source.status}.")
            size = size or source.size
            if size < source.size:
                raise InvalidInput(f"Invalid input received: Volume size '{size}' must not be less than the "
                                   f"source volume size {source.size}.")
            source_host, zone = source.host, zone or source.availability_zone
            type_ref = type_ref or source.volume_type_id
        if size is None:
            raise InvalidInput("Invalid input received: Volume size is required when creating a volume "
                               "without a snapshot or source volume.")
        volume_type = resolve_type(session, context, type_ref, self.deps.settings.default_volume_type)
        for key, value in malformed_specs(volume_type.specs()).items():
            # Stored before the write-time check: read as not set by the API, scheduler and driver alike.
            LOG.warning("volume type %s has %s=%r, which is not '<is> True' or '<is> False': read as not set "
                        "(a replication_enabled spec like it does NOT replicate); fix it with type-key set",
                        volume_type.name, key, value)
        if zone is not None and zone not in known_zones(session, self.deps.settings):
            raise InvalidInput(f"Invalid input received: Availability zone '{zone}' is invalid.")
        zones = type_zones(volume_type.specs())  # RESKEY:availability_zones
        if zone is not None and zones and zone not in zones:
            raise InvalidInput(f"Invalid input received: Availability zone '{zone}' is not one of the volume "
                               f"type's availability zones ({', '.join(zones)}).")
        if source_host:
            assert_not_frozen(session, source_host)
        limits = quotas.effective_limits(self.deps.settings.quotas.as_dict(), session, context.project_id)
        quotas.check_volume_size(limits, size)
        group_is_cg = False
        if request.group_id:
            # Placed on the group's backend (its pool when nothing else decides).
            group, group_host = check_volume_in_group(session, request.group_id, volume_type.id, context)
            group_is_cg = is_cg(group)
            if source_host and BackendAddress.parse(source_host).service_host != BackendAddress.parse(
                    group_host).service_host:
                raise InvalidInput("Invalid input received: The source is not on the group's backend.")
            source_host = source_host or group_host
        default_zone = zones[0] if zones else self.deps.settings.default_availability_zone
        return _CreatePlan(size=size, zone=zone or default_zone,
                           volume_type=volume_type, specs=volume_type.specs(), source_host=source_host,
                           limits=limits, group_id=request.group_id, group_is_cg=group_is_cg)

    def _insert(self, session: Session, context: RequestContext, request: VolumeCreate,
                plan: "_CreatePlan") -> tables.Volume:
        quotas.consume(self.deps.settings.quotas.as_dict(), session, context.project_id,
                       volume_usage(plan.size, plan.volume_type.name), plan.limits)
        volume: tables.Volume = state.insert(
            session, t.VOLUME_INSERT,
            project_id=context.project_id, user_id=context.user_id, display_name=request.name,
            display_description=request.description, size=plan.size,
            attach_status=AttachStatus.DETACHED, availability_zone=plan.zone, volume_type_id=plan.volume_type.id,
            snapshot_id=request.snapshot_id, source_volid=request.source_volid,
            replication_status="enabled" if spec_is_true(plan.specs, "replication_enabled") else "disabled",
            bootable=False, multiattach=spec_is_true(plan.specs, "multiattach"),
            group_id=plan.group_id, consistencygroup_id=plan.group_id if plan.group_is_cg else None,
        )
        volume.metadata_items = [tables.VolumeMetadata(key=k, value=v) for k, v in request.metadata.items()]
        volume.attachments = []
        session.flush()
        # The type was read in the planning session; set it after the flush so the view has it
        # without the unit of work cascading the (unchanged) type into this transaction.
        set_committed_value(volume, "volume_type", plan.volume_type)
        return volume

    @staticmethod
    def _undo_create(session: Session, volume: tables.Volume) -> None:
        row = session.get(tables.Volume, volume.id)
        if row is not None and row.host is None:
            session.delete(row)
            quota_repo.release(session, volume.project_id, volume_usage(volume.size, volume.volume_type.name))

    # --- delete --------------------------------------------------------------------------
    def delete(self, context: RequestContext, volume_id: str, cascade: bool = False, force: bool = False) -> None:
        operation = t.VOLUME_FORCE_DELETE if force else t.VOLUME_DELETE

        def claim(session: Session) -> tuple[str, str, dict[str, str]] | None:
            volume = get_volume(session, context, volume_id)
            if volume.host is None:
                # Never scheduled: nothing exists on storage.
                usage = volume_usage(volume.size, volume.volume_type.name)
                session.delete(volume)
                quota_repo.release(session, volume.project_id, usage)
                return None
            assert_not_frozen(session, volume.host)
            snapshots_of = select(tables.Snapshot.id).where(tables.Snapshot.volume_id == volume_id)
            conditions: list[Any] = [tables.Volume.attach_status != AttachStatus.ATTACHED,
                                     tables.Volume.group_id.is_(None),  # members go with their group
                                     (tables.Volume.migration_status.is_(None))
                                     | tables.Volume.migration_status.in_(["deleting", "error", "success"])]
            if cascade:
                busy = snapshots_of.where(tables.Snapshot.status.not_in(
                    [SnapshotStatus.AVAILABLE, SnapshotStatus.ERROR, SnapshotStatus.DELETING]))
                conditions.append(~exists(busy))
            else:
                conditions.append(~exists(snapshots_of))
            if not state.move(session, operation.claim, volume_id, *conditions,
                              values={"previous_status": volume.status}):
                raise InvalidState(DELETE_REFUSED)
            cascaded: dict[str, str] = {}
            if cascade:
                for snapshot in session.scalars(snapshots_of.with_only_columns(tables.Snapshot)):
                    cascaded[snapshot.id] = snapshot.status
                    state.move(session, t.SNAPSHOT_CASCADE_DELETE.claim, snapshot.id)
            return service_of(volume), volume.status, cascaded

        def cast(claimed: tuple[str, str, dict[str, str]] | None) -> None:
            if claimed is not None:
                self.deps.volumes.delete_volume(context, claimed[0], volume_id)

        def undo(session: Session, claimed: tuple[str, str, dict[str, str]] | None) -> None:
            assert claimed is not None
            _undo_claim(session, volume_id, operation, claimed[1], snapshots=claimed[2])

        claim_and_cast(self.db, claim, cast, undo)

    # --- changes -------------------------------------------------------------------------
    def update(self, context: RequestContext, volume_id: str, name: Any = ..., description: Any = ...,
               metadata: dict[str, str] | None = None) -> tables.Volume:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            if volume.status == VolumeStatus.MAINTENANCE:
                raise InvalidState(f"Invalid volume: Volume {volume_id} status must not be maintenance.")
            if name is not ...:
                volume.display_name = name
            if description is not ...:
                volume.display_description = description
            if metadata is not None:
                replace_metadata(session, volume, tables.VolumeMetadata, "volume_id", metadata, delete_missing=True,
                                 max_items=self.deps.settings.max_metadata_items)
            session.flush()
            return volume

    def set_metadata(self, context: RequestContext, volume_id: str, metadata: dict[str, str],
                     replace: bool) -> dict[str, str]:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            replace_metadata(session, volume, tables.VolumeMetadata, "volume_id", metadata, delete_missing=replace,
                             max_items=self.deps.settings.max_metadata_items)
            session.flush()
            return volume.metadata_dict()

    def delete_metadata_key(self, context: RequestContext, volume_id: str, key: str) -> None:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            items = [item for item in volume.metadata_items if item.key == key]
            if not items:
                raise NotFound(f"Metadata key {key} for volume {volume_id} could not be found.")
            volume.metadata_items.remove(items[0])

    def extend(self, context: RequestContext, volume_id: str, new_size: int, allow_in_use: bool) -> None:
        operation = t.VOLUME_EXTEND_IN_USE if allow_in_use else t.VOLUME_EXTEND

        def claim(session: Session) -> tuple[str, str, tuple[str, dict[str, int]]]:
            volume = get_volume(session, context, volume_id)
            if new_size <= volume.size:
                raise InvalidInput(f"Invalid input received: New size for extend must be greater than current "
                                   f"size. (current: {volume.size}, extended: {new_size}).")
            if volume.host is None:
                raise InvalidState(f"Invalid volume: Volume {volume_id} has not been placed on a backend yet.")
            assert_not_frozen(session, volume.host)  # Cinder refuses it in the scheduler; same outcome, at once
            defaults = self.deps.settings.quotas.as_dict()
            quotas.check_volume_size(quotas.effective_limits(defaults, session, volume.project_id), new_size)
            _check_pool_room(session, volume, new_size - volume.size)
            # The size is compared too: a racer that read the size before another extend finished
            # must not extend (and charge quota) again from that stale size.
            if not state.move(session, operation.claim, volume_id, expect={"size": volume.size},
                              values={"previous_status": volume.status,
                                      "requested_size": new_size}):  # kept for recovery (quota charged)
                raise InvalidState(f"Invalid volume: Volume status must be {operation.describe_from()} to extend, "
                                   f"but current status is: {volume.status}.")
            usage = extend_usage(new_size - volume.size, volume.volume_type.name)
            quotas.consume(self.deps.settings.quotas.as_dict(), session, volume.project_id, usage)
            return service_of(volume), volume.status, (volume.project_id, usage)

        claim_and_cast(self.db, claim,
                       lambda claimed: self.deps.volumes.extend_volume(context, claimed[0], volume_id, new_size),
                       lambda session, claimed: _undo_claim(session, volume_id, operation, claimed[1],
                                                            release=claimed[2]))

    def revert(self, context: RequestContext, volume_id: str, snapshot_id: str) -> None:
        def claim(session: Session) -> tuple[str, str]:
            volume = get_volume(session, context, volume_id)
            snapshot = get_snapshot(session, context, snapshot_id)
            latest = session.scalar(select(tables.Snapshot).where(tables.Snapshot.volume_id == volume_id)
                                    .order_by(tables.Snapshot.created_at.desc(), tables.Snapshot.id.desc()).limit(1))
            if latest is None:
                raise InvalidInput(f"Invalid input received: Volume {volume_id} has no snapshots.")
            if snapshot.volume_id != volume_id or latest.id != snapshot_id:
                raise InvalidInput(f"Invalid input received: Snapshot {snapshot_id} is not the latest snapshot "
                                   f"of volume {volume_id}; only the latest one can be reverted to.")
            if snapshot.volume_size != volume.size:
                raise InvalidInput(f"Invalid input received: Volume {volume_id} size ({volume.size}G) differs "
                                   f"from snapshot size ({snapshot.volume_size}G); revert is not possible.")
            if not state.move(session, t.VOLUME_REVERT.claim, volume_id, values={"previous_status": volume.status}):
                raise Conflict(f"Volume {volume_id} status must be available to revert, not {volume.status}.")
            if not state.move(session, t.SNAPSHOT_RESTORE.claim, snapshot_id):
                raise Conflict(f"Snapshot {snapshot_id} status must be available to revert, not {snapshot.status}.")
            return service_of(volume), volume.status

        claim_and_cast(self.db, claim,
                       lambda claimed: self.deps.volumes.revert_to_snapshot(context, claimed[0], volume_id,
                                                                            snapshot_id),
                       lambda session, claimed: _undo_claim(session, volume_id, t.VOLUME_REVERT, claimed[1],
                                                            restored=snapshot_id))

    def reset_status(self, context: RequestContext, volume_id: str, values: dict[str, Any]) -> None:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            if values.get("status") == VolumeStatus.IN_USE and not volume.attachments:
                raise InvalidInput("Invalid input received: Cannot reset status to in-use for a volume "
                                   "without attachments.")
            if values.get("attach_status") == AttachStatus.DETACHED:
                for attachment in list(volume.attachments):
                    session.delete(attachment)
            others = {key: value for key, value in values.items() if key != "status"}
            state.move(session, t.VOLUME_RESET, volume_id, to=values.get("status", KEEP), values=others)

    def set_flag(self, context: RequestContext, volume_id: str, flag: str, value: bool) -> None:
        with self.db.write() as session:
            get_volume(session, context, volume_id)
            state.write_fields(session, "volume", volume_id, values={flag: value})  # never a state

    # --- attach --------------------------------------------------------------------------
    def _claim(self, context: RequestContext, volume_id: str, transition: Transition, message: str,
               *conditions: Any, expect: dict[str, Any] | None = None) -> tables.Volume:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            if not state.move(session, transition, volume_id, *conditions, expect=expect):
                raise InvalidState(message.format(status=volume.status))
            return volume

    def reserve(self, context: RequestContext, volume_id: str) -> None:
        # A multiattach volume may be reserved again while in use.
        self._claim(context, volume_id, t.VOLUME_RESERVE,
                    "Invalid volume: Volume status must be available to reserve, but the status is {status}.",
                    (tables.Volume.status == VolumeStatus.AVAILABLE) | tables.Volume.multiattach.is_(True))

    def unreserve(self, context: RequestContext, volume_id: str) -> None:
        with self.db.write() as session:
            volume = get_volume(session, context, volume_id)
            target = VolumeStatus.IN_USE if volume.attachments else VolumeStatus.AVAILABLE
            state.move(session, t.VOLUME_UNRESERVE, volume_id, to=target)

    def begin_detaching(self, context: RequestContext, volume_id: str) -> None:
        self._claim(context, volume_id, t.VOLUME_BEGIN_DETACH,
                    "Invalid volume: Unable to detach volume. Volume status must be 'in-use' and attach_status "
                    "must be 'attached' to detach, but the status is {status}.",
                    tables.Volume.migration_status.is_(None), expect={"attach_status": AttachStatus.ATTACHED})

    def roll_detaching(self, context: RequestContext, volume_id: str) -> None:
        with self.db.write() as session:
            get_volume(session, context, volume_id)
            state.move(session, t.VOLUME_ROLL_DETACHING, volume_id)

    def _placed(self, context: RequestContext, volume_id: str) -> tables.Volume:
        volume = self.get(context, volume_id)
        if volume.status == VolumeStatus.MAINTENANCE:
            raise InvalidState(f"Invalid volume: Volume {volume_id} is in maintenance.")
        if volume.host is None:
            raise InvalidState(f"Invalid volume: Volume {volume_id} has not been placed on a backend.")
        return volume

    def initialize_connection(self, context: RequestContext, volume_id: str,
                              connector: dict[str, Any]) -> dict[str, Any]:
        volume = self._placed(context, volume_id)
        return self.deps.volumes.initialize_connection(context, service_of(volume), volume_id, connector)

    def terminate_connection(self, context: RequestContext, volume_id: str, connector: dict[str, Any] | None) -> None:
        volume = self._placed(context, volume_id)
        self.deps.volumes.terminate_connection(context, service_of(volume), volume_id, connector)

    def attach(self, context: RequestContext, volume_id: str, attachment: dict[str, Any]) -> None:
        volume = self._placed(context, volume_id)
        self.deps.volumes.attach_volume(context, service_of(volume), volume_id, attachment)

    def detach(self, context: RequestContext, volume_id: str, attachment_id: str | None) -> None:
        volume = self._placed(context, volume_id)
        self.deps.volumes.detach_volume(context, service_of(volume), volume_id, attachment_id)


def _undo_claim(session: Session, volume_id: str, operation: Operation, previous: str,
                release: tuple[str, dict[str, int]] | None = None, snapshots: dict[str, str] | None = None,
                restored: str | None = None) -> None:
    """The volume service never got the request (503): put back what the claim changed. Guarded by the
    transient states, like every other outcome."""
    if state.move(session, operation.undo, volume_id, to=previous) and release is not None:
        quota_repo.release(session, *release)
    for snapshot_id, status in (snapshots or {}).items():
        state.move(session, t.SNAPSHOT_CASCADE_DELETE.undo, snapshot_id, to=status)
    if restored is not None:
        state.move(session, t.SNAPSHOT_RESTORE.undo, restored)


def _check_pool_room(session: Session, volume: tables.Volume, more_gb: int) -> None:
    """An extend grows the volume in its pool: the pool's last report must have room for it (the
    scheduler's capacity formula; a backend without a report is not refused)."""
    assert volume.host is not None
    reported = session.scalar(select(tables.Service.capabilities).where(
        tables.Service.host == service_of(volume), tables.Service.binary == "cinder-volume"))
    specs = volume.volume_type.specs() if volume.volume_type is not None else {}
    room = pool_queries.room_in_pool(reported, volume.host, more_gb, specs) if reported else None
    if not pool_queries.has_room(room, more_gb):
        raise InvalidInput(f"Invalid input received: The pool of volume {volume.id} has no room to grow it by "
                           f"{more_gb} GiB.")


def service_of(volume: tables.Volume) -> str:
    """host@backend of the volume service that owns the volume."""
    assert volume.host is not None
    return BackendAddress.parse(volume.host).service_host
