"""os-services, availability zones, pools and backend capabilities."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api import microversions as mv
from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import Svc
from cinderblock.api.paging import truthy
from cinderblock.api.views.common import timestamp
from cinderblock.db import tables
from cinderblock.model.errors import InvalidInput
from cinderblock.scheduler import pools as pool_queries

router = APIRouter(prefix="/v3", tags=["services"])
# PUT /os-services/{action}: the policy rule of each action (enable, disable, set-log…: services:update).
SERVICE_ACTION_RULES = {"freeze": "volume:freeze_host", "thaw": "volume:thaw_host",
                        "failover_host": "volume:failover_host", "failover": "volume:failover_host"}
REPLICATION_ACTIONS = ("freeze", "thaw", "failover_host", "failover")
POOL_FILTER, POOL_TYPE_FILTER, CLUSTER_ACTIONS = (3, 28), (3, 35), (3, 26)


def _service_view(svc: Svc, row: tables.Service, version: mv.Version) -> dict[str, Any]:
    up = svc.services.is_up(row)
    view: dict[str, Any] = {
        "binary": row.binary, "host": row.host, "zone": row.availability_zone,
        "status": "disabled" if row.disabled else "enabled", "state": "up" if up else "down",
        "updated_at": timestamp(row.heartbeat_at), "disabled_reason": row.disabled_reason,
    }
    if version.at_least((3, 7)):
        view["cluster"] = None
    if row.binary == "cinder-volume":
        view.update({"replication_status": row.replication_status, "active_backend_id": row.active_backend_id,
                     "frozen": row.frozen})
        if version.at_least((3, 49)):
            view["backend_state"] = "up" if up else "down"
    return view


@router.get("/os-services", summary="List services with their state (admin)")
def list_services(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:services:index")
    params = request.query_params
    rows = svc.services.list(params.get("host"), params.get("binary"))
    return JSONResponse({"services": [_service_view(svc, row, version) for row in rows]})


@router.put("/os-services/{action}",
            summary="enable, disable, disable-log-reason; freeze, thaw, failover_host, failover (admin)")
def update_service(action: str, svc: Svc, context: Ctx, version: Ver,
                   body: dict[str, Any] = Body(..., examples=[{"host": "node@local", "binary": "cinder-volume"}]),
                   ) -> Response:
    svc.policy.authorize(context, SERVICE_ACTION_RULES.get(action, "volume_extension:services:update"))
    if action in REPLICATION_ACTIONS:
        return _replication_action(action, svc, context, version, body)
    if action not in ("enable", "disable", "disable-log-reason"):
        raise InvalidInput(f"Invalid input received: Unknown os-services action {action}.")
    host = body.get("host")
    binary = body.get("binary") or body.get("service")
    reason = body.get("disabled_reason") if action == "disable-log-reason" else None
    if action == "disable-log-reason" and not reason:
        raise InvalidInput("Invalid input received: Missing disabled reason field")
    disabled = action != "enable"
    svc.services.set_disabled(host, binary, disabled, reason)
    view: dict[str, Any] = {"host": host, "service": binary, "binary": binary,
                            "status": "disabled" if disabled else "enabled", "disabled": disabled}
    if action != "disable":  # Cinder: enable clears the reason (null), disable leaves the key out
        view["disabled_reason"] = reason
    return JSONResponse(view)


def _replication_action(action: str, svc: Svc, context: Ctx, version: mv.Version,
                        body: dict[str, Any]) -> Response:
    """freeze/thaw: 200 empty once done. failover_host/failover: 202 empty, the work goes on (poll
    os-services). `failover` is answered at every version: openstacksdk and `openstack volume host
    failover` send it without a version header. `cluster` is read from 3.26 on, as in Cinder."""
    host = body.get("host")
    cluster = body.get("cluster") if version.at_least(CLUSTER_ACTIONS) else None
    for key, value in (("host", host), ("cluster", cluster)):
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f"Invalid input received: {key} must be a string.")
    if action == "freeze":
        svc.replication.freeze(context, host, cluster)
        return Response(status_code=200)
    if action == "thaw":
        svc.replication.thaw(context, host, cluster)
        return Response(status_code=200)
    svc.replication.failover(context, host, cluster if action == "failover" else None, body.get("backend_id"))
    return Response(status_code=202)


@router.get("/os-availability-zone", summary="Availability zones")
def availability_zones(svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:availability_zone_list")
    return JSONResponse({"availabilityZoneInfo": svc.services.availability_zones()})


@router.get("/scheduler-stats/get_pools", summary="Pools the scheduler knows (admin); filters from 3.28")
def get_pools(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "scheduler_extension:scheduler_stats:get_pools")
    params = dict(request.query_params)
    detail = truthy(params.pop("detail", None))
    pools = svc.services.pools(context)
    if version.at_least(POOL_FILTER):  # below, Cinder drops every filter
        params.pop("all_tenants", None)
        name, type_ref = params.pop("name", None), params.pop("volume_type", None)
        # 3.35: keep pools whose capabilities satisfy the type's extra specs (the scheduler's filters).
        specs = svc.types.get(context, type_ref).specs() if type_ref and version.at_least(POOL_TYPE_FILTER) else None
        pools = pool_queries.filter_pools(pools, svc.settings.scheduler, name=name, type_specs=specs,
                                          capabilities=params)
    if not detail:
        pools = [{"name": p["name"]} for p in pools]
    return JSONResponse({"pools": pools})


@router.get("/capabilities/{host}", summary="Capabilities a backend reports (admin)")
def capabilities(host: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "volume_extension:capabilities")
    caps = svc.services.capabilities(host)
    properties = {k: v for k, v in caps.items() if k != "pools"}
    return JSONResponse({"namespace": f"OS::Storage::Capabilities::{host}", "volume_backend_name":
                         caps.get("volume_backend_name"), "pool_name": None, "driver_version":
                         caps.get("driver_version"), "storage_protocol": caps.get("storage_protocol"),
                         "display_name": None, "description": None, "visibility": None,
                         "replication_targets": caps.get("replication_targets") or [], "properties": properties,
                         "vendor_name": caps.get("vendor_name")})
