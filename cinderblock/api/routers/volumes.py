"""/volumes: list, show, create, update, delete, summary and metadata."""
from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api import microversions as mv
from cinderblock.api.context import Ctx, Ver, base_url, min_version
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.routers.listing import parse_bootable, parse_metadata_filter, parse_time_filter
from cinderblock.api.schemas.common import reject_extra
from cinderblock.api.schemas.volumes import MetadataBody, MetaItemBody, VolumeCreateBody, VolumeUpdateBody
from cinderblock.api.views import volumes as views
from cinderblock.api.views.common import Answer
from cinderblock.domain.volumes import VolumeCreate
from cinderblock.model.errors import InvalidInput, NotFound

router = APIRouter(prefix="/v3", tags=["volumes"])

SORTABLE = {"id", "created_at", "updated_at", "display_name", "display_description", "status", "size",
            "availability_zone", "bootable", "project_id", "user_id", "host", "volume_type_id"}
FILTERS = ("name", "status", "metadata", "bootable", "migration_status", "availability_zone", "group_id",
           "size", "created_at", "updated_at", "consumes_quota")
COLUMNS = {"name": "display_name", "status": "status", "availability_zone": "availability_zone",
           "size": "size", "migration_status": "migration_status", "id": "id", "project_id": "project_id",
           "host": "host", "user_id": "user_id", "display_name": "display_name"}
# Filters only administrators may use (a project filters nothing but its own volumes, and never by host).
MEMBER_COLUMNS = {k: v for k, v in COLUMNS.items() if k not in ("project_id", "host")}


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_all")
    query, special = parse_list(request, version, svc.settings.max_limit, SORTABLE, FILTERS,
                                COLUMNS if context.is_admin else MEMBER_COLUMNS, context.is_admin)
    filters: dict[str, Any] = {}
    ranges: dict[str, Any] = {}
    metadata = None
    if "bootable" in special:
        filters["bootable"] = parse_bootable(special["bootable"], version)
    if "metadata" in special:
        metadata = parse_metadata_filter(special["metadata"])
    for name in ("created_at", "updated_at"):
        if name in special and version.at_least(mv.TIME_FILTERS):
            ranges[name] = parse_time_filter(name, special[name])
    if "group_id" in special and version.at_least(mv.GROUP_ID_FILTER):
        filters["group_id"] = special["group_id"]
    query = dataclasses.replace(query, filters={**query.filters, **filters}, ranges=ranges)
    rows, count = svc.volumes.get_all(context, query, truthy(request.query_params.get("all_tenants")), metadata)
    base, prefix = base_url(request, svc.settings.public_endpoint), request.state.url_prefix
    if detailed:
        seen = views.shown(svc.policy, context)
        items = [views.detail(v, version, context, base, prefix, seen) for v in rows]
    else:
        items = [views.summary(v, base, prefix) for v in rows]
    body: dict[str, Any] = {"volumes": items}
    body.update(next_link(request, svc.settings.public_endpoint, "volumes" + ("/detail" if detailed else ""),
                          rows, query.limit, "volumes_links"))
    if count is not None:
        body["count"] = count
    return JSONResponse(body)


@router.get("/volumes", summary="List volumes (id, name, links)")
def list_volumes(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, detailed=False)


@router.get("/volumes/detail", summary="List volumes with details")
def list_volumes_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, detailed=True)


@router.get("/volumes/summary", summary="Count and total size of volumes (3.12)",
            dependencies=[min_version(mv.VOLUME_SUMMARY)])
