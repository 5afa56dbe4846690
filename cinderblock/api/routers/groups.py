"""/groups (3.13): list, show, create, update, actions (delete, reset_status (3.20), replication (3.38))
and create-from-src (3.14).

Groups of the reserved CG type are served by /consistencygroups only (400 here, hidden from lists).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api.actions import split_action, unknown_action
from cinderblock.api.context import Ctx, Ver, min_version
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.schemas.groups import (FailoverReplication, GroupCreate, GroupDelete, GroupFromSrc, GroupUpdate,
                                            NoArguments, ResetStatus, body_of)
from cinderblock.api.views import groups as views
from cinderblock.model.errors import InvalidInput, VersionNotFound

router = APIRouter(prefix="/v3", tags=["groups"], dependencies=[min_version((3, 13))])
SORTABLE = {"id", "created_at", "updated_at", "display_name", "status", "project_id", "availability_zone"}
FILTERS = ("name", "status", "availability_zone", "group_type", "list_volume")
COLUMNS = {"name": "display_name", "status": "status", "availability_zone": "availability_zone", "id": "id",
           "project_id": "project_id", "group_type": "group_type_id"}


def _list(request: Request, svc: Svc, context: Ctx, version: Ver, detailed: bool) -> JSONResponse:
    svc.policy.authorize(context, "group:get_all")
    query, special = parse_list(request, version, svc.settings.max_limit, SORTABLE, FILTERS, COLUMNS, context.is_admin)
    rows, count = svc.groups.get_all(context, query, truthy(request.query_params.get("all_tenants")))
    # cinderclient's find by name lists with list_volume=True (group-show --list-volume NAME).
    with_volumes = truthy(special.get("list_volume"))
    items = [views.group(r, version, svc.groups.member_ids(r.id) if with_volumes else None) if detailed
             else views.summary(r) for r in rows]
    body: dict[str, Any] = {"groups": items}
    body.update(next_link(request, svc.settings.public_endpoint, "groups" + ("/detail" if detailed else ""), rows,
                          query.limit, "group_links"))
    if count is not None:
        body["count"] = count
    return JSONResponse(body)


@router.get("/groups", summary="List groups")
def list_groups(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, False)


@router.get("/groups/detail", summary="List groups with details")
def list_groups_detail(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    return _list(request, svc, context, version, True)


@router.get("/groups/{group_id}", summary="Show a group (list_volume=true: with its volumes, 3.25)")
def show_group(request: Request, group_id: str, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "group:get")
    row = svc.groups.get(context, group_id)
    volumes = svc.groups.member_ids(row.id) if truthy(request.query_params.get("list_volume")) else None
    return JSONResponse({"group": views.group(row, version, volumes)})


@router.post("/groups", status_code=202, summary="Create a group")
def create_group(svc: Svc, context: Ctx, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create")
    spec = body_of(GroupCreate, body, "group")
    row = svc.groups.create(context, spec.group_type, spec.volume_types, spec.name, spec.description,
                             spec.availability_zone)
    return JSONResponse({"group": views.summary(row)}, status_code=202)


@router.put("/groups/{group_id}", status_code=202, summary="Rename a group or add/remove volumes")
def update_group(group_id: str, svc: Svc, context: Ctx, body: Any = Body(...)) -> Response:
    svc.policy.authorize(context, "group:update")
    spec = body_of(GroupUpdate, body, "group")
    given = spec.model_fields_set
    if not given:
        raise InvalidInput("Invalid input received: Name, description, add_volumes, and remove_volumes can not be "
                           "all empty in the request body.")
    changes: dict[str, Any] = {k: getattr(spec, k) for k in ("name", "description") if k in given}
    svc.groups.update(context, group_id, add_volumes=spec.add_volumes, remove_volumes=spec.remove_volumes,
                       **changes)
    return Response(status_code=202)


@router.post("/groups/action", status_code=202, summary="create-from-src: a group from a group snapshot or group")
def group_collection_action(svc: Svc, context: Ctx, version: Ver, body: Any = Body(...)) -> JSONResponse:
    svc.policy.authorize(context, "group:create_from_src")
    name, _value = split_action(body)
    if name != "create-from-src":
        raise unknown_action(name)
    if not version.at_least((3, 14)):
        raise VersionNotFound("The resource could not be found.")
    spec = body_of(GroupFromSrc, body, "create-from-src")
    row = svc.groups.create_from_src(context, spec.group_snapshot_id, spec.source_group_id, spec.name,
                                      spec.description)
    return JSONResponse({"group": views.summary(row)}, status_code=202)


REPLICATION_ACTIONS = {"enable_replication", "disable_replication", "failover_replication",
                       "list_replication_targets",
                       # openstacksdk's Group.failover_replication sends its body under this key (a bug).
                       "modify_body_for_action"}


@router.post("/groups/{group_id}/action", status_code=202,
             summary="delete, reset_status (3.20) or a replication action (3.38) of a group")
def group_action(group_id: str, svc: Svc, context: Ctx, version: Ver, body: Any = Body(...)) -> Response:
    name, value = split_action(body)
    if name in REPLICATION_ACTIONS:
        return _replication_action(group_id, svc, context, version, name, body)
    if name == "delete":
        svc.policy.authorize(context, "group:delete")
        try:
            spec = GroupDelete.parse(value)
        except Exception:
            raise InvalidInput(f"Invalid input for field/attribute delete. Value: {value!r}.") from None
        svc.groups.delete(context, group_id, spec.delete_volumes)
    elif name == "reset_status" and version.at_least((3, 20)):
        svc.policy.authorize(context, "group:reset_status")
        svc.groups.get(context, group_id)
        svc.groups.reset_status(context, group_id, body_of(ResetStatus, body, name).status)
    else:
        raise unknown_action(name)
    return Response(status_code=202)


def _replication_action(group_id: str, svc: Svc, context: Ctx, version: Ver, name: str,
                        body: dict[str, Any]) -> Response:
    if not version.at_least((3, 38)):  # Cinder: the action does not exist below its microversion
        raise VersionNotFound("The resource could not be found.")
    replication = svc.group_replication
    if name in ("failover_replication", "modify_body_for_action"):
        svc.policy.authorize(context, "group:failover_replication")
        spec = body_of(FailoverReplication, body, name)
        replication.failover(context, group_id, spec.allow_attached_volume, spec.secondary_backend_id)
        return Response(status_code=202)
    body_of(NoArguments, body, name)
    if name == "list_replication_targets":
        svc.policy.authorize(context, "group:list_replication_targets")
        return JSONResponse({"replication_targets": replication.targets(context, group_id)})
    if name == "enable_replication":
        svc.policy.authorize(context, "group:enable_replication")
        replication.enable(context, group_id)
    else:
        svc.policy.authorize(context, "group:disable_replication")
        replication.disable(context, group_id)
    return Response(status_code=202)
