"""Snapshot requests."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.db.repos import quotas as quota_repo
from cinderblock.domain import quotas
from cinderblock.domain.common import (DomainDeps, check_metadata, claim_and_cast, get_snapshot, get_volume, listed,
                                       replace_metadata)
from cinderblock.domain.services import assert_not_frozen
from cinderblock.domain.volumes import service_of
from cinderblock.model import transitions as t
from cinderblock.model.errors import InvalidInput, InvalidState, NotFound
from cinderblock.model.records import RequestContext
from cinderblock.model.states import SnapshotStatus, VolumeStatus
from cinderblock.model.usage import snapshot_usage


def insert_snapshot(session: Session, context: RequestContext, volume: tables.Volume, project_id: str,
                    name: str | None, description: str | None, quota_defaults: Mapping[str, int],
                    limits: Mapping[str, int] | None = None, group_snapshot_id: str | None = None) -> tables.Snapshot:
    """A new snapshot of `volume` (alone, or a member of a group snapshot): its quota charged, its row in
    `creating`."""
    quotas.consume(quota_defaults, session, project_id, snapshot_usage(volume.size, volume.volume_type.name), limits)
    snapshot: tables.Snapshot = state.insert(
        session, t.SNAPSHOT_INSERT, volume_id=volume.id, project_id=project_id, user_id=context.user_id,
        display_name=name, display_description=description, progress="0%", volume_size=volume.size,
        group_snapshot_id=group_snapshot_id)
    return snapshot


def destroy_snapshot(session: Session, snapshot: tables.Snapshot, type_name: str | None) -> None:
    """Undo insert_snapshot (the volume service never got the request): the row goes, the quota comes back."""
    session.delete(snapshot)
    quota_repo.release(session, snapshot.project_id, snapshot_usage(snapshot.volume_size, type_name))


class SnapshotService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    def get(self, context: RequestContext, snapshot_id: str) -> tables.Snapshot:
        with self.db.read() as session:
            return get_snapshot(session, context, snapshot_id)

    def get_all(self, context: RequestContext, query: ListQuery, all_tenants: bool,
             metadata: dict[str, str] | None = None) -> tuple[list[tables.Snapshot], int | None]:
        query = listed(query, context, all_tenants)
        # Metadata is filtered in SQL so that limit, markers and count see the filtered rows.
        base = select(tables.Snapshot)
        for key, value in (metadata or {}).items():
            base = base.where(exists(select(tables.SnapshotMetadata.id).where(
                tables.SnapshotMetadata.snapshot_id == tables.Snapshot.id,
                tables.SnapshotMetadata.key == key, tables.SnapshotMetadata.value == str(value))))
        with self.db.read() as session:
            return list_rows(session, tables.Snapshot, query, base)

    def create(self, context: RequestContext, volume_id: str | None, name: str | None, description: str | None,
               force: bool, metadata: dict[str, str], in_use_allowed: bool) -> tables.Snapshot:
        if volume_id is None:
            raise NotFound.of("Volume", "None")
        check_metadata(metadata, self.deps.settings.max_metadata_items)

        def claim(session: Session) -> tuple[tables.Snapshot, str, str | None]:
            volume = get_volume(session, context, volume_id)
            if volume.host is None:
                raise InvalidState(f"Invalid volume: Volume {volume_id} has not been placed on a backend yet.")
            assert_not_frozen(session, volume.host)
            allowed = {VolumeStatus.AVAILABLE}
            if force or in_use_allowed:
                allowed.add(VolumeStatus.IN_USE)
            # Touch the volume under the same condition: a racing delete either sees this snapshot
            # or this update sees its `deleting`.
            if not state.move(session, t.VOLUME_HOLD_FOR_SNAPSHOT, volume_id, tables.Volume.migration_status.is_(None),
                              expect={"status": allowed}):
                raise InvalidState(f"Invalid volume: Volume {volume_id} status must be "
                                   f"{' or '.join(sorted(allowed))} to take a snapshot, but it is {volume.status}.")
            snapshot = insert_snapshot(session, context, volume, volume.project_id, name, description,
                                       self.deps.settings.quotas.as_dict())
            snapshot.metadata_items = [tables.SnapshotMetadata(key=k, value=v) for k, v in metadata.items()]
            session.flush()
            return snapshot, service_of(volume), volume.volume_type.name

        def undo(session: Session, claimed: tuple[tables.Snapshot, str, str | None]) -> None:
            snapshot, _, type_name = claimed
            row = session.get(tables.Snapshot, snapshot.id)
            if row is not None:
                destroy_snapshot(session, row, type_name)

        return claim_and_cast(
            self.db, claim, lambda claimed: self.deps.volumes.create_snapshot(context, claimed[1], claimed[0].id),
            undo)[0]

    def delete(self, context: RequestContext, snapshot_id: str, force: bool = False) -> None:
        operation = t.SNAPSHOT_FORCE_DELETE if force else t.SNAPSHOT_DELETE

        def claim(session: Session) -> tuple[str, str]:
            snapshot = get_snapshot(session, context, snapshot_id)
            volume = session.get(tables.Volume, snapshot.volume_id)
            assert volume is not None and volume.host is not None
            assert_not_frozen(session, volume.host)
            if snapshot.group_snapshot_id and not force:
                raise InvalidState(f"Invalid snapshot: Snapshot {snapshot_id} is part of group snapshot "
                                   f"{snapshot.group_snapshot_id}; delete the group snapshot instead.")
            if not state.move(session, operation.claim, snapshot_id, values={"previous_status": snapshot.status}):
                raise InvalidState(f"Invalid snapshot: Volume Snapshot status must be available or error, "
                                   f"but it is {snapshot.status}.")
            return service_of(volume), snapshot.status

        # The volume service never got it: a 503 leaves the snapshot as it was.
        claim_and_cast(self.db, claim,
                       lambda claimed: self.deps.volumes.delete_snapshot(context, claimed[0], snapshot_id),
                       lambda session, claimed: state.move(session, operation.undo, snapshot_id, to=claimed[1]))

    def update(self, context: RequestContext, snapshot_id: str, name: Any = ...,
               description: Any = ...) -> tables.Snapshot:
        with self.db.write() as session:
            snapshot = get_snapshot(session, context, snapshot_id)
            if name is not ...:
                snapshot.display_name = name
            if description is not ...:
                snapshot.display_description = description
            session.flush()
            return snapshot

    def reset_status(self, context: RequestContext, snapshot_id: str, status: str) -> None:
        if status not in {s.value for s in SnapshotStatus} - {SnapshotStatus.DELETED}:
            raise InvalidInput(f"Invalid input received: Invalid status: {status}.")
        with self.db.write() as session:
            get_snapshot(session, context, snapshot_id)
            state.move(session, t.SNAPSHOT_RESET, snapshot_id, to=status)

    def report_status(self, context: RequestContext, snapshot_id: str, status: str, progress: str | None) -> None:
        """os-update_snapshot_status, with Cinder's rules and messages."""
        if progress is not None and not _is_percentage(progress):
            raise InvalidInput("progress must be an integer percentage")
        with self.db.write() as session:
            current = get_snapshot(session, context, snapshot_id).status
            report = t.SNAPSHOT_REPORTS.get(current)
            if report is None:
                raise InvalidInput(f"Snapshot status {current} not allowed for update_snapshot_status")
            if status not in (report.to_states or ()):
                raise InvalidInput(f"Provided snapshot status {status} not allowed for snapshot with status "
                                   f"{current}.")
            if not state.move(session, report, snapshot_id, to=status,
                              values={"progress": progress} if progress else None):
                raise InvalidState(f"Invalid snapshot: Snapshot {snapshot_id} changed status meanwhile.")

    def set_metadata(self, context: RequestContext, snapshot_id: str, metadata: dict[str, str],
                     replace: bool) -> dict[str, str]:
        with self.db.write() as session:
            snapshot = get_snapshot(session, context, snapshot_id)
            replace_metadata(session, snapshot, tables.SnapshotMetadata, "snapshot_id", metadata, replace,
                             self.deps.settings.max_metadata_items)
            session.flush()
            return snapshot.metadata_dict()

    def delete_metadata_key(self, context: RequestContext, snapshot_id: str, key: str) -> None:
        with self.db.write() as session:
            snapshot = get_snapshot(session, context, snapshot_id)
            items = [item for item in snapshot.metadata_items if item.key == key]
            if not items:
                raise NotFound(f"Metadata key {key} for snapshot {snapshot_id} could not be found.")
            snapshot.metadata_items.remove(items[0])


def _is_percentage(text: str) -> bool:
    """'73%': an integer from 0 to 100 followed by a percent sign."""
    number = text[:-1]
    return text.endswith("%") and number.isdigit() and 0 <= int(number) <= 100
