"""Snapshot JSON views (list and show are identical)."""
from __future__ import annotations

from typing import Any

from cinderblock.api import microversions as mv
from cinderblock.api.views.common import timestamp
from cinderblock.db import tables


def detail(snapshot: tables.Snapshot, version: mv.Version, extended: bool = True) -> dict[str, Any]:
    """`extended`: the os-extended-snapshot-attributes keys (policy extended_snapshot_attributes)."""
    view: dict[str, Any] = {
        "id": snapshot.id,
        "created_at": timestamp(snapshot.created_at),
        "updated_at": timestamp(snapshot.updated_at),
        "name": snapshot.display_name,
        "description": snapshot.display_description,
        "volume_id": snapshot.volume_id,
        "status": snapshot.status,
        "size": snapshot.volume_size,
        "metadata": snapshot.metadata_dict(),
    }
    if extended:
        view["os-extended-snapshot-attributes:progress"] = snapshot.progress
        view["os-extended-snapshot-attributes:project_id"] = snapshot.project_id
    if version.at_least((3, 14)):
        view["group_snapshot_id"] = snapshot.group_snapshot_id
    if version.at_least(mv.SNAPSHOT_USER_ID):
        view["user_id"] = snapshot.user_id
    if version.at_least(mv.CONSUMES_QUOTA):
        view["consumes_quota"] = True
    return view
