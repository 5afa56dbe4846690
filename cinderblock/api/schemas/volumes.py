"""Request bodies of /volumes."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from cinderblock.api.schemas.common import Bool, Lenient, Metadata, Name, Size, Strict


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


# Action arguments: Cinder's request schemas take no other keys (additionalProperties: false).
class Extend(Strict):
    new_size: Size


class ResetStatus(Strict):
    status: str | None = None
    attach_status: str | None = None
    migration_status: str | None = None


class InitializeConnection(Strict):
    connector: dict[str, Any]


class TerminateConnection(Strict):
    connector: dict[str, Any] | None = None


class Attach(Strict):
    mountpoint: str | None = None
    instance_uuid: str | None = None
    host_name: str | None = None
    mode: str = "rw"


class Detach(Strict):
    attachment_id: str | None = None


class SetBootable(Strict):
    bootable: Bool


class UpdateReadonly(Strict):
    readonly: Bool


class Revert(Strict):
    snapshot_id: str
