"""Quota sets and absolute limits."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import Svc
from cinderblock.api.paging import DB_MAX_INT, truthy
from cinderblock.model.errors import InvalidInput

router = APIRouter(prefix="/v3", tags=["quotas"])


@router.get("/os-quota-sets/{project_id}/defaults", summary="Default quotas")
def quota_defaults(project_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:quotas:show", project_id)
    return JSONResponse({"quota_set": {"id": project_id, **svc.limits.defaults_set(context)}})


@router.get("/os-quota-sets/{project_id}", summary="A project's quotas (usage=true adds in_use)")
def quota_show(request: Request, project_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:quotas:show", project_id)
    usage = truthy(request.query_params.get("usage"))
    return JSONResponse({"quota_set": {"id": project_id, **svc.limits.quota_set(context, project_id, usage)}})


@router.put("/os-quota-sets/{project_id}", summary="Change a project's quotas (admin)")
def quota_update(project_id: str, svc: Svc, context: Ctx,
                 body: dict[str, Any] = Body(..., examples=[{"quota_set": {"volumes": 20}}])) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:quotas:update", project_id)
    quota_set = body.get("quota_set")
    if not isinstance(quota_set, dict) or not quota_set:
        raise InvalidInput("Invalid input received: Missing required element 'quota_set' in request body.")
    values: dict[str, int] = {}
    for key, value in quota_set.items():
        if key in ("tenant_id", "id"):
            continue
        try:
            values[key] = int(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"Invalid input received: Quota '{key}' must be an integer, not {value!r}.") from None
        if values[key] > DB_MAX_INT:  # a database INTEGER holds no more (Cinder's bound too)
            raise InvalidInput(f"Invalid input received: Quota '{key}' must be <= {DB_MAX_INT}.")
    return JSONResponse({"quota_set": svc.limits.update(context, project_id, values)})


@router.delete("/os-quota-sets/{project_id}", summary="Reset a project's quotas to the defaults (admin)")
def quota_delete(project_id: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "volume_extension:quotas:delete", project_id)
    svc.limits.reset(context, project_id)
    return Response(status_code=200)  # Cinder answers with no body


@router.get("/limits", summary="Absolute limits and usage of the caller's project")
def limits(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    project_id = context.project_id
    if version.at_least((3, 39)) and request.query_params.get("project_id"):
        project_id = request.query_params["project_id"]
    svc.policy.authorize(context, "limits_extension:used_limits", project_id)
    return JSONResponse({"limits": {"rate": [], "absolute": svc.limits.absolute(context, project_id)}})
