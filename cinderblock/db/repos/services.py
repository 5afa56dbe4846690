"""Service rows: registration, heartbeat, admin flags."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinderblock.db.tables import Service, utcnow


def register(session: Session, host: str, binary: str, topic: str, zone: str, alive: bool = True) -> Service:
    """Create or refresh the row. `alive=False` lists a service that is not up (yet)."""
    row = session.scalar(select(Service).where(Service.host == host, Service.binary == binary))
    if row is None:
        row = Service(host=host, binary=binary, topic=topic, availability_zone=zone)
        session.add(row)
    row.availability_zone = zone
    if alive:
        row.heartbeat_at = utcnow()
        row.report_count = (row.report_count or 0) + 1
    session.flush()
    return row


def heartbeat(session: Session, host: str, binary: str, capabilities: dict[str, Any] | None = None) -> None:
    row = session.scalar(select(Service).where(Service.host == host, Service.binary == binary))
    if row is None:
        return
    row.heartbeat_at = utcnow()
    row.report_count += 1
    if capabilities is not None:
        row.capabilities = capabilities


def find(session: Session, host: str | None = None, binary: str | None = None) -> list[Service]:
    statement = select(Service).order_by(Service.id)
    if host:
        statement = statement.where(Service.host == host)
    if binary:
        statement = statement.where(Service.binary == binary)
    return list(session.scalars(statement))
