"""/types: volume types, extra specs and project access."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.actions import parse, split_action, unknown_action
from cinderblock.api.context import Ctx
from cinderblock.api.deps import Svc
from cinderblock.api.paging import TYPE_SORT_FIELDS, is_public_filter, sort_records
from cinderblock.api.schemas.types import ExtraSpecsBody, ProjectAccess, TypeCreateBody, TypeUpdateBody
from cinderblock.api.views import types as views
from cinderblock.model.errors import InvalidInput, NotFound

router = APIRouter(prefix="/v3", tags=["volume types"])


@router.get("/types", summary="List volume types")
def list_types(request: Request, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:type_get_all")
    params = request.query_params
    rows = sort_records(svc.types.get_all(context, is_public_filter(params.get("is_public")), params.get("name")),
                        params, TYPE_SORT_FIELDS)
    seen = views.shown(svc.policy, context)
    return JSONResponse({"volume_types": [views.detail(t, context, seen) for t in rows]})


@router.get("/types/{type_id}", summary="Show a volume type (id, name, or 'default')")
def show_type(type_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:type_get")
    return JSONResponse({"volume_type": views.detail(svc.types.get(context, type_id), context,
                                                     views.shown(svc.policy, context))})


@router.post("/types", summary="Create a volume type")
def create_type(body: TypeCreateBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_manage")
    spec = body.volume_type
    is_public = spec.is_public if spec.is_public is not None else bool((spec.model_extra or {}).get("is_public", True))
    volume_type = svc.types.create(spec.name, spec.description, is_public, dict(spec.extra_specs or {}))
    seen = views.shown(svc.policy, context, "create")
    return JSONResponse({"volume_type": views.detail(volume_type, context, seen)})


@router.put("/types/{type_id}", summary="Rename a volume type, change its description or visibility")
def update_type(type_id: str, body: TypeUpdateBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_manage")
    spec = body.volume_type
    if spec.name is None and spec.description is None and spec.is_public is None:
        raise InvalidInput("Invalid input received: Specify volume type name, description, is_public or a "
                           "combination thereof.")
    volume_type = svc.types.update(context, type_id, spec.name, spec.description, spec.is_public)
    seen = views.shown(svc.policy, context, "update")
    return JSONResponse({"volume_type": views.detail(volume_type, context, seen)})


@router.delete("/types/{type_id}", status_code=202, summary="Delete a volume type")
def delete_type(type_id: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume_extension:types_manage")
    svc.types.delete(context, type_id)
    return Response(status_code=202)


@router.get("/types/{type_id}/extra_specs", summary="A volume type's extra specs")
def list_specs(type_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_extra_specs:index")
    return JSONResponse({"extra_specs": svc.types.get(context, type_id).specs()})


@router.post("/types/{type_id}/extra_specs", summary="Set extra specs of a volume type")
def set_specs(type_id: str, body: ExtraSpecsBody, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_extra_specs:create")
    return JSONResponse({"extra_specs": svc.types.set_specs(context, type_id, dict(body.extra_specs))})


@router.get("/types/{type_id}/extra_specs/{key}", summary="One extra spec of a volume type")
def get_spec(type_id: str, key: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_extra_specs:show")
    specs = svc.types.get(context, type_id).specs()
    if key not in specs:
        raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.")
    return JSONResponse({key: specs[key]})


@router.put("/types/{type_id}/extra_specs/{key}", summary="Set one extra spec of a volume type")
def put_spec(type_id: str, key: str, svc: Svc, context: Ctx, body: dict[str, str] = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:types_extra_specs:update")
    if key not in body or len(body) != 1:
        raise InvalidInput("Invalid input received: Request body and URI mismatch")
    return JSONResponse(svc.types.set_specs(context, type_id, body))


@router.delete("/types/{type_id}/extra_specs/{key}", status_code=202, summary="Delete one extra spec")
def delete_spec(type_id: str, key: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume_extension:types_extra_specs:delete")
    svc.types.delete_spec(context, type_id, key)
    return Response(status_code=202)


@router.get("/types/{type_id}/os-volume-type-access", summary="Projects that may use a private type")
def list_access(type_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:volume_type_access:get_all_for_type")
    rows = svc.types.access_list(context, type_id)
    volume_type = svc.types.get(context, type_id)
    return JSONResponse({"volume_type_access": [{"volume_type_id": volume_type.id, "project_id": r.project_id}
                                                for r in rows]})


@router.post("/types/{type_id}/action", status_code=202, summary="addProjectAccess or removeProjectAccess")
def type_action(type_id: str, svc: Svc, context: Ctx,
                body: dict[str, Any] = Body(..., examples=[{"addProjectAccess": {"project": "p1"}}])) -> Response:
    name, value = split_action(body)
    if name in ("addProjectAccess", "removeProjectAccess"):
        svc.policy.authorize(context, f"volume_extension:volume_type_access:{name}")
    if name == "addProjectAccess":
        svc.types.add_access(context, type_id, parse(ProjectAccess, value, name).project)
    elif name == "removeProjectAccess":
        svc.types.remove_access(context, type_id, parse(ProjectAccess, value, name).project)
    else:
        raise unknown_action(name)
    return Response(status_code=202)
