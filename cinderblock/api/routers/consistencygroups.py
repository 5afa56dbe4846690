"""/consistencygroups: the legacy CG API (every microversion), served by groups of the reserved CG type.

Lists show every group of the project (any type), as Cinder does.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, Ver, authorize
from cinderblock.api.group_deps import GSvc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import CgCreate, CgDelete, CgFromSrc, CgUpdate, body_of
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput
from cinderblock.model.group_states import CG_GROUP_TYPE

router = APIRouter(prefix="/v3", tags=["consistency groups"])
SORTABLE = {"id", "created_at", "updated_at", "display_name", "status", "project_id"}
FILTERS = ("name", "status")
COLUMNS = {"name": "display_name", "status": "status", "id": "id", "project_id": "project_id"}


def _list(request: Request, gsvc: GSvc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    query, _ = parse_list(request, version, gsvc.max_limit, SORTABLE, FILTERS, COLUMNS, True)
    rows, _count = gsvc.groups.get_all(context, query, truthy(request.query_params.get("all_tenants")), cg_api=True)
    items = [views.consistencygroup(r) if detailed else views.summary(r) for r in rows]
    body: dict[str, Any] = {"consistencygroups": items}
    body.update(next_link(request, gsvc.public_endpoint, "consistencygroups" + ("/detail" if detailed else ""),
                          rows, query.limit, "consistencygroup_links"))
    return JSONResponse(body)


@router.get("/consistencygroups", summary="List consistency groups", dependencies=[authorize("group:get_all")])
def list_cgs(request: Request, gsvc: GSvc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, gsvc, context, version, False)


@router.get("/consistencygroups/detail", summary="List consistency groups with details",
            dependencies=[authorize("group:get_all")])
def list_cgs_detail(request: Request, gsvc: GSvc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, gsvc, context, version, True)


@router.get("/consistencygroups/{cg_id}", summary="Show a consistency group", dependencies=[authorize("group:get")])
def show_cg(cg_id: str, gsvc: GSvc, context: Ctx) -> JSONResponse:
    return JSONResponse({"consistencygroup": views.consistencygroup(gsvc.groups.get(context, cg_id, cg_api=True))})


@router.post("/consistencygroups", status_code=202, summary="Create a consistency group",
             dependencies=[authorize("group:create")])
def create_cg(gsvc: GSvc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    spec = body_of(CgCreate, body, "consistencygroup")
    types = [t.strip() for t in (spec.volume_types or "").split(",") if t.strip()]
    if not types:
        raise InvalidInput("Invalid input received: volume_types must be provided to create consistency group "
                           f"{spec.name}.")
    row = gsvc.groups.create(context, CG_GROUP_TYPE, types, spec.name, spec.description, spec.availability_zone,
                             cg_api=True)
    return JSONResponse({"consistencygroup": views.summary(row)}, status_code=202)


@router.post("/consistencygroups/create_from_src", status_code=202,
             summary="Create a consistency group from a cgsnapshot or another CG",
             dependencies=[authorize("group:create_from_src")])
def create_cg_from_src(gsvc: GSvc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    spec = body_of(CgFromSrc, body, "consistencygroup-from-src")
    row = gsvc.groups.create_from_src(context, spec.cgsnapshot_id, spec.source_cgid, spec.name, spec.description,
                                      cg_api=True)
    return JSONResponse({"consistencygroup": views.summary(row)}, status_code=202)


@router.put("/consistencygroups/{cg_id}", status_code=202, summary="Rename a CG or add/remove volumes",
            dependencies=[authorize("group:update")])
def update_cg(cg_id: str, gsvc: GSvc, context: Ctx, version: Ver, body: Any = Body(...)) -> Response:
    spec = body_of(CgUpdate, body, "consistencygroup")
    fields = ("name", "description", "add_volumes", "remove_volumes")
    given = {k for k in fields if k in spec.model_fields_set and getattr(spec, k) is not None}
    # Below 3.6 empty strings count as absent; from 3.6 "" may clear a name or description.
    meaningful = given if version.at_least((3, 6)) else {k for k in given if getattr(spec, k)}
    if not meaningful:
        raise InvalidInput("Invalid input received: Name, description, add_volumes, and remove_volumes can not be "
                           "all empty in the request body.")
    changes = {k: getattr(spec, k) for k in ("name", "description") if k in meaningful}
    gsvc.groups.update(context, cg_id, add_volumes=spec.add_volumes, remove_volumes=spec.remove_volumes,
                       cg_api=True, **changes)
    return Response(status_code=202)


@router.post("/consistencygroups/{cg_id}/delete", status_code=202, summary="Delete a CG (force: with its volumes)",
             dependencies=[authorize("group:delete")])
def delete_cg(cg_id: str, gsvc: GSvc, context: Ctx, body: Any = Body(None)) -> Response:
    # openstacksdk sends {"consistency_group": {...}}: accepted as the same body.
    key = "consistency_group" if isinstance(body, dict) and "consistency_group" in body else "consistencygroup"
    spec = body_of(CgDelete, body or {}, key, allow_empty=True)
    gsvc.groups.delete(context, cg_id, delete_volumes=spec.force, cg_api=True)
    return Response(status_code=202)
