"""Volume type JSON views."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cinderblock.api.policy import Policy
from cinderblock.api.views.common import Answer
from cinderblock.db import tables
from cinderblock.model.records import RequestContext


@dataclass(frozen=True)
class Shown:
    """Optional attributes the caller may see, decided by policy once per request."""

    extra_specs: bool
    qos_specs_id: bool
    access: bool  # os-volume-type-access:is_public


def shown(policy: Policy, context: RequestContext, answer: Answer = "show") -> Shown:
    """Create and update answer with Cinder's base type view (types_manage): no qos_specs_id, which
    only the v3 types controller adds; the type-access extension decorates show, list and create."""
    qos = answer == "show" and policy.check(context, "volume_extension:access_types_qos_specs_id")
    return Shown(extra_specs=policy.check(context, "volume_extension:access_types_extra_specs"),
                 qos_specs_id=qos, access=answer != "update")


def detail(volume_type: tables.VolumeType, context: RequestContext, seen: Shown | None = None) -> dict[str, Any]:
    if seen is None:
        seen = Shown(extra_specs=context.is_admin, qos_specs_id=context.is_admin, access=True)
    view: dict[str, Any] = {
        "id": volume_type.id,
        "name": volume_type.name,
        "is_public": volume_type.is_public,
        "description": volume_type.description,
    }
    if seen.access:
        view["os-volume-type-access:is_public"] = volume_type.is_public
    if seen.extra_specs:
        view["extra_specs"] = volume_type.specs()
    if seen.qos_specs_id:
        view["qos_specs_id"] = None
    return view
