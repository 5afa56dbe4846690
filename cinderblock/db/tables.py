"""SQLAlchemy 2 tables (volumes, snapshots, types, services, quotas, messages, groups). Rows are hard-deleted:
a deleted volume's row is gone."""
from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    pass


class Timestamped:
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, default=None, onupdate=utcnow)


class VolumeType(Timestamped, Base):
    __tablename__ = "volume_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    extra_specs: Mapped[list["VolumeTypeExtraSpec"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin")
    projects: Mapped[list["VolumeTypeProject"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    def specs(self) -> dict[str, str]:
        return {spec.key: spec.value for spec in self.extra_specs}


class VolumeTypeExtraSpec(Base):
    __tablename__ = "volume_type_extra_specs"
    __table_args__ = (UniqueConstraint("volume_type_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class VolumeTypeProject(Base):
    __tablename__ = "volume_type_projects"
    __table_args__ = (UniqueConstraint("volume_type_id", "project_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)


class Volume(Timestamped, Base):
    __tablename__ = "volumes"
    __table_args__ = (
        Index("ix_volumes_project_created", "project_id", "created_at"),
        Index("ix_volumes_created", "created_at"),
        Index("ix_volumes_host", "host"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    display_description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    # While `extending`: the size asked for, whose quota is already charged (migration 0005), so that
    # recovery can finish the extend or give the charge back after a crash.
    requested_size: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    previous_status: Mapped[str | None] = mapped_column(String(32))
    attach_status: Mapped[str] = mapped_column(String(32), nullable=False, default="detached")
    migration_status: Mapped[str | None] = mapped_column(String(32))
    replication_status: Mapped[str] = mapped_column(String(32), nullable=False, default="disabled")
    # The driver's own replication state (opaque), and the lag the volume service last saw (JSON).
    replication_driver_data: Mapped[str | None] = mapped_column(String(255))
    replication_extended_status: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id"), nullable=False)
    snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_volid: Mapped[str | None] = mapped_column(String(36))
    bootable: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    readonly: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    provider_location: Mapped[str | None] = mapped_column(String(255))
    provider_auth: Mapped[str | None] = mapped_column(String(255))
    # Why the last operation failed (admins see it; the log has the details).
    error_reason: Mapped[str | None] = mapped_column(Text)
    # Group membership (migration 0003); consistencygroup_id repeats group_id for CG-typed groups.
    group_id: Mapped[str | None] = mapped_column(String(36), index=True)
    consistencygroup_id: Mapped[str | None] = mapped_column(String(36))
    volume_type: Mapped[VolumeType] = relationship(lazy="joined")
    metadata_items: Mapped[list["VolumeMetadata"]] = relationship(cascade="all, delete-orphan", lazy="selectin")
    attachments: Mapped[list["VolumeAttachment"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    def metadata_dict(self) -> dict[str, str]:
        return {item.key: item.value for item in self.metadata_items}


class VolumeMetadata(Base):
    __tablename__ = "volume_metadata"
    __table_args__ = (UniqueConstraint("volume_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class VolumeAttachment(Timestamped, Base):
    __tablename__ = "volume_attachments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id", ondelete="CASCADE"), nullable=False, index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36))
    attached_host: Mapped[str | None] = mapped_column(String(255))
    mountpoint: Mapped[str | None] = mapped_column(String(255))
    attach_mode: Mapped[str] = mapped_column(String(2), default="rw", nullable=False)
    attach_status: Mapped[str] = mapped_column(String(32), nullable=False)
    attach_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    detach_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Snapshot(Timestamped, Base):
    __tablename__ = "snapshots"
    __table_args__ = (Index("ix_snapshots_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    volume_id: Mapped[str] = mapped_column(ForeignKey("volumes.id"), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    display_description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    previous_status: Mapped[str | None] = mapped_column(String(32))
    progress: Mapped[str] = mapped_column(String(8), nullable=False, default="0%")
    volume_size: Mapped[int] = mapped_column(Integer, nullable=False)
    provider_location: Mapped[str | None] = mapped_column(String(255))
    error_reason: Mapped[str | None] = mapped_column(Text)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), index=True)
    metadata_items: Mapped[list["SnapshotMetadata"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    def metadata_dict(self) -> dict[str, str]:
        return {item.key: item.value for item in self.metadata_items}


class SnapshotMetadata(Base):
    __tablename__ = "snapshot_metadata"
    __table_args__ = (UniqueConstraint("snapshot_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    snapshot_id: Mapped[str] = mapped_column(ForeignKey("snapshots.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Service(Timestamped, Base):
    __tablename__ = "services"
    __table_args__ = (UniqueConstraint("host", "binary"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(64), nullable=False)
    topic: Mapped[str] = mapped_column(String(64), nullable=False)
    availability_zone: Mapped[str] = mapped_column(String(255), nullable=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    report_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    frozen: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    replication_status: Mapped[str] = mapped_column(String(32), default="disabled", nullable=False)
    active_backend_id: Mapped[str | None] = mapped_column(String(255))
    # The backend's last reported capabilities (pools), for the API when no scheduler answers.
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Quota(Timestamped, Base):
    """A project's limit for one resource, where it differs from the default."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)


class QuotaUsage(Base):
    """What a project uses of one resource; changed only by conditional UPDATEs (see repos/quotas.py)."""

    __tablename__ = "quota_usages"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    resource: Mapped[str] = mapped_column(String(255), nullable=False)
    in_use: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Message(Base):
    """A user message (GET /messages, API 3.3): why an asynchronous request of a project failed."""

    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_project_created", "project_id", "created_at"),
                      Index("ix_messages_expires_at", "expires_at"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(255))
    resource_type: Mapped[str] = mapped_column(String(36), nullable=False)
    resource_uuid: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str] = mapped_column(String(255), nullable=False)
    message_level: Mapped[str] = mapped_column(String(255), nullable=False)
    user_message: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    # guaranteed_until: kept at least until then, deleted by the next write after it.
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)


# --- groups (migration 0003) ------------------------------------------------------------
# Consistency groups are groups whose type is the reserved `default_cgsnapshot_type` (seeded by db/migrate.py).

class GroupType(Timestamped, Base):
    __tablename__ = "group_types"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    group_specs: Mapped[list["GroupTypeSpec"]] = relationship(cascade="all, delete-orphan", lazy="selectin")

    def specs(self) -> dict[str, str]:
        return {spec.key: spec.value for spec in self.group_specs}


class GroupTypeSpec(Base):
    __tablename__ = "group_type_specs"
    __table_args__ = (UniqueConstraint("group_type_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_type_id: Mapped[str] = mapped_column(ForeignKey("group_types.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)


class Group(Timestamped, Base):
    __tablename__ = "groups"
    __table_args__ = (Index("ix_groups_project_created", "project_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    display_description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    # host@backend#pool chosen by the scheduler (or inherited from the source group).
    host: Mapped[str | None] = mapped_column(String(255))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    group_type_id: Mapped[str] = mapped_column(ForeignKey("group_types.id"), nullable=False)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36))
    source_group_id: Mapped[str | None] = mapped_column(String(36))
    replication_status: Mapped[str] = mapped_column(String(32), nullable=False, default="disabled")
    error_reason: Mapped[str | None] = mapped_column(Text)
    group_type: Mapped[GroupType] = relationship(lazy="joined")
    volume_types: Mapped[list["GroupVolumeType"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="GroupVolumeType.id")

    def volume_type_ids(self) -> list[str]:
        return [link.volume_type_id for link in self.volume_types]


class GroupVolumeType(Base):
    __tablename__ = "group_volume_type_mapping"
    __table_args__ = (UniqueConstraint("group_id", "volume_type_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=False)
    volume_type_id: Mapped[str] = mapped_column(ForeignKey("volume_types.id"), nullable=False)


class GroupSnapshot(Timestamped, Base):
    __tablename__ = "group_snapshots"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    display_description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    group_type_id: Mapped[str] = mapped_column(String(36), nullable=False)
    # None until taken; False when the driver could only snapshot the members one by one.
    consistent: Mapped[bool | None] = mapped_column(Boolean)
    # How long new writes were held at the members' exports (consistent snapshots only).
    write_pause_ms: Mapped[float | None] = mapped_column(Float)
    error_reason: Mapped[str | None] = mapped_column(Text)
    taken_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
