"""Service lifecycle: register the row, serve RPC, heartbeat, stop cleanly."""
from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from cinderblock.config.settings import BackendSettings, Settings
from cinderblock.coordination import LocalLocks
from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.transition import fail_unplaced_create
from cinderblock.db.loading import load_volume
from cinderblock.db.engine import Database
from cinderblock.db.repos import services
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import ADMIN_CONTEXT, RequestContext, RequestSpec
from cinderblock.model import transitions
from cinderblock.rpc.clients import SCHEDULER_TOPIC, VOLUME_TOPIC, SchedulerClient, VolumeClient
from cinderblock.rpc.transport import ListenerError, RpcServer, Transport
from cinderblock.scheduler.manager import SchedulerManager
from cinderblock.volume import recovery
from cinderblock.volume.workflows import failover
from cinderblock.volume.loading import load_driver_class
from cinderblock.volume.manager import VolumeManager
from cinderblock.volume.workflows.common import retry_db

LOG = logging.getLogger(__name__)


def _always() -> bool:
    return True


class Heartbeat:
    """Writes every service row of this process every report_interval seconds, each only while its
    service takes messages (`alive`): one whose listener died goes down and gets no more work."""

    def __init__(self, db: Database, interval: float) -> None:
        self.db, self.interval = db, interval
        self.rows: list[tuple[str, str, Callable[[], bool]]] = []
        self._silent: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def add(self, host: str, binary: str, alive: Callable[[], bool] = _always) -> None:
        self.rows.append((host, binary, alive))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def beat(self) -> None:
        for host, binary, alive in list(self.rows):
            if not alive():
                if (host, binary) not in self._silent:
                    LOG.error("%s %s no longer takes messages: it stops reporting itself up", binary, host)
                    self._silent.add((host, binary))
                continue
            self._silent.discard((host, binary))
            try:
                with self.db.write() as session:
                    services.heartbeat(session, host, binary)
            except Exception:  # the database may be away for a while; keep beating
                LOG.exception("heartbeat of %s %s failed", binary, host)


class _WaitForDatabase:
    """Endpoint proxy: the named casts wait for an unreachable database instead of being dropped."""

    def __init__(self, endpoint: object, casts: frozenset[str]) -> None:
        self._endpoint, self._casts = endpoint, casts

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._endpoint, name)
        if name not in self._casts:
            return attribute

        @functools.wraps(attribute)
        def waiting(*args: Any, **kwargs: Any) -> Any:
            return retry_db(lambda: attribute(*args, **kwargs), f"scheduler {name}")

        return waiting


class UnplacedSweeper:
    """Creates that no volume service took within service_down_time: their message died with a
    process (killed scheduler, or a volume service killed between reading and claiming it), so they
    would stay `creating` forever. With a scheduler client they are scheduled again, up to
    scheduler_max_attempts placements in all (counted by this sweeper), then failed with the reason.
    A create placed meanwhile loses the compare-and-swap and is left alone."""

    def __init__(self, db: Database, max_age: float, interval: float, scheduler: SchedulerClient | None = None,
                 max_attempts: int = 1) -> None:
        self.db, self.max_age, self.interval = db, max_age, interval
        self.scheduler, self.max_attempts = scheduler, max_attempts
        self._rescheduled: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="unplaced-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> int:
        """Fails or reschedules the stale unplaced creates; how many it failed."""
        cutoff = tables.utcnow() - dt.timedelta(seconds=self.max_age)
        changed = func.coalesce(tables.Volume.updated_at, tables.Volume.created_at)
        with self.db.read() as session:
            stale = list(session.scalars(select(tables.Volume.id).filter_by(**transitions.UNPLACED_CREATE)
                                         .where(changed < cutoff)))
        failed = 0
        for volume_id in stale:
            # The first placement was attempt 1; each reschedule is one more.
            if self.scheduler is not None and 1 + self._rescheduled.get(volume_id, 0) < self.max_attempts:
                self._reschedule(volume_id, changed < cutoff)
                continue
            with self.db.write() as session:
                failed += fail_unplaced_create(session, volume_id,
                                               f"not placed within {self.max_age:.0f} s: a service was lost")
            self._rescheduled.pop(volume_id, None)
        if failed:
            LOG.warning("failed %d create(s) that no volume service took within %.0f s", failed, self.max_age)
        return failed

    def _reschedule(self, volume_id: str, still_stale: Any) -> None:
        assert self.scheduler is not None
        with self.db.write() as session:
            # Taken by touching it (updated_at), so no other scheduler's sweeper sends it too.
            if not state.move(session, transitions.VOLUME_PLACE, volume_id, still_stale,
                              expect=transitions.UNPLACED_CREATE):
                return
            volume = load_volume(session, volume_id)
            assert volume is not None
            spec = _spec_of(session, volume)
            context = RequestContext(volume.user_id, volume.project_id, is_admin=False, roles=("member",))
        self._rescheduled[volume_id] = self._rescheduled.get(volume_id, 0) + 1
        LOG.warning("volume %s: no volume service took its create within %.0f s; scheduling it again (%d of %d)",
                    volume_id, self.max_age, 1 + self._rescheduled[volume_id], self.max_attempts)
        try:
            self.scheduler.create_volume(context, spec)
        except ServiceUnavailable as error:  # still unplaced and touched: the next round sees it again
            LOG.warning("volume %s: could not reschedule: %s", volume_id, error.message)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:  # the database may be away; next round
                LOG.exception("sweeping unplaced creates failed")


