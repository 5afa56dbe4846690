"""One replication cycle of the file driver: a consistency set (one volume, or a group's members)
copied to its destination sites.

1. point in time: under the write barrier of consistency.py over the volume, or every member of its
   consistency group at once, the file is reflinked to an image (pools that reflink); on pools that
   cannot, the scan below runs inside the barrier instead;
2. change detection: data chunks only (SEEK_DATA/SEEK_HOLE), 1 MiB each, hashed and compared with
   the digests in the destination's manifest; only chunks that differ are sent;
3. the on-disk protocol of replica_store.py makes the copy complete atomically (the commit point
   is one rename; group members commit through one record).
A volume whose file did not change since the last complete copy (same mtime/size/inode, settled)
is not rescanned: only a new manifest is committed, so its lag stays at most one interval.
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.drivers.file import copy, extents, replica_store as store
from cinderblock.volume.drivers.file.consistency import WriteBarrier
from cinderblock.volume.drivers.file.registry import CopyState, CopyStates, Registry, VolumeEntry
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout

LOG = logging.getLogger(__name__)

# Chunks hashed in parallel (hashlib releases the GIL) while the previous batch is written.
HASH_THREADS = 2
BATCH = 8
# mtime younger than this (s) at the point in time: a later write could share the timestamp tick.
SETTLE = 0.05

Manifest = dict[str, Any]
# Bytes sent per volume per site.
Sent = dict[str, dict[str, int]]


class InjectedFault(Exception):
    """Raised by the test hook `inject_fault` in the middle of a send."""


class SimulatedCrash(BaseException):
    """Like InjectedFault, but nothing is cleaned up (the process 'died')."""


class Cancelled(Exception):
    """The cycle was cancelled (a failover pauses the worker)."""


@dataclass
class _Member:
    """One volume of the set being sent."""

    id: str
    entry: VolumeEntry
    site: str
    source: Path
    dests: list[str]
    manifests: dict[str, Manifest | None]
    image: Path | None = None
    stagings: dict[str, store.Staging] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    failed: dict[str, BaseException] = field(default_factory=dict)
    fp: list[int] = field(default_factory=list)
    size: int = 0
    settled: bool = False
    skip: bool = False


_Batch = tuple[list[int], list[bytes], list["Future[str | None]"]]


class Sender:
    """Sends consistency sets to their destination sites; one at a time per volume."""

    def __init__(self, layout: SiteLayout, registry: Registry, states: CopyStates, barrier: WriteBarrier) -> None:
        self._layout = layout
        self._registry = registry
        self._states = states
        self._barrier = barrier
        # (site, pool) -> the pool's directory on that site can reflink
        self.reflink: dict[tuple[str, str], bool] = {}
        self._fault: tuple[int, type[BaseException]] | None = None
        self._faults_left = 0
        self._fault_lock = threading.Lock()
        self._hash_pool: ThreadPoolExecutor | None = None
        self._hash_guard = threading.Lock()
        self.bytes_sent_total = 0
        self.last_cycle: dict[str, float] = {}

    def close(self) -> None:
        with self._hash_guard:
            pool, self._hash_pool = self._hash_pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def inject_fault(self, after_chunks: int, crash: bool = False, times: int = 1) -> None:
        """Test hook: the next `times` sends raise after writing `after_chunks` chunks (crash: no cleanup)."""
        with self._fault_lock:
            self._fault = (after_chunks, SimulatedCrash if crash else InjectedFault)
            self._faults_left = times

    def send(self, volume_ids: Sequence[str], only: str | None = None, live: bool = False,
             cancel: threading.Event | None = None) -> Sent:
        """Copy a consistency set (one volume, or a group's members) to its destination sites.

        only: one destination site (final sync of a failover). live: read the live files without
        a point-in-time image (the failover's final sync). Returns bytes sent per volume per site."""
        ids = sorted(v for v in volume_ids if v in self._registry.volumes)
        locks = [self._registry.volume_lock(v) for v in ids]
        for lock in locks:
            lock.acquire()
        try:
            return self._send_locked(ids, only, live, cancel)
        finally:
            for lock in reversed(locks):
                lock.release()

    def _members(self, ids: Sequence[str], only: str | None) -> list[_Member]:
        members = []
        for volume_id in ids:
            entry = self._registry.volumes.get(volume_id)
            if entry is None:
                continue
            site = self._registry.volume_site(volume_id)
            source = self._layout.pool_dir(site, entry["pool"]) / f"volume-{volume_id}"
            dests = [s for s in self._registry.dest_sites(volume_id) if (only is None or s == only)]
            dests = [s for s in dests if self._layout.reachable(s)]
            if not source.is_file() or not dests:
                continue
            manifests: dict[str, Manifest | None] = {}
            for dest in dests:
                directory = self._layout.pool_dir(dest, entry["pool"])
                store.roll_forward(directory, volume_id)  # a committed generation left unfinished
                manifests[dest] = store.usable_manifest(directory, volume_id)
            members.append(_Member(volume_id, entry, site, source, dests, manifests))
        return members

    def _send_locked(self, ids: Sequence[str], only: str | None, live: bool,
                     cancel: threading.Event | None) -> Sent:
        started = time.monotonic()
        members = self._members(ids, only)
        if not members:
            return {}
        group = members[0].entry.get("group")
        # Generations only grow on every destination: above anything the copies or memory hold.
        gen = 1 + max([int(m.entry.get("gen", 0)) for m in members]
                      + [int(man["gen"]) for m in members for man in m.manifests.values() if man])
        images: list[Path] = []
        committed: set[int] = set()
        sent: Sent = {m.id: {} for m in members}
        clean = True
        try:
            barrier: contextlib.AbstractContextManager[Any] = contextlib.nullcontext() if live else \
                self._barrier.hold([m.source for m in members], [m.id for m in members])
            with barrier:
                taken_at = self._point_in_time(members, gen, only, live, images, cancel)
            for m in members:
                if m.skip:
                    self._stage(m, gen)
                    first = next(iter(m.manifests.values()))
                    assert first is not None
                    m.digests = dict(first["digests"])
                elif m.image is not None or live:
                    self._stage(m, gen)
                    self._scan(m, cancel, m.image)
            stagings = [(m, site, stg) for m in members for site, stg in m.stagings.items()]
            failed_sites = self._prepare(stagings, members, gen, taken_at, group)
            by_site: dict[str, list[store.Staging]] = {}
            for _m, site, stg in stagings:
                if site not in failed_sites:
                    by_site.setdefault(site, []).append(stg)
            for site, site_stagings in by_site.items():
                store.commit(site_stagings, self._layout.site_dirs(site)[0][1], group, gen)
                committed.update(id(stg) for stg in site_stagings)
            committed_at = time.monotonic()
            for m, site, stg in stagings:
                if id(stg) not in committed:
                    continue
                store.roll_forward(stg.directory, m.id)
                self._states.set(m.id, site, taken_at)
                sent[m.id][site] = stg.sent
                self.bytes_sent_total += stg.sent
            for m in members:
                m.entry["gen"] = gen
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
                for site, stg in m.stagings.items():
                    self._states.ensure(m.id, site).in_flight = False
                    if clean and id(stg) not in committed:
                        stg.abort()

    def _point_in_time(self, members: list[_Member], gen: int, only: str | None, live: bool,
                       images: list[Path], cancel: threading.Event | None) -> float:
        """Inside the barrier: fingerprint every member, take its image (or scan it). Returns taken_at."""
        if only is not None and any(os.stat(m.source).st_mtime_ns / 1e9 > time.time() - SETTLE for m in members):
            time.sleep(SETTLE)  # a failover's final sync of a just-written volume: let its mtime settle
        taken_at = time.time()
        for m in members:
            st = os.stat(m.source)
            m.fp = [st.st_mtime_ns, st.st_size, st.st_ino]
            m.size = st.st_size
            m.settled = st.st_mtime_ns / 1e9 < taken_at - SETTLE
            m.skip = m.settled and all(
                man is not None and man.get("fp") == m.fp and man.get("source") == m.site
                for man in m.manifests.values())
            if m.skip or live:
                continue
            if self.reflink.get((m.site, m.entry["pool"]), False):
                image = store.meta_dir(m.source.parent) / f"{store.TMP}image-{m.id}.{gen}"
                if copy.reflink(str(m.source), str(image)):
                    images.append(image)
                    m.image = image
                    continue
            self._stage(m, gen)
            self._scan(m, cancel)  # no reflink: the scan inside the barrier is the point in time
        return taken_at

    @staticmethod
    def _prepare(stagings: list[tuple[_Member, str, store.Staging]], members: list[_Member], gen: int,
                 taken_at: float, group: str | None) -> dict[str, BaseException]:
        """Make every staging durable with its manifest-to-be; returns the sites that failed."""
        for m, _site, stg in stagings:
            if stg.failed is not None:
                continue
            try:
                if not m.skip:
                    stg.zero_rest()
                stg.prepare({"gen": gen, "taken_at": taken_at, "size": m.size, "chunk": extents.CHUNK,
                             "digests": m.digests, "source": m.site, "group": group,
                             # the source's fingerprint, when a later write cannot share it
                             "fp": m.fp if m.settled else None})
            except OSError as error:
                stg.failed = error
        # A site where one member failed gets none of the set: its copies keep one common point.
        failed_sites = {site: stg.failed for _m, site, stg in stagings if stg.failed is not None}
        failed_sites.update({site: err for m in members for site, err in m.failed.items()})
        for site, failure in failed_sites.items():
            LOG.warning("replication of %s to %s failed (the last complete copy stays): %s",
                        [m.id for m in members], site, failure)
        return failed_sites

    def _stage(self, member: _Member, gen: int) -> None:
        pool = member.entry["pool"]
        for site in member.dests:
            try:
                member.stagings[site] = store.Staging(
                    self._layout.pool_dir(site, pool), member.id, gen, member.manifests[site], member.size,
                    self.reflink.get((site, pool), False))
            except OSError as error:
                member.failed[site] = error

    def _scan(self, member: _Member, cancel: threading.Event | None, image: Path | None = None) -> None:
        """Read the member's data chunks once: digest each, offer it to every destination.

        Three stages overlap: this thread reads, HASH_THREADS hash (hashlib releases the GIL), a
        writer thread sends the batches in order (bounded queue: a few batches in memory)."""
        path = image or member.source
        size = member.size
        digests: dict[int, str] = {}
        # bytes_pending while in flight: the changed bytes found so far (complete at the commit).
        states = {s: self._states.ensure(member.id, s) for s in member.dests}
        for state in states.values():
            state.in_flight = True
        batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        errors: list[BaseException] = []
        writer = threading.Thread(target=self._write_batches, args=(member, batches, digests, errors, states),
                                  name=f"replication-send-{member.id[:8]}", daemon=True)
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
                    raise Cancelled()
                batch = chunks[start:start + BATCH]
                datas = [extents.read_chunk(fd, index, size) for index in batch]
                batches.put((batch, datas, [self._hasher().submit(extents.digest, d) for d in datas]))
        finally:
            os.close(fd)
            batches.put(None)
            writer.join()
        if errors:
            raise errors[0]
        member.digests = digests

    def _write_batches(self, member: _Member, batches: queue.Queue[_Batch | None], digests: dict[int, str],
                       errors: list[BaseException], states: dict[str, CopyState]) -> None:
        """The writer thread of _scan: offers each chunk to every destination, in order."""
        written = 0
        while (item := batches.get()) is not None:
            if errors:
                continue
            try:
                for index, data, future in zip(*item, strict=True):
                    digest = future.result()
                    if digest is not None:
                        digests[index] = digest
                    for stg in member.stagings.values():
                        if stg.failed is not None:
                            continue
                        try:
                            sent = stg.offer(index, data, digest)
                        except OSError as error:  # this destination only; the others go on
                            stg.failed = error
                            continue
                        if sent:
                            written += 1
                            self._check_fault(written)
                for site, stg in member.stagings.items():
                    states[site].bytes_pending = stg.sent
            except BaseException as error:  # noqa: BLE001 -- re-raised by the reading thread
                errors.append(error)

    def _hasher(self) -> ThreadPoolExecutor:
        with self._hash_guard:
            if self._hash_pool is None:
                self._hash_pool = ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="replication-hash")
            return self._hash_pool

    def _check_fault(self, written: int) -> None:
        with self._fault_lock:
            if self._fault is None or written < self._fault[0]:
                return
            kind = self._fault[1]
            self._faults_left -= 1
            if self._faults_left <= 0:
                self._fault = None
        raise kind(f"injected fault after {written} chunk(s)")

    def prepare_sites(self, probe: Callable[[Path], bool]) -> None:
        """At start: the replication directory of every pool on every site, and whether it reflinks.

        A site away is reported and used once it is back; the site serving the backend must work."""
        layout = self._layout
        for site in layout.sites():
            if site == PRIMARY and layout.active is not None and not layout.reachable(PRIMARY):
                continue  # the lost primary: never recreate it empty behind the admin's back
            for name, directory in layout.site_dirs(site):
                try:
                    store.meta_dir(directory).mkdir(parents=True, exist_ok=True)
                    self.reflink[(site, name)] = probe(directory)
                except OSError as error:
                    if site == layout.backend_site():
                        raise DriverError(f"preparing {directory}: {error.strerror or error}") from error
                    LOG.warning("replication site %s unusable for now (%s): %s", site, directory, error)

