"""Composition root: settings → database, transport, clients, domain services, API."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI

from cinderblock.api.app import build_app
from cinderblock.api.deps import ApiServices
from cinderblock.config.settings import Settings
from cinderblock.db.engine import Database
from cinderblock.domain.common import DomainDeps
from cinderblock.domain.group_replication import GroupReplicationService
from cinderblock.domain.group_snapshots import GroupSnapshotService
from cinderblock.domain.group_types import GroupTypeService
from cinderblock.domain.groups import GroupService
from cinderblock.domain.limits import LimitService
from cinderblock.domain.messages import MessageService
from cinderblock.domain.replication import BackendReplication
from cinderblock.domain.services import ServiceRegistry
from cinderblock.domain.snapshots import SnapshotService
from cinderblock.domain.types import TypeService
from cinderblock.domain.volumes import VolumeService
from cinderblock.rpc.clients import SchedulerClient, VolumeClient
from cinderblock.rpc.transport import Transport, get_transport


@dataclass
class Core:
    settings: Settings
    db: Database
    transport: Transport

    def close(self) -> None:
        self.transport.close()
        self.db.dispose()


def build_core(settings: Settings, service: bool = False) -> Core:
    """service: for a scheduler or volume process (its sends wait longer for the broker)."""
    return Core(settings, Database(settings.database_url),
                get_transport(settings.transport_url, settings.config_files, service))


def build_api(core: Core) -> FastAPI:
    scheduler, volumes = SchedulerClient(core.transport), VolumeClient(core.transport)
    deps = DomainDeps(db=core.db, settings=core.settings, scheduler=scheduler, volumes=volumes)
    services = ApiServices(
        settings=core.settings, volumes=VolumeService(deps), snapshots=SnapshotService(deps),
        types=TypeService(core.db, core.settings.default_volume_type),
        services=ServiceRegistry(core.db, core.settings, scheduler),
        limits=LimitService(core.db, core.settings), messages=MessageService(core.db),
        replication=BackendReplication(deps), group_types=GroupTypeService(core.db), groups=GroupService(deps),
        group_snapshots=GroupSnapshotService(deps), group_replication=GroupReplicationService(deps),
    )
    return build_app(services)
