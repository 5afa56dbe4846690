"""The scheduler service: places volumes, retries failed creates elsewhere, serves the pool view."""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from typing import Any

from sqlalchemy import select

from cinderblock.config.settings import SchedulerSettings
from cinderblock.db import tables
from cinderblock.db.transition import fail_unplaced_create
from cinderblock.db.engine import Database
from cinderblock.db.repos import messages
from cinderblock.model import transitions
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import RequestContext, RequestSpec
from cinderblock.rpc.clients import VolumeClient
from cinderblock.placement.backend_state import BackendStateStore
from cinderblock.placement.filter_scheduler import FilterScheduler

LOG = logging.getLogger(__name__)
Context = dict[str, Any]


class SchedulerManager:
    """RPC endpoint of rpc.clients.SchedulerClient."""

    def __init__(self, db: Database, volumes: VolumeClient, service_down_time: int,
                 settings: SchedulerSettings | None = None) -> None:
        self.db = db
        self.volumes = volumes
        self.settings = settings or SchedulerSettings()
        self.store = BackendStateStore(self.settings.pool_max_age)
        self.scheduler = FilterScheduler(self.settings)
        self.service_down_time = service_down_time
        # Choose and consume as one step: two concurrent creates must not both take the last room.
        self._deciding = threading.Lock()

    def update_service_capabilities(self, context: Context, service_host: str,
                                    capabilities: dict[str, Any], reported_at: float | None = None) -> None:
        pending = self.store.pending(service_host)
        self.store.update(service_host, capabilities, finished=self._finished(pending) if pending else None,
                          reported_at=reported_at)

    def capacity_freed(self, context: Context, service_host: str, pool: str, size_gb: float, volume_id: str,
                       since: float) -> None:
        """A delete's room comes back to the next decision, not with the backend's next report."""
        self.store.freed(service_host, pool, size_gb, volume_id, since)

    def _finished(self, volume_ids: list[str]) -> dict[str, float]:
        """Of the volumes placed but maybe not yet reported: seconds since each create ended."""
        try:
            with self.db.read() as session:
                rows = session.execute(select(tables.Volume.id, tables.Volume.status, tables.Volume.updated_at)
                                       .where(tables.Volume.id.in_(volume_ids))).all()
        except ServiceUnavailable:
            return {}  # keep counting them: over-counting for a while is the safe side
        now = tables.utcnow()
        ended = {volume_id: math.inf for volume_id in volume_ids}
        for volume_id, status, updated_at in rows:
            if status == transitions.VOLUME_CREATE.transient:
                del ended[volume_id]
            else:
                ended[volume_id] = (now - updated_at).total_seconds() if updated_at else math.inf
        return ended

    def get_pools(self, context: Context) -> list[dict[str, Any]]:
        return [{"name": pool.address, "capabilities": pool.capabilities}
                for pool in self.store.fresh_pools(self._usable_services())]

    def create_volume(self, context: Context, spec: dict[str, Any]) -> None:
        """Place a new volume; also the retry entry: a volume service that failed the create casts
        the spec back with its pool appended to `attempted`."""
        request = RequestSpec.from_wire(spec)
        ctx = RequestContext.from_wire(context)
        if request.attempted:
            self.store.release(request.volume_id)  # the failed pool did not get the volume
        while True:
            if len(request.attempted) >= self.settings.max_attempts:
                self._no_valid_backend(ctx, request, (
                    f"creating the volume failed on {len(request.attempted)} backend(s) "
                    f"(scheduler_max_attempts is {self.settings.max_attempts})"))
                return
            usable = self._usable_services()
            with self._deciding:
                decision = self.scheduler.choose(self.store.fresh_pools(usable), request)
                if decision.pool is not None:
                    self.store.consume(decision.pool, request.size_gb, request.volume_id)
            pool = decision.pool
            if pool is None:
                self._no_valid_backend(ctx, request, decision.reason or "no backend can take it")
                return
            try:
                self.volumes.create_volume(ctx, pool.service_host, request.volume_id, pool.pool_name,
                                           request_spec=request)
                return
            except ServiceUnavailable as error:
                # Chosen but unreachable (stopped since its last heartbeat): try the next candidate.
                LOG.warning("volume %s: %s is unreachable (%s); trying another backend",
                            request.volume_id, pool.address, error.message)
                self.store.release(request.volume_id)
                request = dataclasses.replace(request, attempted=(*request.attempted, pool.address))

    def create_group(self, context: Context, group_id: str, type_specs: list[dict[str, str]],
                     group_specs: dict[str, str], availability_zone: str | None) -> None:
        """SchedulerClient.create_group (1.1): placement lives in scheduler/groups.py."""
        from cinderblock.scheduler import groups

        pools = self.store.fresh_pools(self._usable_services())
        groups.place_group(self.db, self.volumes, pools, context, group_id, type_specs, group_specs,
                           availability_zone)

    def _usable_services(self) -> set[str]:
        """Volume services that are enabled, not frozen and up, read on every decision so that a
        service-disable takes effect for the very next create (one small query)."""
        limit = tables.utcnow().timestamp() - self.service_down_time
        with self.db.read() as session:
            rows = session.execute(select(tables.Service.host, tables.Service.disabled,
                                          tables.Service.heartbeat_at, tables.Service.frozen)
                                   .where(tables.Service.binary == "cinder-volume")).all()
        return {host for host, disabled, beat, frozen in rows
                if not disabled and not frozen and beat is not None and beat.timestamp() >= limit}

    def _no_valid_backend(self, context: RequestContext, request: RequestSpec, why: str) -> None:
        """The volume goes to `error`; the project gets a user message saying why."""
        reason = f"No valid backend was found. No backend satisfied the request: {why}."
        LOG.warning("volume %s (%d GiB): %s", request.volume_id, request.size_gb, reason)
        with self.db.write() as session:
            last_error = session.scalar(select(tables.Volume.error_reason).where(
                tables.Volume.id == request.volume_id))
            admin_reason = f"{reason} Last error: {last_error}" if request.attempted and last_error else reason
            if fail_unplaced_create(session, request.volume_id, admin_reason):
                messages.record(session, request.project_id, context.request_id, request.volume_id,
                                messages.SCHEDULE_ALLOCATE_VOLUME, messages.NO_BACKEND, reason,
                                self.settings.message_ttl)
