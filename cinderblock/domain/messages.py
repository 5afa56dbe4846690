"""User messages (GET /messages, API 3.3): why an asynchronous request of a project failed.

Services write them (`record`, in the same transaction as the status change they explain); the
API lists, shows and deletes them. A project sees only its own messages (admins: all_tenants=1).
Ids follow Cinder's message_field: event_id = VOLUME_<resource type>_<action id>_<detail id> and
user_message = "<action>: <detail>".
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.domain.common import owned
from cinderblock.model.errors import NotFound
from cinderblock.model.records import RequestContext

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


class MessageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get_all(self, context: RequestContext, query: ListQuery, all_tenants: bool) -> list[tables.Message]:
        if not (context.is_admin and all_tenants):
            query = query.scoped(project_id=context.project_id)
        with self.db.read() as session:
            rows, _count = list_rows(session, tables.Message, query)
            return rows

    def get(self, context: RequestContext, message_id: str) -> tables.Message:
        with self.db.read() as session:
            return _get(session, context, message_id)

    def delete(self, context: RequestContext, message_id: str) -> None:
        with self.db.write() as session:
            session.delete(_get(session, context, message_id))


def _get(session: Session, context: RequestContext, message_id: str) -> tables.Message:
    message = session.get(tables.Message, message_id)
    # Same rule as volumes: the owning project, or an admin.
    if message is None or not owned(message, context):
        raise NotFound(f"Message {message_id} could not be found.")
    return message
