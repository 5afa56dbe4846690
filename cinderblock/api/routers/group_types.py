"""/group_types (3.11): list, show, create, update, delete, and their group specs."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, min_version
from cinderblock.api.deps import Svc
from cinderblock.api.paging import TYPE_SORT_FIELDS, is_public_filter, sort_records
from cinderblock.api.schemas.groups import GroupSpecs, GroupTypeCreate, GroupTypeUpdate, body_of
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput, NotFound

router = APIRouter(prefix="/v3", tags=["group types"], dependencies=[min_version((3, 11))])


@router.get("/group_types", summary="List group types")
def list_group_types(request: Request, svc: Svc, context: Ctx) -> JSONResponse:
    params = request.query_params
    rows = sort_records(
        svc.group_types.get_all(context, is_public_filter(params.get("is_public")), params.get("name")),
        params, TYPE_SORT_FIELDS)
    specs = svc.policy.check(context, "group:access_group_types_specs")
    return JSONResponse({"group_types": [views.group_type(r, specs) for r in rows]})


@router.get("/group_types/{ref}", summary="Show a group type (or the default one)")
def show_group_type(ref: str, svc: Svc, context: Ctx) -> JSONResponse:
    return JSONResponse({"group_type": views.group_type(svc.group_types.get(context, ref),
                                                        svc.policy.check(context, "group:access_group_types_specs"))})


@router.post("/group_types", status_code=202, summary="Create a group type")
def create_group_type(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_manage")
    spec = body_of(GroupTypeCreate, body, "group_type")
    row = svc.group_types.create(spec.name, spec.description, spec.is_public, spec.group_specs or {})
    return JSONResponse({"group_type": views.group_type(row)}, status_code=202)


@router.put("/group_types/{ref}", summary="Rename a group type, change its description or visibility")
def update_group_type(ref: str, svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_manage")
    spec = body_of(GroupTypeUpdate, body, "group_type")
    if spec.name is None and spec.description is None and spec.is_public is None:
        raise InvalidInput("Invalid input received: Specify group type name, description or is_public.")
    if spec.name is not None and not spec.name.strip():
        raise InvalidInput("Invalid input received: Group type name can not be empty.")
    row = svc.group_types.update(context, ref, spec.name, spec.description, spec.is_public)
    return JSONResponse({"group_type": views.group_type(row)})


@router.delete("/group_types/{ref}", status_code=202, summary="Delete a group type")
def delete_group_type(ref: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "group:group_types_manage")
    svc.group_types.delete(context, ref)
    return Response(status_code=202)


@router.get("/group_types/{ref}/group_specs", summary="A group type's specs")
def list_specs(ref: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_specs")
    return JSONResponse({"group_specs": svc.group_types.specs(context, ref)})


@router.post("/group_types/{ref}/group_specs", status_code=202, summary="Set group specs")
def set_specs(ref: str, svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_specs")
    if not isinstance(body, dict) or not isinstance(body.get("group_specs"), dict):
        raise InvalidInput("Missing required element 'group_specs' in request body.")
    specs = GroupSpecs.model_validate(body).group_specs
    return JSONResponse({"group_specs": svc.group_types.set_specs(context, ref, specs)}, status_code=202)


@router.get("/group_types/{ref}/group_specs/{key}", summary="One group spec")
def show_spec(ref: str, key: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_specs")
    specs = svc.group_types.specs(context, ref)
    if key not in specs:
        raise NotFound(f"Group Type {ref} has no specs with key {key}.")
    return JSONResponse({key: specs[key]})


@router.put("/group_types/{ref}/group_specs/{key}", summary="Set one group spec")
def update_spec(ref: str, key: str, svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:group_types_specs")
    if not isinstance(body, dict) or key not in body or len(body) != 1:
        raise InvalidInput("Invalid input received: Request body and URI mismatch")
    svc.group_types.set_specs(context, ref, {key: str(body[key])})
    return JSONResponse({key: str(body[key])})


@router.delete("/group_types/{ref}/group_specs/{key}", status_code=202, summary="Delete one group spec")
def delete_spec(ref: str, key: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "group:group_types_specs")
    svc.group_types.delete_spec(context, ref, key)
    return Response(status_code=202)
