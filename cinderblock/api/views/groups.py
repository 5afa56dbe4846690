"""Views of group types, groups, group snapshots, and their CG API shapes."""
from __future__ import annotations

from typing import Any

from cinderblock.api import microversions as mv
from cinderblock.api.views.common import timestamp
from cinderblock.db import tables


def group_type(row: tables.GroupType, specs: bool = True) -> dict[str, Any]:
    """`specs`: group_specs shown (policy group:access_group_types_specs: administrators)."""
    view: dict[str, Any] = {"id": row.id, "name": row.name, "description": row.description,
                            "is_public": row.is_public}
    if specs:
        view["group_specs"] = row.specs()
    return view


def summary(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.display_name}


def group(row: tables.Group, version: mv.Version, volume_ids: list[str] | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "status": row.status, "availability_zone": row.availability_zone,
        "created_at": timestamp(row.created_at), "name": row.display_name, "description": row.display_description,
        "group_type": row.group_type_id, "volume_types": row.volume_type_ids(),
    }
    if version.at_least((3, 14)):
        view["group_snapshot_id"] = row.group_snapshot_id
        view["source_group_id"] = row.source_group_id
    if volume_ids is not None and version.at_least((3, 25)):
        view["volumes"] = volume_ids
    if version.at_least((3, 38)):
        view["replication_status"] = row.replication_status
    if version.at_least((3, 58)):
        view["project_id"] = row.project_id
    return view


def consistencygroup(row: tables.Group) -> dict[str, Any]:
    return {"id": row.id, "status": row.status, "availability_zone": row.availability_zone,
            "created_at": timestamp(row.created_at), "name": row.display_name,
            "description": row.display_description, "volume_types": row.volume_type_ids()}


def group_snapshot(row: tables.GroupSnapshot, version: mv.Version) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id, "group_id": row.group_id, "group_type_id": row.group_type_id, "status": row.status,
        "created_at": timestamp(row.created_at), "name": row.display_name, "description": row.display_description,
    }
    if version.at_least((3, 58)):
        view["project_id"] = row.project_id
    return view


def cgsnapshot(row: tables.GroupSnapshot) -> dict[str, Any]:
    return {"id": row.id, "consistencygroup_id": row.group_id, "status": row.status,
            "created_at": timestamp(row.created_at), "name": row.display_name,
            "description": row.display_description}


def consistency(row: tables.GroupSnapshot) -> dict[str, Any]:
    """`consistent` is null until the snapshot is taken; false when the driver took the members one by one."""
    return {"group_snapshot_id": row.id, "status": row.status, "consistent": row.consistent,
            "write_pause_ms": row.write_pause_ms}