def volume_summary(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_all")
    summary = svc.volumes.summary(context, truthy(request.query_params.get("all_tenants")))
    if not version.at_least((3, 36)):
        summary.pop("metadata")
    return JSONResponse({"volume-summary": summary})


def _show(request: Request, svc: Svc, context: Ctx, version: Ver, volume_id: str,
          answer: Answer = "show") -> JSONResponse:
    volume = svc.volumes.get(context, volume_id)
    base = base_url(request, svc.settings.public_endpoint)
    return JSONResponse({"volume": views.detail(volume, version, context, base, request.state.url_prefix,
                                                views.shown(svc.policy, context, answer))})


@router.post("/volumes", status_code=202, summary="Create a volume (empty, from a snapshot, or a clone)")
def create_volume(request: Request, body: VolumeCreateBody, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:create")
    spec = body.volume
    reject_extra(spec, version.at_least(mv.STRICT_SCHEMAS), "volume")
    # One source at most (Cinder's create flow: check_exclusive_options, names sorted and spaced).
    sources = {"snapshot": spec.snapshot_id, "source volume": spec.source_volid, "backup": spec.backup_id,
               "imageRef": spec.imageRef if spec.imageRef is not None else spec.image_id}
    if sum(value is not None for value in sources.values()) > 1:
        raise InvalidInput(f"Invalid input received: May specify only one of {', '.join(sorted(sources))}")
    if spec.multiattach:
        raise InvalidInput("Invalid input received: multiattach parameter has been removed. The default "
                           "behavior is to use multiattach enabled volume types.")
    for unsupported in ("backup_id", "imageRef", "image_id"):
        if getattr(spec, unsupported):
            raise InvalidInput(f"Invalid input received: {unsupported} is not supported by this cloud yet.")
    # group_id from 3.13; consistencygroup_id at every version (the CG API is never removed).
    group_id = (spec.group_id if version.at_least(mv.GROUP_VOLUME) else None) or spec.consistencygroup_id
    request_ = VolumeCreate(
        size=spec.size, name=spec.name if spec.name is not None else spec.display_name,
        description=spec.description if spec.description is not None else spec.display_description,
        volume_type=spec.volume_type, metadata=spec.metadata or {}, snapshot_id=spec.snapshot_id,
        source_volid=spec.source_volid, availability_zone=spec.availability_zone, group_id=group_id)
    volume = svc.volumes.create(context, request_)
    base = base_url(request, svc.settings.public_endpoint)
    return JSONResponse({"volume": views.detail(volume, version, context, base, request.state.url_prefix,
                                                views.shown(svc.policy, context, "create"))}, status_code=202)


@router.get("/volumes/{volume_id}", summary="Show a volume")
def show_volume(request: Request, volume_id: str, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:get")
    return _show(request, svc, context, version, volume_id)


@router.put("/volumes/{volume_id}", summary="Rename a volume, change its description or metadata")
def update_volume(request: Request, volume_id: str, body: VolumeUpdateBody, svc: Svc, context: Ctx,
                  version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:update")
    spec = body.volume
    strict = version.at_least(mv.STRICT_SCHEMAS)
    reject_extra(spec, strict, "volume")
    given = spec.model_fields_set
    if strict and not given:
        raise InvalidInput("Invalid input for field/attribute volume. The body names nothing to update.")
    changes: dict[str, Any] = {}
    if "name" in given or "display_name" in given:
        changes["name"] = spec.name if "name" in given else spec.display_name
    if "description" in given or "display_description" in given:
        changes["description"] = spec.description if "description" in given else spec.display_description
    svc.volumes.update(context, volume_id, metadata=spec.metadata if "metadata" in given else None, **changes)
    return _show(request, svc, context, version, volume_id, "update")


@router.delete("/volumes/{volume_id}", status_code=202, summary="Delete a volume (cascade, force from 3.23)")
def delete_volume(request: Request, volume_id: str, svc: Svc, context: Ctx, version: Ver) -> Response:
    params = request.query_params
    force = version.at_least(mv.VOLUME_DELETE_FORCE) and truthy(params.get("force"))
    svc.policy.authorize(context, "volume:force_delete" if force else "volume:delete")
    svc.volumes.delete(context, volume_id, cascade=truthy(params.get("cascade")), force=force)
    return Response(status_code=202)


@router.get("/volumes/{volume_id}/replication",
            summary="A volume's replication: status, and per target the last complete copy and bytes to send "
                    "(admin; cinderblock's own resource, Cinder's volume view has no such keys)")
def show_replication(volume_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:volume_replication:show")
    volume = svc.volumes.get(context, volume_id)
    return JSONResponse({"replication": views.replication(volume)})


# --- metadata -------------------------------------------------------------------------------
@router.get("/volumes/{volume_id}/metadata", summary="A volume's metadata")
def get_metadata(volume_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_volume_metadata")
    return JSONResponse({"metadata": svc.volumes.get(context, volume_id).metadata_dict()})


@router.post("/volumes/{volume_id}/metadata", summary="Merge keys into a volume's metadata")
def merge_metadata(volume_id: str, body: MetadataBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:create_volume_metadata")
    return JSONResponse({"metadata": svc.volumes.set_metadata(context, volume_id, body.metadata, replace=False)})


@router.put("/volumes/{volume_id}/metadata", summary="Replace a volume's metadata")
def replace_metadata(volume_id: str, body: MetadataBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_volume_metadata")
    return JSONResponse({"metadata": svc.volumes.set_metadata(context, volume_id, body.metadata, replace=True)})


@router.get("/volumes/{volume_id}/metadata/{key}", summary="One metadata key of a volume")
def get_metadata_key(volume_id: str, key: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_volume_metadata")
    metadata = svc.volumes.get(context, volume_id).metadata_dict()
    if key not in metadata:
        raise NotFound(f"Metadata key {key} for volume {volume_id} could not be found.")
    return JSONResponse({"meta": {key: metadata[key]}})


@router.put("/volumes/{volume_id}/metadata/{key}", summary="Set one metadata key of a volume")
def set_metadata_key(volume_id: str, key: str, body: MetaItemBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_volume_metadata")
    if key not in body.meta or len(body.meta) != 1:
        raise InvalidInput("Invalid input received: Request body and URI mismatch")
    svc.volumes.set_metadata(context, volume_id, body.meta, replace=False)
    return JSONResponse({"meta": body.meta})


@router.delete("/volumes/{volume_id}/metadata/{key}", summary="Delete one metadata key of a volume")
def delete_metadata_key(volume_id: str, key: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume:delete_volume_metadata")
    svc.volumes.delete_metadata_key(context, volume_id, key)
    return Response(status_code=200)
