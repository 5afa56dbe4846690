"""User message JSON views (cinder/api/v3/views/messages.py)."""
from __future__ import annotations

from typing import Any

from cinderblock.api.views.common import links, timestamp
from cinderblock.db import tables


def detail(message: tables.Message, base: str, prefix: str) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": message.id,
        "message_level": message.message_level,
        "event_id": message.event_id,
        "user_message": message.user_message,
        "created_at": timestamp(message.created_at),
        "guaranteed_until": timestamp(message.expires_at),
        "request_id": message.request_id,
        "links": links(base, prefix, "messages", message.id),
    }
    # Cinder leaves the resource keys out, rather than null, when a message names no resource.
    if message.resource_type:
        view["resource_type"] = message.resource_type
    if message.resource_uuid:
        view["resource_uuid"] = message.resource_uuid
    return view
