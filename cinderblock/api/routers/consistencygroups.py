"""/consistencygroups: the legacy CG API (every microversion), served by groups of the reserved CG type.

Lists show every group of the project (any type), as Cinder does.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import CgCreate, CgDelete, CgFromSrc, CgUpdate, body_of
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput
from cinderblock.model.group_states import CG_GROUP_TYPE

router = APIRouter(prefix="/v3", tags=["consistency groups"])
SORTABLE = {"id", "created_at", "updated_at", "display_name", "status", "project_id"}
FILTERS = ("name", "status")
COLUMNS = {"name": "display_name", "status": "status", "id": "id", "project_id": "project_id"}


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "group:get_all")
    query, _ = parse_list(request, version, svc.settings.max_limit, SORTABLE, FILTERS, COLUMNS, True)
    rows, _count = svc.groups.get_all(context, query, truthy(request.query_params.get("all_tenants")), cg_api=True)
    items = [views.consistencygroup(r) if detailed else views.summary(r) for r in rows]
    body: dict[str, Any] = {"consistencygroups": items}
    body.update(next_link(request, svc.settings.public_endpoint, "consistencygroups" + ("/detail" if detailed else ""),
                          rows, query.limit, "consistencygroup_links"))
    return JSONResponse(body)


@router.get("/consistencygroups", summary="List consistency groups")
def list_cgs(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, False)


@router.get("/consistencygroups/detail", summary="List consistency groups with details")
def list_cgs_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, True)


@router.get("/consistencygroups/{cg_id}", summary="Show a consistency group")
def show_cg(cg_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:get")
    return JSONResponse({"consistencygroup": views.consistencygroup(svc.groups.get(context, cg_id, cg_api=True))})


@router.post("/consistencygroups", status_code=202, summary="Create a consistency group")
def create_cg(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create")
    spec = body_of(CgCreate, body, "consistencygroup")
    types = [t.strip() for t in (spec.volume_types or "").split(",") if t.strip()]
    if not types:
        raise InvalidInput("Invalid input received: volume_types must be provided to create consistency group "
                           f"{spec.name}.")
    row = svc.groups.create(context, CG_GROUP_TYPE, types, spec.name, spec.description, spec.availability_zone,
                             cg_api=True)
    return JSONResponse({"consistencygroup": views.summary(row)}, status_code=202)


@router.post("/consistencygroups/create_from_src", status_code=202,
             summary="Create a consistency group from a cgsnapshot or another CG")
def create_cg_from_src(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create_from_src")
    spec = body_of(CgFromSrc, body, "consistencygroup-from-src")
    row = svc.groups.create_from_src(context, spec.cgsnapshot_id, spec.source_cgid, spec.name, spec.description,
                                      cg_api=True)
    return JSONResponse({"consistencygroup": views.summary(row)}, status_code=202)


@router.put("/consistencygroups/{cg_id}", status_code=202, summary="Rename a CG or add/remove volumes")
def update_cg(cg_id: str, svc: Svc, context: Ctx, version: Ver, body: Any = Body(...)) -> Response:
    svc.policy.authorize(context, "group:update")
    spec = body_of(CgUpdate, body, "consistencygroup")
    fields = ("name", "description", "add_volumes", "remove_volumes")
    given = {k for k in fields if k in spec.model_fields_set and getattr(spec, k) is not None}
    # Below 3.6 empty strings count as absent; from 3.6 "" may clear a name or description.
    meaningful = given if version.at_least((3, 6)) else {k for k in given if getattr(spec, k)}
    if not meaningful:
        raise InvalidInput("Invalid input received: Name, description, add_volumes, and remove_volumes can not be "
                           "all empty in the request body.")
    changes = {k: getattr(spec, k) for k in ("name", "description") if k in meaningful}
    svc.groups.update(context, cg_id, add_volumes=spec.add_volumes, remove_volumes=spec.remove_volumes,
                       cg_api=True, **changes)
    return Response(status_code=202)


@router.post("/consistencygroups/{cg_id}/delete", status_code=202, summary="Delete a CG (force: with its volumes)")
def delete_cg(cg_id: str, svc: Svc, context: Ctx, body: Any = Body(None)) -> Response:
    svc.policy.authorize(context, "group:delete")
    # openstacksdk sends {"consistency_group": {...}}: accepted as the same body.
    key = "consistency_group" if isinstance(body, dict) and "consistency_group" in body else "consistencygroup"
    spec = body_of(CgDelete, body or {}, key, allow_empty=True)
    svc.groups.delete(context, cg_id, delete_volumes=spec.force, cg_api=True)
    return Response(status_code=202)
