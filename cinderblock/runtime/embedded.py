"""Embedded mode: API, scheduler and every backend's volume service in one process."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from fastapi import FastAPI
from sqlalchemy import select

from cinderblock.coordination import LocalLocks, make_locks

from cinderblock.db import migrate, tables
from cinderblock.db.cas import fail_unplaced_create
from cinderblock.model import transitions
from cinderblock.runtime.service import (Heartbeat, SchedulerService, VolumeService, start_scheduler,
                                         start_volume_services)
from cinderblock.runtime.wiring import Core, build_api

LOG = logging.getLogger(__name__)


@dataclass
class Embedded:
    core: Core
    app: FastAPI
    heartbeat: Heartbeat
    scheduler: SchedulerService
    locks: LocalLocks
    volume_services: list[VolumeService] = field(default_factory=list)

    def in_progress(self) -> list[str]:
        """Ids of what the volume services are working on now."""
        return [ident for service in self.volume_services for ident in service.in_progress()]

    def stop(self) -> None:
        self.heartbeat.stop()
        for service in self.volume_services:
            service.stop()
        self.scheduler.stop()
        self.locks.stop()
        self.core.db.dispose()


def _fail_unscheduled(core: Core) -> None:
    """Creates that were waiting for this process's scheduler when it died will never be placed."""
    with core.db.write() as session:
        ids = list(session.scalars(select(tables.Volume.id).filter_by(**transitions.UNPLACED_CREATE)))
        for volume_id in ids:
            fail_unplaced_create(session, volume_id, "scheduling interrupted by a restart")


def start_embedded(core: Core) -> Embedded:
    migrate.sync(core.db)
    _fail_unscheduled(core)
    heartbeat = Heartbeat(core.db, core.settings.report_interval)
    scheduler = start_scheduler(core.settings, core.db, core.transport, heartbeat)
    locks = make_locks(core.settings.coordination_url, core.settings.host)
    locks.start()
    volume_services = start_volume_services(core.settings, core.db, core.transport, heartbeat, locks)
    heartbeat.start()
    return Embedded(core, build_api(core), heartbeat, scheduler, locks, volume_services)
