"""Request bodies of /snapshots."""
from __future__ import annotations

from pydantic import BaseModel

from cinderblock.api.schemas.common import Bool, Lenient, Metadata, Name, Strict


class SnapshotCreate(Lenient):
    volume_id: str | None  # required; null is a volume that does not exist (404), as in Cinder
    name: Name | None = None
    display_name: Name | None = None
    description: Name | None = None
    display_description: Name | None = None
    force: Bool | None = None
    metadata: Metadata | None = None


class SnapshotCreateBody(BaseModel):
    snapshot: SnapshotCreate


class SnapshotUpdate(Lenient):
    name: Name | None = None
    display_name: Name | None = None
    description: Name | None = None
    display_description: Name | None = None


class SnapshotUpdateBody(BaseModel):
    snapshot: SnapshotUpdate


class SnapshotStatusReport(Strict):
    status: str
    progress: str | None = None


class SnapshotResetStatus(Strict):
    status: str
