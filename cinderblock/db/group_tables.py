"""Group tables: group types (+ specs), groups (+ their volume types) and group snapshots.

Kept apart from tables.py (same Base) so the group feature reads as one unit. Consistency groups
are groups whose type is the reserved `default_cgsnapshot_type` (seeded by db/migrate.py).
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cinderblock.db.tables import Base, Timestamped, new_id


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
