"""/cgsnapshots: the legacy CG snapshot API, served by group snapshots."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import CgSnapshotCreate, body_of
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput

router = APIRouter(prefix="/v3", tags=["cgsnapshots"])


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "group:get_all_group_snapshots")
    # Cinder's cgsnapshot list ignores filters: only offset and limit apply.
    query, _ = parse_list(request, version, svc.settings.max_limit, {"created_at", "id"}, ("name",), {}, True)
    rows, _count = svc.group_snapshots.get_all(context, query, truthy(request.query_params.get("all_tenants")),
                                             cg_api=True)
    items = [views.cgsnapshot(r) if detailed else views.summary(r) for r in rows]
    body: dict[str, Any] = {"cgsnapshots": items}
    body.update(next_link(request, svc.settings.public_endpoint, "cgsnapshots" + ("/detail" if detailed else ""),
                          rows, query.limit, "cgsnapshots_links"))
    return JSONResponse(body)


@router.get("/cgsnapshots", summary="List cgsnapshots")
def list_cgsnapshots(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, False)


@router.get("/cgsnapshots/detail", summary="List cgsnapshots with details")
def list_cgsnapshots_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, True)


@router.get("/cgsnapshots/{ident}", summary="Show a cgsnapshot")
def show_cgsnapshot(ident: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:get_group_snapshot")
    return JSONResponse({"cgsnapshot": views.cgsnapshot(svc.group_snapshots.get(context, ident, cg_api=True))})


@router.get("/cgsnapshots/{ident}/consistency", summary="As /group_snapshots/{id}/consistency, for a cgsnapshot")
def show_cgsnapshot_consistency(ident: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:get_group_snapshot")
    return JSONResponse({"consistency": views.consistency(svc.group_snapshots.get(context, ident, cg_api=True))})


@router.post("/cgsnapshots", status_code=202, summary="Snapshot every volume of a CG at one instant")
def create_cgsnapshot(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create_group_snapshot")
    spec = body_of(CgSnapshotCreate, body, "cgsnapshot")
    if not spec.consistencygroup_id:
        raise InvalidInput("Invalid input received: 'consistencygroup_id' must be specified")
    row = svc.group_snapshots.create(context, spec.consistencygroup_id, spec.name, spec.description, cg_api=True)
    return JSONResponse({"cgsnapshot": views.summary(row)}, status_code=202)


@router.delete("/cgsnapshots/{ident}", status_code=202, summary="Delete a cgsnapshot")
def delete_cgsnapshot(ident: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "group:delete_group_snapshot")
    svc.group_snapshots.delete(context, ident, cg_api=True)
    return Response(status_code=202)