def _spec_of(session: Any, volume: tables.Volume) -> RequestSpec:
    """The scheduler's request for a create, rebuilt from its row (as domain/volumes.py made it)."""
    required = None
    if volume.snapshot_id:
        snapshot = session.get(tables.Snapshot, volume.snapshot_id)
        source = session.get(tables.Volume, snapshot.volume_id) if snapshot is not None else None
        required = source.host if source is not None else None
    elif volume.source_volid:
        source = session.get(tables.Volume, volume.source_volid)
        required = source.host if source is not None else None
    elif volume.group_id:
        group = session.get(tables.Group, volume.group_id)
        required = group.host if group is not None else None
    return RequestSpec(volume_id=volume.id, size_gb=volume.size, project_id=volume.project_id,
                       volume_type_id=volume.volume_type_id, extra_specs=volume.volume_type.specs(),
                       availability_zone=volume.availability_zone, required_backend=required,
                       snapshot_id=volume.snapshot_id, source_volume_id=volume.source_volid)


class StaleSweeper:
    """A volume service's periodic sweep (volume/recovery.py `sweep`): every periodic_interval, what
    sat in a transient state for transient_state_timeout seconds with nothing working on it is
    settled by checking storage, not only at the next start."""

    def __init__(self, manager: VolumeManager, max_age: float, interval: float) -> None:
        self.manager, self.max_age, self.interval = manager, max_age, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stale-sweeper", daemon=True)

    def start(self) -> None:
        if self.max_age > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.manager.sweep_stale(self.max_age)
            except Exception:  # the database may be away; next round
                LOG.exception("sweeping stale transient states of %s failed", self.manager.backend.service_host)


class SchedulerService(RpcServer):
    """The scheduler's RPC server and its sweeper, stopped together."""

    def __init__(self, server: RpcServer, sweeper: UnplacedSweeper) -> None:
        self.server, self.sweeper = server, sweeper

    def stop(self) -> None:
        self.sweeper.stop()
        self.server.stop()


