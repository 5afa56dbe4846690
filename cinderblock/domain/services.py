"""Services (os-services), availability zones, pools and capabilities."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cinderblock.config.settings import Settings
from cinderblock.db import tables
from cinderblock.db.engine import Database
from cinderblock.db.repos import services as repo
from cinderblock.model.errors import InvalidInput, InvalidState, NotFound
from cinderblock.model.records import BackendAddress, RequestContext
from cinderblock.placement.pools import filter_pools
from cinderblock.rpc.clients import SchedulerClient

FROZEN_MESSAGE = "Modification operations are not allowed on frozen storage backends."


def assert_not_frozen(session: Session, host: str) -> None:
    service_host = BackendAddress.parse(host).service_host
    frozen = session.scalar(select(tables.Service.frozen).where(
        tables.Service.host == service_host, tables.Service.binary == "cinder-volume"))
    if frozen:
        raise InvalidState(FROZEN_MESSAGE)


def known_zones(session: Session, settings: Settings) -> set[str]:
    zones = set(session.scalars(select(tables.Service.availability_zone).distinct()))
    zones.add(settings.storage_availability_zone)
    zones.add(settings.default_availability_zone)
    return zones


def is_up(service: tables.Service, down_time: int) -> bool:
    if service.heartbeat_at is None:
        return False
    return (tables.utcnow() - service.heartbeat_at).total_seconds() <= down_time


class ServiceRegistry:
    def __init__(self, db: Database, settings: Settings, scheduler: SchedulerClient) -> None:
        self.db, self.settings, self.scheduler = db, settings, scheduler

    def get_all(self, host: str | None, binary: str | None) -> list[tables.Service]:
        with self.db.read() as session:
            return repo.find(session, host, binary, whole_host=True)

    def is_up(self, service: tables.Service) -> bool:
        return is_up(service, self.settings.service_down_time)

    def set_disabled(self, host: str | None, binary: str | None, disabled: bool,
                     reason: str | None = None) -> tables.Service:
        if not host:
            raise InvalidInput("Host field is missing.")
        if reason is not None and len(reason) > 255:
            raise InvalidInput("Invalid input received: disabled_reason is longer than 255 characters.")
        with self.db.write() as session:
            rows = repo.find(session, host, binary or None)
            if not rows:
                raise NotFound(f"Service {binary or ''} on host {host} could not be found.".replace("  ", " "))
            for row in rows:
                row.disabled = disabled
                row.disabled_reason = reason if disabled else None
            return rows[0]

    def availability_zones(self) -> list[dict[str, Any]]:
        with self.db.read() as session:
            rows = repo.find(session, binary="cinder-volume")
        zones: dict[str, bool] = {}
        for row in rows:
            zones[row.availability_zone] = zones.get(row.availability_zone, False) or (
                self.is_up(row) and not row.disabled)
        if not zones:
            zones[self.settings.storage_availability_zone] = False
        return [{"zoneName": name, "zoneState": {"available": up}} for name, up in sorted(zones.items())]

    def pools(self, context: RequestContext, name: str | None = None, type_specs: Mapping[str, str] | None = None,
              capabilities: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The pools the scheduler knows, by name, kept by the get_pools filters (placement/pools.py)."""
        pools = sorted(self.scheduler.get_pools(context), key=lambda pool: pool["name"])
        return filter_pools(pools, self.settings.scheduler, name=name, type_specs=type_specs,
                            capabilities=capabilities)

    def capabilities(self, host: str) -> dict[str, Any]:
        with self.db.read() as session:
            rows = repo.find(session, BackendAddress.parse(host).service_host, "cinder-volume")
        if not rows or not rows[0].capabilities:
            raise NotFound(f"Service {host} could not be found.")
        return rows[0].capabilities
