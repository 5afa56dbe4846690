"""Service rows: registration, heartbeat, admin flags."""
from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cinderblock.db import transition as state
from cinderblock.db.tables import Service, utcnow
from cinderblock.model.group_transitions import SERVICE_RESET_ACTIVE_BACKEND


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


def find(session: Session, host: str | None = None, binary: str | None = None,
         whole_host: bool = False) -> list[Service]:
    """`whole_host`: `node1` also finds the volume services `node1@backend` (os-services?host=node1, as
    Cinder matches a host name against every backend on it)."""
    statement = select(Service).order_by(Service.id)
    if host and whole_host and "@" not in host:
        backends = host.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"
        statement = statement.where(or_(Service.host == host, Service.host.like(backends, escape="\\")))
    elif host:
        statement = statement.where(Service.host == host)
    if binary:
        statement = statement.where(Service.binary == binary)
    return list(session.scalars(statement))


def reset_active_backend(session: Session, host: str, enable_replication: bool, active_backend_id: str | None,
                         stopped_before: Any | None) -> Service:
    """`db reset-active-backend`: after promoting the secondary in cinder.conf, the service starts
    afresh. Refused unless the service is frozen and disabled (the promote procedure) and, when
    `stopped_before` is given, its last heartbeat is older than that (the service is stopped)."""
    from cinderblock.model.errors import InvalidState, NotFound

    row = session.scalar(select(Service).where(Service.host == host, Service.binary == "cinder-volume"))
    if row is None:
        raise NotFound(f"No volume service {host} is registered.")
    if not (row.frozen and row.disabled):
        raise InvalidState(f"{host} must be frozen and disabled first (cinder freeze-host {host}); it is "
                           f"{'frozen' if row.frozen else 'not frozen'} and "
                           f"{'disabled' if row.disabled else 'enabled'}.")
    if stopped_before is not None and row.heartbeat_at is not None and row.heartbeat_at > stopped_before:
        raise InvalidState(f"{host} is still running (last heartbeat {row.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC): "
                           "stop its volume service first, or pass --force.")
    row.disabled, row.disabled_reason = False, None
    session.flush()
    state.move(session, SERVICE_RESET_ACTIVE_BACKEND, row.id, to="enabled" if enable_replication else "disabled",
               values={"active_backend_id": active_backend_id})
    session.refresh(row)
    return row