def start_scheduler(settings: Settings, db: Database, transport: Transport,
                    heartbeat: Heartbeat) -> SchedulerService:
    """Raises ListenerError when it cannot take messages (the process must not run without)."""
    manager = SchedulerManager(db, VolumeClient(transport), settings.service_down_time, settings.scheduler)
    server = transport.serve(SCHEDULER_TOPIC, settings.host, _WaitForDatabase(manager, frozenset({"create_volume"})),
                             workers=4)
    # Up only once it listens (and while it does).
    with db.write() as session:
        services.register(session, settings.host, "cinder-scheduler", SCHEDULER_TOPIC,
                          settings.storage_availability_zone)
    heartbeat.add(settings.host, "cinder-scheduler", server.consuming)
    # A new scheduler knows no pools: ask every volume service for a report now, not in a minute.
    try:
        VolumeClient(transport).publish_capabilities(ADMIN_CONTEXT)
    except ServiceUnavailable as error:  # reports come anyway every backend_stats_polling_interval
        LOG.warning("could not ask for capability reports: %s", error.message)
    sweeper = UnplacedSweeper(db, settings.service_down_time, settings.report_interval, SchedulerClient(transport),
                              settings.scheduler.max_attempts)
    sweeper.start()
    return SchedulerService(server, sweeper)


class VolumeService:
    """One backend: driver setup, recovery, RPC server and stats reporting."""

    def __init__(self, settings: Settings, backend: BackendSettings, db: Database, transport: Transport,
                 locks: LocalLocks | None = None) -> None:
        self.backend = backend
        self.db = db
        driver = load_driver_class(backend.volume_driver)(backend.name, backend.options, settings.state_path)
        self.manager = VolumeManager(backend, db, driver, SchedulerClient(transport), settings.stats_interval,
                                     locks)
        self.transport = transport
        self.workers = settings.volume_workers_per_backend
        self.server: RpcServer | None = None
        self.sweeper = StaleSweeper(self.manager, settings.transient_state_timeout, settings.periodic_interval)

    def start(self, heartbeat: Heartbeat) -> None:
        """Raises ListenerError when it cannot take messages (the process must not run without)."""
        # Listed (down) before the driver starts, so a backend that fails to start shows as down;
        # up once it takes messages, and only while it does.
        with self.db.write() as session:
            services.register(session, self.backend.service_host, "cinder-volume", VOLUME_TOPIC,
                              self.backend.availability_zone, alive=False)
        driver = self.manager.driver
        failover.prepare_before_setup(self.manager.deps)  # the backend serving now, after a failover
        driver.do_setup()
        driver.check_for_setup_error()
        failover.settle_after_start(self.manager.deps)
        recovery.recover(self.manager.deps)
        server = self.server = self.transport.serve(VOLUME_TOPIC, self.backend.service_host, self.manager,
                                                    self.workers)
        with self.db.write() as session:
            services.register(session, self.backend.service_host, "cinder-volume", VOLUME_TOPIC,
                              self.backend.availability_zone)
        heartbeat.add(self.backend.service_host, "cinder-volume", server.consuming)
        try:
            self.manager.report_now()
        except ServiceUnavailable as error:  # the periodic reporter tries again
            LOG.warning("first capability report of %s failed: %s", self.backend.service_host, error.message)
        self.manager.reporter.start()
        self.sweeper.start()
        LOG.info("volume service %s started (%s)", self.backend.service_host, type(driver).__name__)

    def in_progress(self) -> list[str]:
        """Ids of what its operations are working on now."""
        return self.manager.in_progress()

    def stop(self) -> None:
        self.sweeper.stop()
        self.manager.reporter.stop()
        if self.server is not None:
            self.server.stop()
        stop_driver = getattr(self.manager.driver, "stop", None)
        if callable(stop_driver):  # drivers with background work (replication threads)
            stop_driver()


def start_volume_services(settings: Settings, db: Database, transport: Transport,
                          heartbeat: Heartbeat, locks: LocalLocks | None = None) -> list[VolumeService]:
    """Start every backend; one that fails to start is logged and left down, the others run.
    `locks` (started by the caller) are shared by every backend of the process. A listener that
    cannot start (ListenerError) stops them all and is raised: the process ends with the reason."""
    started: list[VolumeService] = []
    for backend in settings.backends:
        service = VolumeService(settings, backend, db, transport, locks)
        try:
            service.start(heartbeat)
        except ListenerError:
            for running in started:
                running.stop()
            raise
        except Exception:
            LOG.exception("backend %s failed to start; its service stays down", backend.service_host)
            continue
        started.append(service)
    return started
