"""Asynchronous replication of the file driver (SupportsReplication + SupportsGroupReplication).

Sites: the primary ("default", the configured pool directories) and every `replication_device`
(`backend_id:<id>, path:<dir>`), where pool P lives in `<path>/<P>`. Every replicated volume has
one *active* site (the backend's, or its own after a group failover) that serves it; worker threads
copy it to every other reachable site at its interval:

1. point in time: under the write barrier of consistency.py (flock / tgt offline) over the volume,
   or every member of its consistency group at once, the file is reflinked to an image (pools that
   reflink); on pools that cannot, the scan below runs inside the barrier instead;
2. change detection: data chunks only (SEEK_DATA/SEEK_HOLE), 1 MiB each, hashed with blake2b and
   compared with the digests in the destination's manifest; only chunks that differ are sent;
3. the on-disk protocol of replica_store.py makes the copy complete atomically (the commit point
   is one rename; group members commit through one record).
A volume whose file did not change since the last complete copy (same mtime/size/inode, settled)
is not rescanned: only a new manifest is committed, so its lag stays at most one interval.

Which volumes and groups replicate, and which site serves each, is kept in a small JSON registry
under state_path (never in the database), so it survives a restart. Switching sites (failover,
failback, group failover, freeze/thaw) is failover.py.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    ModelUpdate,
    ReplicationDevice,
    VolumeRef,
    replication_devices,
)
from cinderblock.volume.drivers.file import copy, extents, replica_store as store
from cinderblock.volume.drivers.file.consistency import write_barrier
from cinderblock.volume.drivers.file.failover import SETTLE, FileFailover

LOG = logging.getLogger(__name__)

PRIMARY = PRIMARY_BACKEND_ID
CYCLE_WORKERS = 4
# Chunks hashed in parallel (hashlib releases the GIL) while the previous batch is written.
HASH_THREADS = 2
BATCH = 8


class InjectedFault(Exception):
    """Raised by the test hook `inject_fault` in the middle of a send."""


class SimulatedCrash(BaseException):
    """Like InjectedFault, but nothing is cleaned up (the process 'died')."""


class _Cancelled(Exception):
    pass


class Registry:
    """volumes: id -> {pool, interval, group, active, created_at, gen}; groups: id -> [volume ids]."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.volumes: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, list[str]] = {}

    def load(self) -> None:
        data = store.read_json(self.path) or {}
        with self.lock:
            self.volumes = dict(data.get("volumes", {}))
            self.groups = {g: list(m) for g, m in data.get("groups", {}).items()}

    def save(self) -> None:
        with self.lock:
            payload = {"volumes": self.volumes, "groups": self.groups}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            store.write_json(self.path, payload)

    def snapshot(self) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
        with self.lock:
            return json.loads(json.dumps(self.volumes)), json.loads(json.dumps(self.groups))

    def restore(self, saved: tuple[dict[str, dict[str, Any]], dict[str, list[str]]]) -> None:
        with self.lock:
            self.volumes, self.groups = saved
            self.save()


