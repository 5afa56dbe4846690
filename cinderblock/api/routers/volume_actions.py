"""POST /volumes/{id}/action: extend, reset-state, force-delete, connections, attach, revert…"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from cinderblock.api import microversions as mv
from cinderblock.api.actions import parse, split_action, unknown_action
from cinderblock.api.context import Ctx, Ver
from cinderblock.api.deps import ApiServices, Svc
from cinderblock.api.schemas import volumes as schemas
from cinderblock.model.errors import InvalidInput, VersionNotFound
from cinderblock.model.records import RequestContext
from cinderblock.model.states import VOLUME_RESET_STATUSES, AttachStatus, MigrationStatus, VolumeStatus

router = APIRouter(prefix="/v3", tags=["volume actions"])
ACCEPTED = 202


class _Empty(BaseModel):
    pass


def _extend(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.Extend, value, "os-extend")
    svc.volumes.extend(context, volume_id, args.new_size, version.at_least(mv.VOLUME_EXTEND_INUSE))
    return ACCEPTED


def _reset_status(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.ResetStatus, value, "os-reset_status")
    values: dict[str, Any] = {}
    if args.status is not None:
        status = args.status.lower()
        if status not in VOLUME_RESET_STATUSES or status == VolumeStatus.DELETING:
            raise InvalidInput(f"Invalid input received: Invalid volume status: {args.status}")
        values["status"] = status
    if args.attach_status is not None:
        if args.attach_status not in (AttachStatus.ATTACHED, AttachStatus.DETACHED):
            raise InvalidInput(f"Invalid input received: Invalid attach status: {args.attach_status}")
        values["attach_status"] = args.attach_status
    if args.migration_status is not None:
        migration = args.migration_status.lower()
        if migration != "none" and migration not in {s.value for s in MigrationStatus}:
            raise InvalidInput(f"Invalid input received: Invalid migration status: {args.migration_status}")
        values["migration_status"] = None if migration == "none" else migration
    if not values:
        raise InvalidInput("Invalid input received: Must specify 'status', 'attach_status' or 'migration_status' "
                           "for update.")
    svc.volumes.reset_status(context, volume_id, values)
    return ACCEPTED


def _force_delete(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    svc.volumes.delete(context, volume_id, force=True)
    return ACCEPTED


def _initialize(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str,
                value: Any) -> JSONResponse:
    args = parse(schemas.InitializeConnection, value, "os-initialize_connection")
    info = svc.volumes.initialize_connection(context, volume_id, args.connector)
    return JSONResponse({"connection_info": info})


def _terminate(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.TerminateConnection, value, "os-terminate_connection")
    svc.volumes.terminate_connection(context, volume_id, args.connector)
    return ACCEPTED


def _attach(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.Attach, value, "os-attach")
    if args.mode not in ("rw", "ro"):
        raise InvalidInput(f"Invalid input received: Invalid attaching mode '{args.mode}' for volume {volume_id}.")
    if not args.instance_uuid and not args.host_name:
        raise InvalidInput("Invalid input received: os-attach needs instance_uuid or host_name.")
    svc.volumes.attach(context, volume_id, args.model_dump())
    return ACCEPTED


def _detach(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.Detach, value, "os-detach")
    svc.volumes.detach(context, volume_id, args.attachment_id)
    return ACCEPTED


def _simple(method: str):  # type: ignore[no-untyped-def]
    def handler(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
        parse(_Empty, value if isinstance(value, dict) else None, method)
        getattr(svc.volumes, method)(context, volume_id)
        return ACCEPTED

    return handler


def _set_bootable(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.SetBootable, value, "os-set_bootable")
    svc.volumes.set_flag(context, volume_id, "bootable", args.bootable)
    return 200


def _readonly(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    args = parse(schemas.UpdateReadonly, value, "os-update_readonly_flag")
    svc.volumes.set_flag(context, volume_id, "readonly", args.readonly)
    return ACCEPTED


def _revert(svc: ApiServices, context: RequestContext, version: mv.Version, volume_id: str, value: Any) -> int:
    if not version.at_least(mv.VOLUME_REVERT):
        raise VersionNotFound("The resource could not be found.")
    args = parse(schemas.Revert, value, "revert")
    svc.volumes.revert(context, volume_id, args.snapshot_id)
    return ACCEPTED


ACTIONS = {
    "os-extend": _extend,
    "os-reset_status": _reset_status,
    "os-force_delete": _force_delete,
    "os-initialize_connection": _initialize,
    "os-terminate_connection": _terminate,
    "os-attach": _attach,
    "os-detach": _detach,
    "os-reserve": _simple("reserve"),
    "os-unreserve": _simple("unreserve"),
    "os-begin_detaching": _simple("begin_detaching"),
    "os-roll_detaching": _simple("roll_detaching"),
    "os-set_bootable": _set_bootable,
    "os-update_readonly_flag": _readonly,
    "revert": _revert,
}
# The policy rule of each action (api/policy.py), checked before the action runs.
RULES = {
    "os-extend": "volume:extend",
    "os-reset_status": "volume_extension:volume_admin_actions:reset_status",
    "os-force_delete": "volume_extension:volume_admin_actions:force_delete",
    **{f"os-{name}": f"volume_extension:volume_actions:{name}"
       for name in ("initialize_connection", "terminate_connection", "attach", "detach", "reserve", "unreserve",
                    "begin_detaching", "roll_detaching")},
    "os-set_bootable": "volume:update",
    "os-update_readonly_flag": "volume:update_readonly_flag",
    "revert": "volume:revert_to_snapshot",
}


@router.post("/volumes/{volume_id}/action",
             summary="Run one volume action; the body's only key names it: " + ", ".join(sorted(ACTIONS)))
def volume_action(request: Request, volume_id: str, svc: Svc, context: Ctx, version: Ver,
                  body: dict[str, Any] = Body(..., examples=[{"os-extend": {"new_size": 2}}])) -> Response:
    name, value = split_action(body)
    handler = ACTIONS.get(name)
    if handler is None:
        raise unknown_action(name)
    svc.policy.authorize(context, RULES[name])
    result = handler(svc, context, version, volume_id, value)
    if isinstance(result, Response):
        return result
    return Response(status_code=result)
