"""Snapshot JSON views: the summary list, and the detail of show, the detail list, create and update."""
from __future__ import annotations

from typing import Any

from cinderblock.api import microversions as mv
from cinderblock.api.policy import Policy
from cinderblock.api.views.common import Answer, timestamp
from cinderblock.db import tables
from cinderblock.model.records import RequestContext

EXTENDED = "volume_extension:extended_snapshot_attributes"


def shown(policy: Policy, context: RequestContext, answer: Answer = "show") -> bool:
    """The os-extended-snapshot-attributes keys: a Cinder extension of show and the detail list only."""
    return answer == "show" and policy.check(context, EXTENDED)


def summary(snapshot: tables.Snapshot) -> dict[str, Any]:
    """An item of GET /snapshots: Cinder's base view, the same at every microversion."""
    return {
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


def detail(snapshot: tables.Snapshot, version: mv.Version, extended: bool) -> dict[str, Any]:
    """`extended`: see shown()."""
    view = summary(snapshot)
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
