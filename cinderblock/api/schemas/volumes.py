"""Request bodies of /volumes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cinderblock.api.schemas.common import Bool, Lenient, Metadata, Name, Size


class VolumeCreate(Lenient):
    size: Size | None = None
    name: Name | None = None
    description: Name | None = None
    display_name: Name | None = None
    display_description: Name | None = None
    volume_type: str | None = None
    metadata: Metadata | None = None
    snapshot_id: str | None = None
    source_volid: str | None = None
    consistencygroup_id: str | None = None
    group_id: str | None = None
    backup_id: str | None = None
    availability_zone: str | None = None
    imageRef: str | None = None
    image_id: str | None = None
    multiattach: Bool | None = None


class VolumeCreateBody(BaseModel):
    volume: VolumeCreate
    scheduler_hints: dict[str, Any] | None = Field(default=None, alias="OS-SCH-HNT:scheduler_hints")


class VolumeUpdate(Lenient):
    name: Name | None = None
    description: Name | None = None
    display_name: Name | None = None
    display_description: Name | None = None
    metadata: Metadata | None = None


class VolumeUpdateBody(BaseModel):
    volume: VolumeUpdate


class MetadataBody(BaseModel):
    metadata: Metadata


class MetaItemBody(BaseModel):
    meta: Metadata


class Extend(BaseModel):
    new_size: Size


class ResetStatus(BaseModel):
    status: str | None = None
    attach_status: str | None = None
    migration_status: str | None = None


class InitializeConnection(BaseModel):
    connector: dict[str, Any]


class TerminateConnection(BaseModel):
    connector: dict[str, Any] | None = None


class Attach(Lenient):
    mountpoint: str | None = None
    instance_uuid: str | None = None
    host_name: str | None = None
    mode: str = "rw"


class Detach(Lenient):
    attachment_id: str | None = None


class SetBootable(BaseModel):
    bootable: Bool


class UpdateReadonly(BaseModel):
    readonly: Bool


class Revert(BaseModel):
    snapshot_id: str
