"""/group_snapshots (3.14): list, show, create, delete, reset_status (3.19)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.actions import split_action, unknown_action
from cinderblock.api.context import Ctx, Ver, min_version
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import GroupSnapshotCreate, ResetStatus, body_of
from cinderblock.api.views import groups as views

router = APIRouter(prefix="/v3", tags=["group snapshots"], dependencies=[min_version((3, 14))])
SORTABLE = {"id", "created_at", "updated_at", "display_name", "status", "group_id", "project_id"}
FILTERS = ("name", "status", "group_id")
COLUMNS = {"name": "display_name", "status": "status", "group_id": "group_id", "id": "id",
           "project_id": "project_id"}


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "group:get_all_group_snapshots")
    query, _ = parse_list(request, version, svc.settings.max_limit, SORTABLE, FILTERS, COLUMNS, context.is_admin)
    rows, count = svc.group_snapshots.get_all(context, query, truthy(request.query_params.get("all_tenants")))
    items = [views.group_snapshot(r, version) if detailed else views.summary(r) for r in rows]
    body: dict[str, Any] = {"group_snapshots": items}
    body.update(next_link(request, svc.settings.public_endpoint, "group_snapshots" + ("/detail" if detailed else ""),
                          rows, query.limit, "group_snapshots_links"))
    if count is not None:
        body["count"] = count
    return JSONResponse(body)


@router.get("/group_snapshots", summary="List group snapshots")
def list_group_snapshots(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, False)


@router.get("/group_snapshots/detail", summary="List group snapshots with details")
def list_group_snapshots_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, True)


@router.get("/group_snapshots/{ident}", summary="Show a group snapshot")
def show_group_snapshot(ident: str, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "group:get_group_snapshot")
    return JSONResponse({"group_snapshot": views.group_snapshot(svc.group_snapshots.get(context, ident), version)})


@router.get("/group_snapshots/{ident}/consistency",
            summary="Whether the members were taken at one instant, and how long writes were held (cinderblock's "
                    "own resource: Cinder's group snapshot view has no such keys)")
def show_consistency(ident: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:get_group_snapshot")
    return JSONResponse({"consistency": views.consistency(svc.group_snapshots.get(context, ident))})


@router.post("/group_snapshots", status_code=202, summary="Snapshot every volume of a group at one instant")
def create_group_snapshot(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create_group_snapshot")
    spec = body_of(GroupSnapshotCreate, body, "group_snapshot")
    row = svc.group_snapshots.create(context, spec.group_id, spec.name, spec.description)
    return JSONResponse({"group_snapshot": {"id": row.id, "name": row.display_name,
                                            "group_type_id": row.group_type_id}}, status_code=202)


@router.delete("/group_snapshots/{ident}", status_code=202, summary="Delete a group snapshot")
def delete_group_snapshot(ident: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "group:delete_group_snapshot")
    svc.group_snapshots.delete(context, ident)
    return Response(status_code=202)


@router.post("/group_snapshots/{ident}/action", status_code=202, summary="reset_status of a group snapshot (3.19)")
def group_snapshot_action(ident: str, svc: Svc, context: Ctx, version: Ver,
                          body: Any = Body(...)) -> Response:
    name, _ = split_action(body)
    if name != "reset_status" or not version.at_least((3, 19)):
        raise unknown_action(name)
    svc.policy.authorize(context, "group:reset_group_snapshot_status")
    svc.group_snapshots.reset_status(context, ident, body_of(ResetStatus, body, name).status)
    return Response(status_code=202)
