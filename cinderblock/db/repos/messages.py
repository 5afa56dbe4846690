"""User message rows (GET /messages, API 3.3): why an asynchronous request of a project failed.

Services write them (`record`, in the same transaction as the status change they explain); the
API reads them through domain/messages.py. Ids follow Cinder's message_field: event_id =
VOLUME_<resource type>_<action id>_<detail id> and user_message = "<action>: <detail>".
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cinderblock.db import tables

RESOURCE_VOLUME = "VOLUME"
LEVEL_ERROR = "ERROR"
DEFAULT_TTL = 2592000  # Cinder's message_ttl: 30 days


@dataclass(frozen=True)
class Action:
    id: str
    text: str


@dataclass(frozen=True)
class Detail:
    id: str
    text: str


SCHEDULE_ALLOCATE_VOLUME = Action("001", "schedule allocate volume")
NO_BACKEND = Detail("003", "Could not find any available weighted backend.")
DRIVER_FAILED = Detail("009", "Driver failed to create the volume.")


def event_id(action: Action, detail: Detail, resource_type: str = RESOURCE_VOLUME) -> str:
    return f"VOLUME_{resource_type}_{action.id}_{detail.id}"


def record(session: Session, project_id: str, request_id: str | None, resource_uuid: str | None,
           action: Action, detail: Detail, explanation: str | None = None, ttl: int = DEFAULT_TTL,
           resource_type: str = RESOURCE_VOLUME, level: str = LEVEL_ERROR) -> tables.Message:
    """Add a message for project_id (and reap expired ones: messages are rare, the index is cheap)."""
    now = tables.utcnow()
    text = f"{action.text}: {explanation or detail.text}"
    message = tables.Message(project_id=project_id, request_id=request_id or None, resource_type=resource_type,
                             resource_uuid=resource_uuid, event_id=event_id(action, detail, resource_type),
                             message_level=level, user_message=text, created_at=now,
                             expires_at=now + dt.timedelta(seconds=ttl))
    session.execute(delete(tables.Message).where(tables.Message.expires_at < now))
    session.add(message)
    return message
