"""/messages (3.3): list, show and delete the project's user messages; filters, sort and
pagination from 3.5, as every other list."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cinderblock.api import microversions as mv
from cinderblock.api.context import Ctx, Ver, base_url, min_version
from cinderblock.api.deps import Svc
from cinderblock.api.paging import next_link, parse_list, truthy
from cinderblock.api.views import messages as views
from cinderblock.db.query import ListQuery

router = APIRouter(prefix="/v3", tags=["messages"], dependencies=[min_version(mv.MESSAGES)])

MESSAGES_PAGINATION = (3, 5)
SORTABLE = {"id", "created_at", "expires_at", "event_id", "resource_type", "resource_uuid", "message_level",
            "request_id"}
# etc/cinder/resource_filters.json "message".
FILTERS = ("resource_uuid", "resource_type", "event_id", "request_id", "message_level")
COLUMNS = {name: name for name in FILTERS}


@router.get("/messages", summary="List the project's user messages (3.3; filters and paging 3.5)")
def list_messages(request: Request, svc: Svc, context: Ctx, version: Ver) -> JSONResponse:
    svc.policy.authorize(context, "message:get_all")
    max_limit = svc.settings.max_limit
    if version.at_least(MESSAGES_PAGINATION):
        query, _special = parse_list(request, version, max_limit, SORTABLE, FILTERS, COLUMNS, context.is_admin)
    else:  # below 3.5 Cinder ignores every query parameter
        query = ListQuery(filters={}, like_filters={}, sort=[("created_at", "desc")], limit=max_limit)
    rows = svc.messages.get_all(context, query, truthy(request.query_params.get("all_tenants")))
    base, prefix = base_url(request, svc.settings.public_endpoint), request.state.url_prefix
    body: dict[str, Any] = {"messages": [views.detail(row, base, prefix) for row in rows]}
    if version.at_least(MESSAGES_PAGINATION):
        body.update(next_link(request, svc.settings.public_endpoint, "messages", rows, query.limit,
                              "messages_links"))
    return JSONResponse(body)


@router.get("/messages/{message_id}", summary="Show a user message (3.3)")
def show_message(request: Request, message_id: str, svc: Svc, context: Ctx) -> JSONResponse:
    svc.policy.authorize(context, "message:get")
    message = svc.messages.get(context, message_id)
    base = base_url(request, svc.settings.public_endpoint)
    return JSONResponse({"message": views.detail(message, base, request.state.url_prefix)})


@router.delete("/messages/{message_id}", status_code=204, summary="Delete a user message (3.3)")
def delete_message(message_id: str, svc: Svc, context: Ctx) -> Response:
    svc.policy.authorize(context, "message:delete")
    svc.messages.delete(context, message_id)
    return Response(status_code=204)
