"""/cgsnapshots: the legacy CG snapshot API, served by group snapshots."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, Ver, authorize
from cinderblock.api.group_deps import GSvc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import CgSnapshotCreate, body_of
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput

router = APIRouter(prefix="/v3", tags=["cgsnapshots"])


def _list(request: Request, gsvc: GSvc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    # Cinder's cgsnapshot list ignores filters: only offset and limit apply.
    query, _ = parse_list(request, version, gsvc.max_limit, {"created_at", "id"}, ("name",), {}, True)
    rows, _count = gsvc.group_snapshots.get_all(context, query, truthy(request.query_params.get("all_tenants")),
                                             cg_api=True)
    items = [views.cgsnapshot(r) if detailed else views.summary(r) for r in rows]
    body: dict[str, Any] = {"cgsnapshots": items}
    body.update(next_link(request, gsvc.public_endpoint, "cgsnapshots" + ("/detail" if detailed else ""),
                          rows, query.limit, "cgsnapshots_links"))
    return JSONResponse(body)


@router.get("/cgsnapshots", summary="List cgsnapshots", dependencies=[authorize("group:get_all_group_snapshots")])
def list_cgsnapshots(request: Request, gsvc: GSvc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, gsvc, context, version, False)


@router.get("/cgsnapshots/detail", summary="List cgsnapshots with details",
            dependencies=[authorize("group:get_all_group_snapshots")])
def list_cgsnapshots_detail(request: Request, gsvc: GSvc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, gsvc, context, version, True)


@router.get("/cgsnapshots/{ident}", summary="Show a cgsnapshot", dependencies=[authorize("group:get_group_snapshot")])
def show_cgsnapshot(ident: str, gsvc: GSvc, context: Ctx) -> JSONResponse:
    return JSONResponse({"cgsnapshot": views.cgsnapshot(gsvc.group_snapshots.get(context, ident, cg_api=True))})


@router.get("/cgsnapshots/{ident}/consistency", summary="As /group_snapshots/{id}/consistency, for a cgsnapshot",
            dependencies=[authorize("group:get_group_snapshot")])
def show_cgsnapshot_consistency(ident: str, gsvc: GSvc, context: Ctx) -> JSONResponse:
    return JSONResponse({"consistency": views.consistency(gsvc.group_snapshots.get(context, ident, cg_api=True))})


@router.post("/cgsnapshots", status_code=202, summary="Snapshot every volume of a CG at one instant",
             dependencies=[authorize("group:create_group_snapshot")])
def create_cgsnapshot(gsvc: GSvc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    spec = body_of(CgSnapshotCreate, body, "cgsnapshot")
    if not spec.consistencygroup_id:
        raise InvalidInput("Invalid input received: 'consistencygroup_id' must be specified")
    row = gsvc.group_snapshots.create(context, spec.consistencygroup_id, spec.name, spec.description, cg_api=True)
    return JSONResponse({"cgsnapshot": views.summary(row)}, status_code=202)


@router.delete("/cgsnapshots/{ident}", status_code=202, summary="Delete a cgsnapshot",
               dependencies=[authorize("group:delete_group_snapshot")])
def delete_cgsnapshot(ident: str, gsvc: GSvc, context: Ctx) -> Response:
    gsvc.group_snapshots.delete(context, ident, cg_api=True)
    return Response(status_code=202)