class FileReplication(FileFailover):
    """Mixed into FileDriver (uses its pools, target, reflink probes and path helpers)."""

    # -- state ---------------------------------------------------------------------------------

    def _repl_init(self) -> None:
        self._active: str | None = None
        self._devices: tuple[ReplicationDevice, ...] = ()
        self._site_roots: dict[str, Path] = {}
        self._site_reflink: dict[tuple[str, str], bool] = {}
        self._registry = Registry(Path(self.state_path) / "file-replication" / f"{self.backend_name}.json")
        self._vlocks: dict[str, threading.Lock] = {}
        self._vlocks_guard = threading.Lock()
        # (volume id, site) -> [last_complete_at, bytes_pending, in_flight]
        self._states: dict[tuple[str, str], list[Any]] = {}
        self._cond = threading.Condition()
        self._paused = 0
        self._running: set[str] = set()
        self._cancel = threading.Event()
        self._stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._next_due: dict[str, float] = {}
        self._fault: tuple[int, type[BaseException]] | None = None
        self.bytes_sent_total = 0
        self.last_cycle: dict[str, float] = {}
        self._hash_pool: ThreadPoolExecutor | None = None

    def _repl_configure(self) -> None:
        """do_setup, first part: parse and validate the targets (before the active site's pools)."""
        self._devices = replication_devices(self.options)
        self._site_roots = {}
        pool_dirs = {os.path.realpath(p.path) for p in self.pools}
        for device in self._devices:
            raw = device.options.get("path", "")
            if not raw or not os.path.isabs(raw):
                raise DriverError(f"replication_device {device.backend_id}: 'path' must be an absolute directory")
            root = Path(os.path.normpath(raw))
            root.mkdir(parents=True, exist_ok=True)
            real = os.path.realpath(root)
            for pool in self.pools:
                mine = os.path.realpath(root / pool.name)
                if real in pool_dirs or mine in pool_dirs:
                    raise DriverError(f"replication_device {device.backend_id}: {root} is a pool directory")
            if real in {os.path.realpath(r) for r in self._site_roots.values()}:
                raise DriverError(f"replication_device {device.backend_id}: {root} is used by another target")
            self._site_roots[device.backend_id] = root
        if self._active is not None and self._active not in self._site_roots:
            raise DriverError(f"active backend {self._active!r} is not a configured replication_device")

    def _repl_start(self) -> None:
        """do_setup, last part: prepare every site, load the registry, recover, start the workers."""
        if not self._devices:
            return
        for site in self._sites():
            if site == PRIMARY and self._active is not None and not self._site_reachable(PRIMARY):
                continue  # the lost primary: never recreate it empty behind the admin's back
            for name, directory in self._site_dirs(site):
                try:
                    store.meta_dir(directory).mkdir(parents=True, exist_ok=True)
                    self._site_reflink[(site, name)] = _probe(directory)
                except OSError as error:
                    if site == self._backend_site():
                        raise DriverError(f"preparing {directory}: {error.strerror or error}") from error
                    LOG.warning("replication site %s unusable for now (%s): %s", site, directory, error)
        self._registry.load()
        for site in self._sites():
            if self._site_reachable(site):
                self._recover_site(site)
        now = time.time()
        for volume_id, entry in self._registry.volumes.items():
            for site in self._dest_sites(volume_id):
                manifest = self._read_dest_manifest(volume_id, site)
                self._states[(volume_id, site)] = [manifest["taken_at"] if manifest else None, 0, False]
            self._next_due[self._unit_key(volume_id)] = now + min(1.0, float(entry["interval"]))
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
        if self._hash_pool is not None:
            self._hash_pool.shutdown(wait=True)
            self._hash_pool = None

    # -- sites ---------------------------------------------------------------------------------

    def _sites(self) -> list[str]:
        return [PRIMARY] + [d.backend_id for d in self._devices]

    def _backend_site(self) -> str:
        return self._active or PRIMARY

    def _site_pool_dir(self, site: str, pool_name: str) -> Path:
        if site == PRIMARY:
            return self._pools_by_name[pool_name].path
        return self._site_roots[site] / pool_name

    def _site_dirs(self, site: str) -> list[tuple[str, Path]]:
        return [(p.name, self._site_pool_dir(site, p.name)) for p in self.pools]

    def _site_reachable(self, site: str) -> bool:
        try:
            return all(d.is_dir() and os.access(d, os.R_OK | os.W_OK | os.X_OK) for _, d in self._site_dirs(site))
        except OSError:
            return False

    def _recover_site(self, site: str) -> int:
        dirs = [d for _, d in self._site_dirs(site)]
        return store.recover(dirs, dirs[:1])

    def _volume_site(self, volume_id: str, driver_data: str | None = None) -> str:
        entry = self._registry.volumes.get(volume_id)
        if entry is not None and entry.get("active"):
            return str(entry["active"])
        if entry is None and driver_data:
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                site = json.loads(driver_data).get("active")
                if site == PRIMARY or site in self._site_roots:
                    return str(site)
        return self._backend_site()

    def _dest_sites(self, volume_id: str) -> list[str]:
        active = self._volume_site(volume_id)
        return [s for s in self._sites() if s != active] if self._devices else []

    def _read_dest_manifest(self, volume_id: str, site: str) -> dict[str, Any] | None:
        entry = self._registry.volumes.get(volume_id)
        if entry is None:
            return None
        return store.read_manifest(self._site_pool_dir(site, entry["pool"]), volume_id)

    def _vlock(self, volume_id: str) -> threading.Lock:
        with self._vlocks_guard:
            return self._vlocks.setdefault(volume_id, threading.Lock())

    # -- registration (create/clone/delete hooks of the driver) ---------------------------------

    def _replicate_new(self, volume: VolumeRef, update: ModelUpdate) -> ModelUpdate:
        if not (volume.replicated and self._devices):
            return update
        self._register(volume)
        try:
            self._send([volume.id], live=False)
        except Exception as error:  # noqa: BLE001 -- the worker retries; the volume exists
            LOG.warning("initial copy of volume %s failed (the worker retries): %s", volume.id, error)
        return ModelUpdate(provider_location=update.provider_location, provider_auth=update.provider_auth,
                           replication_status="enabled")

    def _register(self, volume: VolumeRef, group: str | None = None) -> None:
        pool = (self._pool(volume.pool) or self.pools[0]).name
        if volume.id in self._registry.volumes:
            pool = self._registry.volumes[volume.id]["pool"]
        interval = _interval(volume.extra_specs.get("replication:interval"),
                             int(self.options.get("replication_interval") or 60))
        with self._registry.lock:
            entry = self._registry.volumes.setdefault(volume.id, {
                "pool": pool, "active": None, "created_at": time.time(), "gen": 0, "group": None})
            entry["interval"] = interval
            if group is not None:
                entry["group"] = group
            self._registry.save()
        now = time.time()
        for site in self._dest_sites(volume.id):
            self._states.setdefault((volume.id, site), [None, 0, False])
        self._next_due[self._unit_key(volume.id)] = now + interval

    def _forget(self, volume_id: str, pool: str | None) -> None:
        """delete_volume: drop the volume from replication and remove its copies on every site."""
        if not self._devices:
            return
        with self._vlock(volume_id):
            with self._registry.lock:
                entry = self._registry.volumes.pop(volume_id, None)
                for members in self._registry.groups.values():
                    if volume_id in members:
                        members.remove(volume_id)
                self._registry.save()
            pools = [entry["pool"]] if entry else [pool] if pool else [p.name for p in self.pools]
            for site in self._sites():
                if not self._site_reachable(site):
                    continue
                for name in pools:
                    with contextlib.suppress(OSError, KeyError):
                        store.remove_copy(self._site_pool_dir(site, name), volume_id)
            for site in self._sites():
                self._states.pop((volume_id, site), None)

    # -- the worker ----------------------------------------------------------------------------

    def _unit_key(self, volume_id: str) -> str:
        group = (self._registry.volumes.get(volume_id) or {}).get("group")
        return f"group:{group}" if group else volume_id

    def _units(self) -> dict[str, list[str]]:
        units: dict[str, list[str]] = {}
        with self._registry.lock:
            for volume_id, entry in self._registry.volumes.items():
                key = f"group:{entry['group']}" if entry.get("group") else volume_id
                units.setdefault(key, []).append(volume_id)
        return units

    def _start_workers(self) -> None:
        if self._threads:
            return
        self._stop_event.clear()
        self._cancel.clear()
        scheduler = threading.Thread(target=self._schedule, name=f"replication-{self.backend_name}", daemon=True)
        self._threads.append(scheduler)
        for index in range(CYCLE_WORKERS):
            self._threads.append(threading.Thread(target=self._work, daemon=True,
                                                  name=f"replication-{self.backend_name}-{index}"))
        for thread in self._threads:
            thread.start()

    def _schedule(self) -> None:
        while not self._stop_event.wait(0.1):
            now = time.time()
            for key, members in self._units().items():
                with self._cond:
                    if self._paused or key in self._running:
                        continue
                    due = self._next_due.setdefault(key, now)
                    if due > now:
                        continue
                    self._running.add(key)
                    interval = min(float(self._registry.volumes.get(m, {}).get("interval", 60)) for m in members)
                    self._next_due[key] = now + interval
                self._queue.put(key)

    def _work(self) -> None:
        while True:
            key = self._queue.get()
            if key is None or self._stop_event.is_set():
                return
            try:
                members = self._units().get(key, [])
                if members:
                    self._send(members, cancel=self._cancel)
            except _Cancelled:
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
    def _worker_paused(self) -> Iterator[None]:
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

    def replicate_now(self, volume_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """Test hook: one synchronous cycle of every unit (or those holding volume_ids).

        Returns the bytes sent per volume per site; the first unit's error is raised."""
        sent: dict[str, dict[str, int]] = {}
        for key, members in self._units().items():
            if volume_ids is not None and not set(members) & set(volume_ids):
                continue
            sent.update(self._send(members))
        return sent

    def inject_fault(self, after_chunks: int, crash: bool = False) -> None:
        """Test hook: the next send raises after writing `after_chunks` chunks (crash: no cleanup)."""
        self._fault = (after_chunks, SimulatedCrash if crash else InjectedFault)

    # -- one replication cycle -----------------------------------------------------------------

    def _send(self, volume_ids: Sequence[str], only: str | None = None, live: bool = False,
              cancel: threading.Event | None = None) -> dict[str, dict[str, int]]:
        """Copy a consistency set (one volume, or a group's members) to its destination sites.

        only: one destination site (final sync of a failover). live: read the live files without
        a point-in-time image (the failover's final sync). Returns bytes sent per volume per site."""
        ids = sorted(v for v in volume_ids if v in self._registry.volumes)
        locks = [self._vlock(v) for v in ids]
        for lock in locks:
            lock.acquire()
        try:
            return self._send_locked(ids, only, live, cancel)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _send_locked(self, ids: Sequence[str], only: str | None, live: bool,
                     cancel: threading.Event | None) -> dict[str, dict[str, int]]:
        started = time.monotonic()
        members = []
        for volume_id in ids:
            entry = self._registry.volumes.get(volume_id)
            if entry is None:
                continue
            site = self._volume_site(volume_id)
            source = self._site_pool_dir(site, entry["pool"]) / f"volume-{volume_id}"
            dests = [s for s in self._dest_sites(volume_id) if (only is None or s == only)]
            dests = [s for s in dests if self._site_reachable(s)]
            if not source.is_file() or not dests:
                continue
            manifests = {}
            for dest in dests:
                directory = self._site_pool_dir(dest, entry["pool"])
                store.roll_forward(directory, volume_id)  # a committed generation left unfinished
                manifests[dest] = store.usable_manifest(directory, volume_id)
            members.append({"id": volume_id, "entry": entry, "site": site, "source": source, "dests": dests,
                            "manifests": manifests, "image": None, "stagings": {}, "digests": {}, "failed": {}})
        if not members:
            return {}
        group = members[0]["entry"].get("group")
        # Generations only grow on every destination: above anything the copies or memory hold.
        gen = 1 + max([int(m["entry"].get("gen", 0)) for m in members]
                      + [int(man["gen"]) for m in members for man in m["manifests"].values() if man])
        images: list[Path] = []
        committed: set[int] = set()
        sent: dict[str, dict[str, int]] = {m["id"]: {} for m in members}
        clean = True
        try:
            barrier = contextlib.nullcontext([0.0]) if live else write_barrier(
                [m["source"] for m in members], self.target, [m["id"] for m in members])
            with barrier:
                if only is not None and any(os.stat(m["source"]).st_mtime_ns / 1e9 > time.time() - SETTLE
                                            for m in members):
                    time.sleep(SETTLE)  # a failover's final sync of a just-written volume: let its mtime settle
                taken_at = time.time()
                for m in members:
                    st = os.stat(m["source"])
                    m["fp"] = [st.st_mtime_ns, st.st_size, st.st_ino]
                    m["size"] = st.st_size
                    settled = st.st_mtime_ns / 1e9 < taken_at - SETTLE
                    m["settled"] = settled
                    m["skip"] = settled and all(
                        man is not None and man.get("fp") == m["fp"] and man.get("source") == m["site"]
                        for man in m["manifests"].values())
                    if m["skip"] or live:
                        continue
                    if self._site_reflink.get((m["site"], m["entry"]["pool"]), False):
                        image = store.meta_dir(m["source"].parent) / f"{store.TMP}image-{m['id']}.{gen}"
                        if copy.reflink(str(m["source"]), str(image)):
                            images.append(image)
                            m["image"] = image
                            continue
                    self._stage(m, gen)
                    self._scan(m, cancel)  # no reflink: the scan inside the barrier is the point in time
            for m in members:
                if m["skip"]:
                    self._stage(m, gen)
                    m["digests"] = dict(next(iter(m["manifests"].values()))["digests"])
                elif m["image"] is not None or live:
                    self._stage(m, gen)
                    self._scan(m, cancel, m["image"])
            stagings = [(m, site, stg) for m in members for site, stg in m["stagings"].items()]
            for m, site, stg in stagings:
                if stg.failed is not None:
                    continue
                try:
                    if not m["skip"]:
                        stg.zero_rest()
                    stg.prepare({"gen": gen, "taken_at": taken_at, "size": m["size"], "chunk": extents.CHUNK,
                                 "digests": m["digests"], "source": m["site"], "group": group,
                                 # the source's fingerprint, when a later write cannot share it
                                 "fp": m["fp"] if m["settled"] else None})
                except OSError as error:
                    stg.failed = error
            # A site where one member failed gets none of the set: its copies keep one common point.
            failed_sites = {site: stg.failed for _m, site, stg in stagings if stg.failed is not None}
            failed_sites.update({site: err for m in members for site, err in m["failed"].items()})
            for site, error in failed_sites.items():
                LOG.warning("replication of %s to %s failed (the last complete copy stays): %s",
                            [m["id"] for m in members], site, error)
            by_site: dict[str, list[store.Staging]] = {}
            for m, site, stg in stagings:
                if site not in failed_sites:
                    by_site.setdefault(site, []).append(stg)
            for site, site_stagings in by_site.items():
                store.commit(site_stagings, self._site_dirs(site)[0][1], group, gen)
                committed.update(id(stg) for stg in site_stagings)
            committed_at = time.monotonic()
            for m, site, stg in stagings:
                if id(stg) not in committed:
                    continue
                store.roll_forward(stg.directory, m["id"])
                self._states[(m["id"], site)] = [taken_at, 0, False]
                sent[m["id"]][site] = stg.sent
                self.bytes_sent_total += stg.sent
            for m in members:
                m["entry"]["gen"] = gen
            # For benchmarks: seconds to the commit point (complete copies) and to the end.
            self.last_cycle = {"to_commit_s": committed_at - started, "total_s": time.monotonic() - started,
                               "bytes_sent": sum(sum(v.values()) for v in sent.values())}
            if failed_sites and only is not None:
                raise DriverError(f"copy to {only} failed: {next(iter(failed_sites.values()))}")
            return sent
        except SimulatedCrash:
            clean = False
            raise
        finally:
            for image in images:
                image.unlink(missing_ok=True)
            for m in members:
                for site, stg in m["stagings"].items():
                    self._states.setdefault((m["id"], site), [None, 0, False])[2] = False
                    if clean and id(stg) not in committed:
                        stg.abort()

    def _stage(self, member: dict[str, Any], gen: int) -> None:
        pool = member["entry"]["pool"]
        for site in member["dests"]:
            try:
                member["stagings"][site] = store.Staging(
                    self._site_pool_dir(site, pool), member["id"], gen, member["manifests"][site], member["size"],
                    self._site_reflink.get((site, pool), False))
            except OSError as error:
                member["failed"][site] = error

    def _scan(self, member: dict[str, Any], cancel: threading.Event | None, image: Path | None = None) -> None:
        """Read the member's data chunks once: digest each, offer it to every destination.

        Three stages overlap: this thread reads, HASH_THREADS hash (hashlib releases the GIL), a
        writer thread sends the batches in order (bounded queue: a few batches in memory)."""
        path = image or member["source"]
        size = member["size"]
        digests: dict[int, str] = {}
        # bytes_pending while in flight: the changed bytes found so far (complete at the commit).
        states = {s: self._states.setdefault((member["id"], s), [None, 0, False]) for s in member["dests"]}
        for state in states.values():
            state[2] = True
        batches: queue.Queue[Any] = queue.Queue(maxsize=2)
        errors: list[BaseException] = []
        written = [0]

        def send() -> None:
            while (item := batches.get()) is not None:
                if errors:
                    continue
                try:
                    for index, data, future in zip(*item):
                        digest = future.result()
                        if digest is not None:
                            digests[index] = digest
                        for stg in member["stagings"].values():
                            if stg.failed is not None:
                                continue
                            try:
                                sent = stg.offer(index, data, digest)
                            except OSError as error:  # this destination only; the others go on
                                stg.failed = error
                                continue
                            if sent:
                                written[0] += 1
                                self._check_fault(written[0])
                    for site, stg in member["stagings"].items():
                        states[site][1] = stg.sent
                except BaseException as error:  # noqa: BLE001 -- re-raised by the reading thread
                    errors.append(error)

        writer = threading.Thread(target=send, name=f"replication-send-{member['id'][:8]}", daemon=True)
        writer.start()
        fd = os.open(path, os.O_RDONLY)
        try:
            # A fresh reflink image shares no page cache with the volume: read ahead a lot.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            chunks = list(extents.data_chunks(fd, size))
            for start in range(0, len(chunks), BATCH):
                if errors:
                    break
                if cancel is not None and cancel.is_set():
                    raise _Cancelled()
                batch = chunks[start:start + BATCH]
                datas = [extents.read_chunk(fd, index, size) for index in batch]
                batches.put((batch, datas, [self._hasher().submit(extents.digest, d) for d in datas]))
        finally:
            os.close(fd)
            batches.put(None)
            writer.join()
        if errors:
            raise errors[0]
        member["digests"] = digests

    def _hasher(self) -> ThreadPoolExecutor:
        with self._vlocks_guard:
            if self._hash_pool is None:
                self._hash_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="replication-hash")
            return self._hash_pool

    def _check_fault(self, written: int) -> None:
        if self._fault is not None and written >= self._fault[0]:
            kind = self._fault[1]
            self._fault = None
            raise kind(f"injected fault after {written} chunk(s)")

def _interval(spec: str | None, default: int) -> int:
    if spec is None or not str(spec).strip():
        return max(1, default)
    try:
        return max(1, int(float(str(spec).strip())))
    except ValueError:
        raise DriverError(f"replication:interval {spec!r} is not a number of seconds") from None


def _probe(directory: Path) -> bool:
    from cinderblock.volume.drivers.file.driver import _probe_reflink

    return _probe_reflink(directory)

