"""Capability reports: driver stats → every scheduler (fan-out) and the service row."""
from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, bindparam, update

from cinderblock.config.settings import BackendSettings
from cinderblock.db.engine import Database
from cinderblock.db import tables
from cinderblock.db.repos import services
from cinderblock.model.errors import DriverError, ServiceUnavailable
from cinderblock.model.records import ADMIN_CONTEXT, RequestContext
from cinderblock.rpc.clients import SchedulerClient
from cinderblock.volume.driver import BackendStats, ReplicaState, SupportsReplication, VolumeDriver

LOG = logging.getLogger(__name__)
VOLUME_BINARY = "cinder-volume"


def stats_to_capabilities(stats: BackendStats, backend: BackendSettings) -> dict[str, Any]:
    """The wire shape the scheduler and `get_pools` use: backend keys plus one dict per pool."""
    common = {
        "volume_backend_name": stats.volume_backend_name,
        "vendor_name": stats.vendor_name,
        "driver_version": stats.driver_version,
        "storage_protocol": stats.storage_protocol,
        "availability_zone": backend.availability_zone,
        **dict(stats.capabilities),
    }
    pools = []
    for pool in stats.pools:
        pools.append({
            **common,
            "pool_name": pool.name,
            "total_capacity_gb": pool.total_capacity_gb,
            "free_capacity_gb": pool.free_capacity_gb,
            "allocated_capacity_gb": pool.allocated_capacity_gb,
            "provisioned_capacity_gb": pool.provisioned_capacity_gb,
            "reserved_percentage": pool.reserved_percentage,
            "max_over_subscription_ratio": pool.max_over_subscription_ratio,
            "thin_provisioning_support": pool.thin_provisioning_support,
            "thick_provisioning_support": pool.thick_provisioning_support,
            **dict(pool.capabilities),
        })
    return {**common, "pools": pools}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def lag_json(replicas: tuple[ReplicaState, ...], now: float | None = None) -> str:
    """{"targets": {id: {"last_complete_at", "lag_seconds", "bytes_pending", "in_flight"}}, "reported_at"}."""
    now = dt.datetime.now(dt.timezone.utc).timestamp() if now is None else now
    targets: Mapping[str, Any] = {r.target: {
        "last_complete_at": _iso(r.last_complete_at),
        "lag_seconds": None if r.last_complete_at is None else round(max(0.0, now - r.last_complete_at), 1),
        "bytes_pending": r.bytes_pending, "in_flight": r.in_flight} for r in replicas}
    return json.dumps({"targets": targets, "reported_at": _iso(now)}, sort_keys=True)


class StatsReporter:
    """Reports periodically, and soon after `request()` (coalescing bursts of changes)."""

    COALESCE_SECONDS = 0.5

    def __init__(self, backend: BackendSettings, db: Database, driver: VolumeDriver,
                 scheduler: SchedulerClient, interval: float) -> None:
        self.backend, self.db, self.driver, self.scheduler = backend, db, driver, scheduler
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, Any] = {}

    def capabilities(self, refresh: bool = False) -> dict[str, Any]:
        if refresh or not self._last:
            self._last = stats_to_capabilities(self.driver.get_stats(), self.backend)
        return self._last

    def report(self, context: RequestContext = ADMIN_CONTEXT) -> None:
        capabilities = self.capabilities(refresh=True)
        self.scheduler.update_service_capabilities(context, self.backend.service_host, capabilities,
                                                   reported_at=time.time())
        with self.db.write() as session:
            services.heartbeat(session, self.backend.service_host, VOLUME_BINARY, capabilities)
        self.record_lag()

    def record_lag(self) -> None:
        """Each replicated volume's lag into its row (replication_extended_status), one statement."""
        if not isinstance(self.driver, SupportsReplication):
            return
        states = self.driver.replication_states()
        if not states:
            return
        rows = [{"b_volume_id": volume_id, "b_lag": lag_json(replicas)} for volume_id, replicas in states.items()]
        table = cast(Table, tables.Volume.__table__)  # a Table: the ORM declares it as any FromClause
        with self.db.write() as session:
            session.execute(update(table).where(table.c.id == bindparam("b_volume_id"))
                            .values(replication_extended_status=bindparam("b_lag")), rows)

    def request(self) -> None:
        self._wake.set()

    def freed(self, volume_id: str, pool: str | None, size_gb: float, since: float) -> None:
        """A deleted volume's room goes back to the schedulers now; a report follows soon anyway."""
        pool_name = pool or self._only_pool()
        if pool_name is not None:
            try:
                self.scheduler.capacity_freed(ADMIN_CONTEXT, self.backend.service_host, pool_name, size_gb,
                                              volume_id, since)
            except ServiceUnavailable as error:  # the report requested below counts it
                LOG.warning("could not tell the schedulers that volume %s freed %s GiB: %s",
                            volume_id, size_gb, error.message)
        self.request()

    def _only_pool(self) -> str | None:
        """A volume placed without a pool (host@backend): the backend's pool, if it has just one."""
        pools = self._last.get("pools") or []
        return str(pools[0]["pool_name"]) if len(pools) == 1 else None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"stats-{self.backend.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._stop.wait(self.COALESCE_SECONDS)
                self._wake.clear()
            try:
                self.report()
            except DriverError as error:  # storage away (a lost site): said plainly, no traceback
                LOG.error("capability report of %s failed: %s", self.backend.service_host, error)
            except Exception:  # a failed report must not end reporting
                LOG.exception("capability report of %s failed", self.backend.service_host)
