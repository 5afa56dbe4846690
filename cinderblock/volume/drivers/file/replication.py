"""Asynchronous replication of the file driver: which volumes replicate, and the workers that copy them.

Sites: the primary and every `replication_device` (sites.py). Every replicated volume has one
*active* site (the backend's, or its own after a group failover) that serves it; worker threads
copy it to every other reachable site at its interval (`replication:interval` of its type, else
`replication_interval`), one cycle (cycle.py) per volume or per consistency group. Which volumes
and groups replicate is kept in the registry (registry.py). Switching sites is failover.py.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import ModelUpdate, ReplicaState, VolumeRef
from cinderblock.volume.drivers.file import replica_store as store
from cinderblock.volume.drivers.file.cycle import Cancelled, InjectedFault, Sender, Sent, SimulatedCrash
from cinderblock.volume.drivers.file.registry import CopyStates, Registry, VolumeEntry
from cinderblock.volume.drivers.file.sites import SiteLayout

LOG = logging.getLogger(__name__)

CYCLE_WORKERS = 4

__all__ = ["InjectedFault", "Replicator", "SimulatedCrash"]


class Replicator:
    """Keeps the replicated volumes' copies on every other site at most one interval behind."""

    def __init__(self, name: str, layout: SiteLayout, registry: Registry, states: CopyStates, sender: Sender,
                 default_interval: int) -> None:
        self._name = name
        self._layout = layout
        self._registry = registry
        self._states = states
        self._sender = sender
        self.default_interval = default_interval
        self._cond = threading.Condition()
        self._paused = 0
        self._running: set[str] = set()
        self._cancel = threading.Event()
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._next_due: dict[str, float] = {}

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, probe_reflink: Callable[[Path], bool]) -> None:
        """do_setup, last part: prepare every site, load the registry, recover, start the workers."""
        if not self._layout.replicated:
            return
        self._sender.prepare_sites(probe_reflink)
        self._registry.load()
        for site in self._layout.sites():
            if self._layout.reachable(site):
                self.recover_site(site)
        now = time.time()
        for volume_id, entry in self._registry.volumes.items():
            for site in self._registry.dest_sites(volume_id):
                manifest = self._dest_manifest(entry, site, volume_id)
                self._states.set(volume_id, site, manifest["taken_at"] if manifest else None)
            self._next_due[self._registry.unit_key(volume_id)] = now + min(1.0, float(entry["interval"]))
        self._start_workers()

    def stop(self) -> None:
        """Stop the replication threads (the service stops); a cycle in flight is abandoned cleanly."""
        self._stop_event.set()
        self._cancel.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        self._sender.close()

    def site_reflinks(self, site: str, pool: str) -> bool:
        """The pool's directory on site can reflink (probed at start)."""
        return self._sender.reflink.get((site, pool), False)

    def recover_site(self, site: str) -> int:
        """Finish committed generations on site, drop what was still in staging."""
        dirs = [d for _, d in self._layout.site_dirs(site)]
        return store.recover(dirs, dirs[:1])

    def _dest_manifest(self, entry: VolumeEntry, site: str, volume_id: str) -> dict[str, Any] | None:
        return store.read_manifest(self._layout.pool_dir(site, entry["pool"]), volume_id)

    # -- which volumes replicate ---------------------------------------------------------------

    def replicate_new(self, volume: VolumeRef, update: ModelUpdate) -> ModelUpdate:
        """A volume was just created: replicate it when its type asks for it."""
        if not (volume.replicated and self._layout.replicated):
            return update
        self.register(volume)
        try:
            self.send([volume.id], live=False)
        except Exception as error:  # noqa: BLE001 -- the worker retries; the volume exists
            LOG.warning("initial copy of volume %s failed (the worker retries): %s", volume.id, error)
        return ModelUpdate(provider_location=update.provider_location, provider_auth=update.provider_auth,
                           replication_status="enabled")

    def register(self, volume: VolumeRef, group: str | None = None) -> None:
        pool = self._layout.pool_name(volume.pool)
        if volume.id in self._registry.volumes:
            pool = self._registry.volumes[volume.id]["pool"]
        interval = _interval(volume.extra_specs.get("replication:interval"), self.default_interval)
        with self._registry.lock:
            entry = self._registry.volumes.setdefault(volume.id, VolumeEntry(
                pool=pool, interval=interval, group=None, active=None, created_at=time.time(), gen=0))
            entry["interval"] = interval
            if group is not None:
                entry["group"] = group
            self._registry.save()
        now = time.time()
        for site in self._registry.dest_sites(volume.id):
            self._states.ensure(volume.id, site)
        self._next_due[self._registry.unit_key(volume.id)] = now + interval

    def forget(self, volume_id: str, pool: str | None) -> None:
        """The volume was deleted: drop it from replication and remove its copies on every site."""
        if not self._layout.replicated:
            return
        with self._registry.volume_lock(volume_id):
            with self._registry.lock:
                entry = self._registry.volumes.pop(volume_id, None)
                for members in self._registry.groups.values():
                    if volume_id in members:
                        members.remove(volume_id)
                self._registry.save()
            pools = [entry["pool"]] if entry else [pool] if pool else [p.name for p in self._layout.pools]
            for site in self._layout.sites():
                if not self._layout.reachable(site):
                    continue
                for name in pools:
                    with contextlib.suppress(OSError, KeyError):
                        store.remove_copy(self._layout.pool_dir(site, name), volume_id)
            for site in self._layout.sites():
                self._states.drop(volume_id, site)

    def enable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        """The members replicate as one consistency set from now on (one cycle now)."""
        if not self._layout.replicated:
            raise DriverError("no replication_device is configured for this backend")
        for volume in volumes:
            self.register(volume, group=group_id)
        with self._registry.lock:
            self._registry.groups[group_id] = sorted({v.id for v in volumes})
            self._registry.save()
        self.send([v.id for v in volumes])
        return tuple(ModelUpdate(replication_status="enabled") for _ in volumes)

    def disable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        """The members stop replicating (one failed over on its own stays known where it lives)."""
        for volume in volumes:
            with self._registry.volume_lock(volume.id), self._registry.lock:
                entry = self._registry.volumes.get(volume.id)
                if entry is not None and entry.get("active"):
                    entry["group"] = None  # failed over on its own: keep knowing where it lives
                else:
                    self._registry.volumes.pop(volume.id, None)
        with self._registry.lock:
            self._registry.groups.pop(group_id, None)
            self._registry.save()
        return tuple(ModelUpdate(replication_status="disabled") for _ in volumes)

    def served_elsewhere(self) -> dict[str, int]:
        """volume id -> size of the volumes a group failover moved off the backend's active site."""
        volumes: dict[str, int] = {}
        for volume_id, entry in list(self._registry.volumes.items()):
            active = entry.get("active")
            if active and active != self._layout.backend_site():
                with contextlib.suppress(OSError, KeyError):
                    path = self._layout.pool_dir(active, entry["pool"]) / f"volume-{volume_id}"
                    volumes[volume_id] = path.stat().st_size
        return volumes

    # -- what the stats report -----------------------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        if not self._layout.replicated:
            return {"replication_enabled": False}
        now = time.time()
        lag = 0.0
        pending = 0
        for volume_id, entry in list(self._registry.volumes.items()):
            for site in self._registry.dest_sites(volume_id):
                state = self._states.get(volume_id, site)
                last = state.last_complete_at
                lag = max(lag, now - float(last if last is not None else entry.get("created_at", now)))
                pending += int(state.bytes_pending)
        devices = self._layout.devices
        return {"replication_enabled": True, "replication_type": "async",
                "replication_targets": [d.backend_id for d in devices],
                "replication_count": len(devices),
                "replication_interval": self.default_interval,
                "group_replication_enabled": True, "consistent_group_replication_enabled": True,
                "replication_lag_max_seconds": round(lag, 3), "replication_bytes_pending": pending,
                "active_replication_site": self._layout.backend_site()}

    def replica_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        out = {}
        for volume_id in list(self._registry.volumes):
            states = [(site, self._states.get(volume_id, site)) for site in self._registry.dest_sites(volume_id)]
            out[volume_id] = tuple(ReplicaState(site, s.last_complete_at, s.bytes_pending, s.in_flight)
                                   for site, s in states)
        return out

    # -- the workers ---------------------------------------------------------------------------

    def send(self, volume_ids: Sequence[str], only: str | None = None, live: bool = False) -> Sent:
        """One cycle of a consistency set, now, in this thread (see Sender.send)."""
        return self._sender.send(volume_ids, only=only, live=live)

    def _start_workers(self) -> None:
        if self._threads:
            return
        self._stop_event.clear()
        self._cancel.clear()
        scheduler = threading.Thread(target=self._schedule, name=f"replication-{self._name}", daemon=True)
        self._threads.append(scheduler)
        for index in range(CYCLE_WORKERS):
            self._threads.append(threading.Thread(target=self._work, daemon=True,
                                                  name=f"replication-{self._name}-{index}"))
        for thread in self._threads:
            thread.start()

    def _schedule(self) -> None:
        while not self._stop_event.wait(0.1):
            now = time.time()
            for key, members in self._registry.units().items():
                with self._cond:
                    if self._paused or key in self._running:
                        continue
                    due = self._next_due.setdefault(key, now)
                    if due > now:
                        continue
                    self._running.add(key)
                    self._next_due[key] = now + min(self._registry.interval(m) for m in members)
                self._queue.put(key)

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None or self._stop_event.is_set():
                return
            try:
                members = self._registry.units().get(key, [])
                if members:
                    self._sender.send(members, cancel=self._cancel)
            except Cancelled:
                LOG.info("replication cycle of %s cancelled", key)
            except (DriverError, OSError) as error:  # a site away: said plainly, tried again next interval
                LOG.error("replication cycle of %s failed: %s", key, error)
            except Exception:  # noqa: BLE001 -- one unit's failure never stops the worker
                LOG.exception("replication cycle of %s failed", key)
            finally:
                with self._cond:
                    self._running.discard(key)
                    self._cond.notify_all()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No cycle runs in the workers inside the block (those running are cancelled first)."""
        with self._cond:
            self._paused += 1
            self._cancel.set()
            while self._running:
                self._cond.wait(timeout=1.0)
        try:
            yield
        finally:
            with self._cond:
                self._paused -= 1
                if not self._paused:
                    self._cancel.clear()

    def replicate_now(self, volume_ids: Sequence[str] | None = None) -> Sent:
        """Test hook: one synchronous cycle of every unit (or those holding volume_ids).

        Returns the bytes sent per volume per site; the first unit's error is raised."""
        sent: Sent = {}
        for members in self._registry.units().values():
            if volume_ids is not None and not set(members) & set(volume_ids):
                continue
            sent.update(self._sender.send(members))
        return sent


def _interval(spec: str | None, default: int) -> int:
    if spec is None or not str(spec).strip():
        return max(1, default)
    try:
        return max(1, int(float(str(spec).strip())))
    except ValueError:
        raise DriverError(f"replication:interval {spec!r} is not a number of seconds") from None
