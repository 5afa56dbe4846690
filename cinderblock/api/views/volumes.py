"""Volume JSON views: pure functions of (row, version, caller)."""
from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from cinderblock.api import microversions as mv
from cinderblock.api.policy import Policy
from cinderblock.api.views.common import Answer, links, timestamp
from cinderblock.db import tables
from cinderblock.model.records import RequestContext
from cinderblock.model.states import AttachStatus

# Internal statuses a client never sees.
_MASKED = {"managing": "creating", "error_managing": "error", "error_managing_deleting": "deleting",
           "reverting": "reverting"}


@dataclass(frozen=True)
class Shown:
    """Optional attributes the caller may see, decided by policy once per request."""

    host: bool  # os-vol-host-attr:host
    migration: bool  # os-vol-mig-status-attr:*
    tenant: bool  # os-vol-tenant-attr:tenant_id


HIDDEN = Shown(host=False, migration=False, tenant=False)


def shown(policy: Policy, context: RequestContext, answer: Answer = "show") -> Shown:
    """The os-vol-* attributes are Cinder extensions of show and the detail list only."""
    if answer != "show":
        return HIDDEN
    return Shown(host=policy.check(context, "volume_extension:volume_host_attribute"),
                 migration=policy.check(context, "volume_extension:volume_mig_status_attribute"),
                 tenant=policy.check(context, "volume_extension:volume_tenant_attribute"))


def summary(volume: tables.Volume, base: str, prefix: str) -> dict[str, Any]:
    return {"id": volume.id, "name": volume.display_name, "links": links(base, prefix, "volumes", volume.id)}


def _attachments(volume: tables.Volume, context: RequestContext) -> list[dict[str, Any]]:
    return [{
        "id": volume.id, "attachment_id": a.id, "volume_id": volume.id, "server_id": a.instance_uuid,
        "host_name": a.attached_host if context.is_admin else None, "device": a.mountpoint,
        "attached_at": timestamp(a.attach_time),
    } for a in volume.attachments if a.attach_status == AttachStatus.ATTACHED]


def detail(volume: tables.Volume, version: mv.Version, context: RequestContext, base: str,
           prefix: str, seen: Shown | None = None) -> dict[str, Any]:
    if seen is None:
        seen = Shown(host=context.is_admin, migration=context.is_admin, tenant=True)
    view: dict[str, Any] = {
        "id": volume.id,
        "status": _MASKED.get(volume.status, volume.status),
        "size": volume.size,
        "availability_zone": volume.availability_zone,
        "created_at": timestamp(volume.created_at),
        "updated_at": timestamp(volume.updated_at),
        "name": volume.display_name,
        "description": volume.display_description,
        "volume_type": volume.volume_type.name if volume.volume_type else None,
        "snapshot_id": volume.snapshot_id,
        "source_volid": volume.source_volid,
        "metadata": volume.metadata_dict(),
        "links": links(base, prefix, "volumes", volume.id),
        "user_id": volume.user_id,
        "bootable": "true" if volume.bootable else "false",
        "encrypted": False,
        "replication_status": volume.replication_status,
        "consistencygroup_id": volume.consistencygroup_id,
        "multiattach": volume.multiattach,
        "attachments": _attachments(volume, context),
    }
    if seen.tenant:
        view["os-vol-tenant-attr:tenant_id"] = volume.project_id
    if context.is_admin:  # Cinder's base view, so also in the create and update answers
        view["migration_status"] = volume.migration_status
    if seen.migration:
        view["os-vol-mig-status-attr:migstat"] = volume.migration_status
        view["os-vol-mig-status-attr:name_id"] = None
    if seen.host:
        view["os-vol-host-attr:host"] = volume.host
    if version.at_least(mv.GROUP_VOLUME):
        view["group_id"] = volume.group_id
    if version.at_least((3, 21)) and context.is_admin:
        view["provider_id"] = None
    if version.at_least(mv.SHARED_TARGETS):
        view["shared_targets"] = False
        view["service_uuid"] = None
    if version.at_least((3, 61)) and context.is_admin:
        view["cluster_name"] = None
    if version.at_least(mv.VOLUME_TYPE_ID):
        view["volume_type_id"] = volume.volume_type_id
    if version.at_least(mv.CONSUMES_QUOTA):
        view["consumes_quota"] = True
    return view


def replication(volume: tables.Volume) -> dict[str, Any]:
    """As the volume service last reported it (replication_extended_status, written with each
    capability report): per target the time of the last complete copy, its age and the bytes still to send."""
    reported = json.loads(volume.replication_extended_status) if volume.replication_extended_status else {}
    return {"volume_id": volume.id, "replication_status": volume.replication_status,
            "targets": reported.get("targets", {}), "reported_at": reported.get("reported_at"),
            "driver_data": volume.replication_driver_data}
