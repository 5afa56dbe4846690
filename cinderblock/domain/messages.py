"""User messages (GET /messages, API 3.3): the API lists, shows and deletes them. A project sees
only its own messages (admins: all_tenants=1). Services write them with db/repos/messages.py.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.query import ListQuery, list_rows
from cinderblock.domain.common import owned
from cinderblock.model.errors import NotFound
from cinderblock.model.records import RequestContext


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
