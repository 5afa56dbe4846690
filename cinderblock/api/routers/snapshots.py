"""/snapshots: list, show, create, rename, delete, actions and metadata."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api import microversions as mv
from cinderblock.api.actions import parse, split_action, unknown_action
from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.routers.listing import parse_metadata_filter
from cinderblock.api.schemas.common import reject_extra
from cinderblock.api.schemas.snapshots import (SnapshotCreateBody, SnapshotResetStatus, SnapshotStatusReport,
                                               SnapshotUpdateBody)
from cinderblock.api.schemas.volumes import MetadataBody, MetaItemBody
from cinderblock.api.views import snapshots as views
from cinderblock.model.errors import InvalidInput, NotFound

router = APIRouter(prefix="/v3", tags=["snapshots"])
SORTABLE = {"id", "created_at", "updated_at", "display_name", "status", "volume_size", "volume_id", "project_id"}
FILTERS = ("name", "status", "volume_id", "metadata", "availability_zone", "consumes_quota")
COLUMNS = {"name": "display_name", "status": "status", "volume_id": "volume_id", "id": "id",
           "project_id": "project_id", "display_name": "display_name"}
MEMBER_COLUMNS = {k: v for k, v in COLUMNS.items() if k != "project_id"}  # a project lists only its own


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_all_snapshots")
    query, special = parse_list(request, version, svc.settings.max_limit, SORTABLE, FILTERS,
                                COLUMNS if context.is_admin else MEMBER_COLUMNS, context.is_admin)
    metadata = parse_metadata_filter(special["metadata"]) if "metadata" in special else None
    rows, count = svc.snapshots.list(context, query, truthy(request.query_params.get("all_tenants")), metadata)
    if detailed:
        extended = views.shown(svc.policy, context)
        items = [views.detail(s, version, extended) for s in rows]
    else:
        items = [views.summary(s) for s in rows]
    body: dict[str, Any] = {"snapshots": items}
    body.update(next_link(request, svc.settings.public_endpoint, "snapshots" + ("/detail" if detailed else ""),
                          rows, query.limit, "snapshots_links"))
    if count is not None:
        body["count"] = count
    return JSONResponse(body)


@router.get("/snapshots", summary="List snapshots")
def list_snapshots(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, detailed=False)


@router.get("/snapshots/detail", summary="List snapshots with details")
def list_snapshots_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, detailed=True)


@router.post("/snapshots", status_code=202, summary="Snapshot a volume")
def create_snapshot(body: SnapshotCreateBody, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:create_snapshot")
    spec = body.snapshot
    reject_extra(spec, True, "snapshot")
    if version.at_least(mv.SNAPSHOT_IN_USE) and spec.force is False:
        raise InvalidInput("Invalid input received: Since microversion 3.66 'force' may only be true or absent.")
    snapshot = svc.snapshots.create(
        context, spec.volume_id, spec.name if spec.name is not None else spec.display_name,
        spec.description if spec.description is not None else spec.display_description,
        bool(spec.force), spec.metadata or {}, version.at_least(mv.SNAPSHOT_IN_USE))
    extended = views.shown(svc.policy, context, "create")
    return JSONResponse({"snapshot": views.detail(snapshot, version, extended)}, status_code=202)


@router.get("/snapshots/{snapshot_id}", summary="Show a snapshot")
def show_snapshot(snapshot_id: str, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_snapshot")
    return JSONResponse({"snapshot": views.detail(svc.snapshots.get(context, snapshot_id), version,
                                                  views.shown(svc.policy, context))})


@router.put("/snapshots/{snapshot_id}", summary="Rename a snapshot or change its description")
def update_snapshot(snapshot_id: str, body: SnapshotUpdateBody, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_snapshot")
    spec = body.snapshot
    reject_extra(spec, True, "snapshot")
    given = spec.model_fields_set
    if not given:
        raise InvalidInput("Invalid input for field/attribute snapshot. The body names nothing to update.")
    changes: dict[str, Any] = {}
    if "name" in given or "display_name" in given:
        changes["name"] = spec.name if "name" in given else spec.display_name
    if "description" in given or "display_description" in given:
        changes["description"] = spec.description if "description" in given else spec.display_description
    snapshot = svc.snapshots.update(context, snapshot_id, **changes)
    extended = views.shown(svc.policy, context, "update")
    return JSONResponse({"snapshot": views.detail(snapshot, version, extended)})


@router.delete("/snapshots/{snapshot_id}", status_code=202, summary="Delete a snapshot")
def delete_snapshot(snapshot_id: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume:delete_snapshot")
    svc.snapshots.delete(context, snapshot_id)
    return Response(status_code=202)


@router.post("/snapshots/{snapshot_id}/action",
             summary="os-reset_status, os-force_delete (admin) or os-update_snapshot_status of a snapshot")
def snapshot_action(snapshot_id: str, svc: Svc, context: Ctx,
                    body: dict[str, Any] = Body(..., examples=[{"os-reset_status": {"status": "available"}}]),
                    ) -> Response:
    name, value = split_action(body)
    if name == "os-reset_status":
        svc.policy.authorize(context, "volume_extension:snapshot_admin_actions:reset_status")
        svc.snapshots.reset_status(context, snapshot_id, parse(SnapshotResetStatus, value, name).status)
    elif name == "os-force_delete":
        svc.policy.authorize(context, "volume_extension:snapshot_admin_actions:force_delete")
        svc.snapshots.delete(context, snapshot_id, force=True)
    elif name == "os-update_snapshot_status":
        svc.policy.authorize(context, "snapshot_extension:snapshot_actions:update_snapshot_status")
        report = parse(SnapshotStatusReport, value, name)
        svc.snapshots.report_status(context, snapshot_id, report.status, report.progress)
    else:
        raise unknown_action(name)
    return Response(status_code=202)


@router.get("/snapshots/{snapshot_id}/metadata", summary="A snapshot's metadata")
def get_metadata(snapshot_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_snapshot_metadata")
    return JSONResponse({"metadata": svc.snapshots.get(context, snapshot_id).metadata_dict()})


@router.post("/snapshots/{snapshot_id}/metadata", summary="Merge keys into a snapshot's metadata")
def merge_metadata(snapshot_id: str, body: MetadataBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_snapshot_metadata")
    return JSONResponse({"metadata": svc.snapshots.set_metadata(context, snapshot_id, body.metadata, False)})


@router.put("/snapshots/{snapshot_id}/metadata", summary="Replace a snapshot's metadata")
def replace_metadata(snapshot_id: str, body: MetadataBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_snapshot_metadata")
    return JSONResponse({"metadata": svc.snapshots.set_metadata(context, snapshot_id, body.metadata, True)})


@router.get("/snapshots/{snapshot_id}/metadata/{key}", summary="One metadata key of a snapshot")
def get_metadata_key(snapshot_id: str, key: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:get_snapshot_metadata")
    metadata = svc.snapshots.get(context, snapshot_id).metadata_dict()
    if key not in metadata:
        raise NotFound(f"Metadata key {key} for snapshot {snapshot_id} could not be found.")
    return JSONResponse({"meta": {key: metadata[key]}})


@router.put("/snapshots/{snapshot_id}/metadata/{key}", summary="Set one metadata key of a snapshot")
def set_metadata_key(snapshot_id: str, key: str, body: MetaItemBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume:update_snapshot_metadata")
    if key not in body.meta or len(body.meta) != 1:
        raise InvalidInput("Invalid input received: Request body and URI mismatch")
    svc.snapshots.set_metadata(context, snapshot_id, body.meta, False)
    return JSONResponse({"meta": body.meta})


@router.delete("/snapshots/{snapshot_id}/metadata/{key}", summary="Delete one metadata key of a snapshot")
def delete_metadata_key(snapshot_id: str, key: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume:delete_snapshot_metadata")
    svc.snapshots.delete_metadata_key(context, snapshot_id, key)
    return Response(status_code=200)


