"""FakeDriver: in-memory volumes for tests of everything above the driver.

Each volume or snapshot is a size plus the 64 KiB chunks written so far (the rest reads as
zeros), so a 1000 GiB volume costs nothing. Clones and snapshots copy the bytes and revert
restores them, so tests can check data flows without real storage. `fail_next("create_volume")`
makes the next call of a method raise DriverError, to drive failure paths without mocks.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, ClassVar

from oslo_config import cfg

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    BackendStats,
    FailoverResult,
    ReplicaState,
    ReplicationDevice,
    SupportsGroupReplication,
    SupportsReplication,
    VolumeFailover,
    replication_devices,
    resolve_failover_target,
    ConnectionInfo,
    Connector,
    DriverOptions,
    ModelUpdate,
    PoolStats,
    ProgressCallback,
    SnapshotRef,
    StorageListing,
    VolumeDriver,
    VolumeRef,
    no_progress,
)

LOG = logging.getLogger(__name__)

GiB = 1024**3
POOL = "fake"

fake_opts = (
    cfg.IntOpt("fake_capacity_gb", default=1000, min=0, help="Total capacity the fake pool reports."),
    cfg.BoolOpt(
        "fake_keep_across_restarts",
        default=False,
        help="Keep the fake's storage in a process-wide registry keyed by (state_path, backend), so a "
        "new driver instance (a restarted service in tests) sees the volumes of the previous one.",
    ),
    cfg.FloatOpt("fake_create_seconds", default=0.0, min=0.0,
                 help="Seconds each volume create takes (work in flight for shutdown and crash tests)."),
)


CHUNK = 64 * 1024  # granularity of the sparse in-memory image


@dataclass
class Blob:
    """A sparse image: size in bytes and the chunks written so far (the rest reads as zeros)."""

    size: int
    chunks: dict[int, bytearray] = field(default_factory=dict)

    @property
    def used_bytes(self) -> int:
        return len(self.chunks) * CHUNK

    def copy(self, size: int | None = None) -> Blob:
        chunks = {index: bytearray(chunk) for index, chunk in self.chunks.items()}
        return Blob(size=max(self.size, size or 0), chunks=chunks)

    def _check(self, offset: int, length: int, what: str) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise DriverError(f"{what} [{offset}, {offset + length}) outside a {self.size}-byte volume")

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length, "read")
        out = bytearray(length)
        pos = offset
        while pos < offset + length:
            index, start = divmod(pos, CHUNK)
            n = min(CHUNK - start, offset + length - pos)
            chunk = self.chunks.get(index)
            if chunk is not None:
                out[pos - offset:pos - offset + n] = chunk[start:start + n]
            pos += n
        return bytes(out)

    def write(self, offset: int, payload: bytes) -> None:
        self._check(offset, len(payload), "write")
        pos = offset
        while pos < offset + len(payload):
            index, start = divmod(pos, CHUNK)
            n = min(CHUNK - start, offset + len(payload) - pos)
            chunk = self.chunks.setdefault(index, bytearray(CHUNK))
            chunk[start:start + n] = payload[pos - offset:pos - offset + n]
            pos += n


@dataclass
class FakeStore:
    """Everything the fake backend 'has'; outlives a driver instance when shared."""

    volumes: dict[str, Blob] = field(default_factory=dict)
    snapshots: dict[str, Blob] = field(default_factory=dict)
    # volume id -> hosts it is connected to (None for a connector without a host)
    exports: dict[str, list[str | None]] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    # Replication: target id (PRIMARY_BACKEND_ID for the primary while failed over) -> volume id ->
    # the copy last sent there, and when. `volumes` always holds what the active site serves.
    replicas: dict[str, dict[str, Blob]] = field(default_factory=dict)
    synced_at: dict[str, dict[str, float]] = field(default_factory=dict)
    replicated: set[str] = field(default_factory=set)
    active: str | None = None
    # Tests set it to simulate a lost site: no final sync on failover.
    active_site_lost: bool = False


class FakeDriver(VolumeDriver, SupportsReplication, SupportsGroupReplication):
    VERSION = "1.0.0"
    OPTIONS = fake_opts

    _registry: ClassVar[dict[tuple[str, str], FakeStore]] = {}
    # The contract classes whose methods fail_next can fail (variants add theirs).
    CONTRACTS: ClassVar[tuple[type, ...]] = (VolumeDriver, SupportsReplication, SupportsGroupReplication)

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        super().__init__(backend_name, options, state_path)
        if options.get("fake_keep_across_restarts"):
            self.store = self._registry.setdefault((state_path, backend_name), FakeStore())
        else:
            self.store = FakeStore()
        self._failures: dict[str, list[BaseException]] = defaultdict(list)
        # Every contract call, in order, as (method, resource id): lets tests assert what happened.
        self.calls: list[tuple[str, str | None]] = []

    @classmethod
    def forget_all(cls) -> None:
        """Drop every shared store (test teardown)."""
        cls._registry.clear()

    # -- failure injection ---------------------------------------------------------------------

    def fail_next(self, method: str, error: BaseException | None = None, times: int = 1) -> None:
        """Make the next `times` calls of method raise error (default DriverError)."""
        if not any(callable(getattr(base, method, None)) for base in self.CONTRACTS):
            raise ValueError(f"{method!r} is not a VolumeDriver method")
        for _ in range(times):
            self._failures[method].append(error or DriverError(f"injected failure in {method}"))

    def _enter(self, method: str, ident: str | None = None) -> None:
        self.calls.append((method, ident))
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    # -- test access to the bytes --------------------------------------------------------------

    def read(self, volume_id: str, offset: int, length: int) -> bytes:
        return self._volume(volume_id).read(offset, length)

    def write(self, volume_id: str, offset: int, payload: bytes) -> None:
        with self.store.lock:
            self._volume(volume_id).write(offset, payload)

    def read_snapshot(self, snapshot_id: str, offset: int, length: int) -> bytes:
        return self._snapshot(snapshot_id).read(offset, length)

    def size_bytes(self, volume_id: str) -> int:
        return self._volume(volume_id).size

    def connected_hosts(self, volume_id: str) -> list[str | None]:
        return list(self.store.exports.get(volume_id, []))

    def _volume(self, volume_id: str) -> Blob:
        blob = self.store.volumes.get(volume_id)
        if blob is None:
            raise DriverError(f"fake volume {volume_id} does not exist")
        return blob

    def _snapshot(self, snapshot_id: str) -> Blob:
        blob = self.store.snapshots.get(snapshot_id)
        if blob is None:
            raise DriverError(f"fake snapshot {snapshot_id} does not exist")
        return blob

    def _check_pool(self, volume: VolumeRef) -> None:
        if volume.pool and volume.pool.rsplit("#", 1)[-1] != POOL:
            raise DriverError(f"unknown pool {volume.pool!r} (the fake has only {POOL!r})")

    def _add_volume(self, volume: VolumeRef, blob: Blob) -> ModelUpdate:
        self._check_pool(volume)
        with self.store.lock:
            if volume.id in self.store.volumes:
                raise DriverError(f"fake volume {volume.id} already exists")
            self.store.volumes[volume.id] = blob
        return ModelUpdate(provider_location=f"fake://{POOL}/{volume.name}")

    # -- contract ------------------------------------------------------------------------------

    def do_setup(self) -> None:
        self._enter("do_setup")
        self._targets = replication_devices(self.options)

    def check_for_setup_error(self) -> None:
        self._enter("check_for_setup_error")

    def get_stats(self) -> BackendStats:
        self._enter("get_stats")
        total = float(self.options.get("fake_capacity_gb", 1000))
        with self.store.lock:
            provisioned = sum(b.size for b in self.store.volumes.values()) / GiB
            used = (sum(b.used_bytes for b in self.store.volumes.values())
                    + sum(b.used_bytes for b in self.store.snapshots.values())) / GiB
        ratio = str(self.options.get("max_over_subscription_ratio") or "20.0")
        return BackendStats(
            volume_backend_name=str(self.options.get("volume_backend_name") or self.backend_name),
            vendor_name="cinderblock",
            driver_version=self.VERSION,
            storage_protocol="fake",
            pools=(PoolStats(
                name=POOL,
                total_capacity_gb=total,
                free_capacity_gb=max(0.0, round(total - used, 2)),
                provisioned_capacity_gb=round(provisioned, 2),
                allocated_capacity_gb=round(provisioned, 2),
                reserved_percentage=int(self.options.get("reserved_percentage") or 0),
                max_over_subscription_ratio=20.0 if ratio.lower() == "auto" else float(ratio),
            ),),
            capabilities={"multiattach": True, "QoS_support": False, **self._replication_capabilities()},
        )

    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        self._enter("create_volume", volume.id)
        time.sleep(float(self.options.get("fake_create_seconds") or 0))
        return self._replicate_new(volume, self._add_volume(volume, Blob(size=volume.size_gb * GiB)))

    def delete_volume(self, volume: VolumeRef) -> None:
        self._enter("delete_volume", volume.id)
        with self.store.lock:
            self.store.volumes.pop(volume.id, None)
            self.store.exports.pop(volume.id, None)
            self.store.replicated.discard(volume.id)
            for copies in self.store.replicas.values():
                copies.pop(volume.id, None)

    def volume_exists(self, volume: VolumeRef) -> bool:
        self._enter("volume_exists", volume.id)
        return volume.id in self.store.volumes

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        self._enter("extend_volume", volume.id)
        with self.store.lock:
            blob = self._volume(volume.id)
            if new_size_gb * GiB < blob.size:
                raise DriverError(f"cannot shrink fake volume {volume.id} to {new_size_gb} GiB")
            blob.size = new_size_gb * GiB

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        self._enter("create_snapshot", snapshot.id)
        with self.store.lock:
            if snapshot.id in self.store.snapshots:
                raise DriverError(f"fake snapshot {snapshot.id} already exists")
            self.store.snapshots[snapshot.id] = self._volume(snapshot.volume.id).copy()
        progress(100)
        return ModelUpdate(provider_location=f"fake://{POOL}/{snapshot.name}")

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        self._enter("delete_snapshot", snapshot.id)
        with self.store.lock:
            self.store.snapshots.pop(snapshot.id, None)

    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self._enter("create_volume_from_snapshot", volume.id)
        with self.store.lock:
            source = self._snapshot(snapshot.id)
            if volume.size_gb * GiB < source.size:
                raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its snapshot")
            update = self._add_volume(volume, source.copy(volume.size_gb * GiB))
        progress(100)
        return self._replicate_new(volume, update)

    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self._enter("create_cloned_volume", volume.id)
        with self.store.lock:
            blob = self._volume(source.id)
            if volume.size_gb * GiB < blob.size:
                raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its source")
            update = self._add_volume(volume, blob.copy(volume.size_gb * GiB))
        progress(100)
        return self._replicate_new(volume, update)

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        self._enter("revert_to_snapshot", volume.id)
        with self.store.lock:
            current = self._volume(volume.id)
            # Like the file driver: bytes of the snapshot, size never below the volume's.
            self.store.volumes[volume.id] = self._snapshot(snapshot.id).copy(current.size)

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        self._enter("create_export", volume.id)
        with self.store.lock:
            self._volume(volume.id)
            self.store.exports.setdefault(volume.id, [])
        return ModelUpdate()

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        self._enter("initialize_connection", volume.id)
        with self.store.lock:
            hosts = self.store.exports.get(volume.id)
            if hosts is None:
                raise DriverError(f"fake volume {volume.id} is not exported; create_export first")
            if connector.host not in hosts:
                hosts.append(connector.host)
        data: dict[str, Any] = {"volume_id": volume.id}
        return ConnectionInfo(driver_volume_type="fake", data=data)

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        self._enter("terminate_connection", volume.id)
        with self.store.lock:
            hosts = self.store.exports.get(volume.id)
            if hosts is None:
                return
            if connector is None:
                hosts.clear()
            elif connector.host in hosts:
                hosts.remove(connector.host)

    def remove_export(self, volume: VolumeRef) -> None:
        self._enter("remove_export", volume.id)
        with self.store.lock:
            self.store.exports.pop(volume.id, None)

    def export_exists(self, volume: VolumeRef) -> bool:
        self._enter("export_exists", volume.id)
        return volume.id in self.store.exports

    def list_storage(self) -> StorageListing:
        self._enter("list_storage")
        with self.store.lock:
            return StorageListing(volumes={ident: blob.size for ident, blob in self.store.volumes.items()},
                                  snapshots=frozenset(self.store.snapshots),
                                  exports=frozenset(self.store.exports))

    # -- replication ---------------------------------------------------------------------------
    # Asynchronous like a real replicator: copies reach the targets when `sync_replicas()` runs
    # (tests call it), plus one initial copy at creation.

    _targets: tuple[ReplicationDevice, ...] = ()

    def _replication_capabilities(self) -> dict[str, Any]:
        if not self._targets:
            return {"replication_enabled": False}
        # The lag summary every replicating driver reports: the oldest copy's age; the fake never
        # has bytes in flight (a cycle copies whole blobs at once).
        now = time.time()
        ages = [now - state.last_complete_at for states in self.replication_states().values()
                for state in states if state.last_complete_at is not None]
        return {"replication_enabled": True, "replication_type": "async",
                "replication_targets": [t.backend_id for t in self._targets],
                "replication_count": len(self._targets), "group_replication_enabled": True,
                "consistent_group_replication_enabled": True,
                "replication_lag_max_seconds": round(max(ages, default=0.0), 3), "replication_bytes_pending": 0}

    def _replicate_new(self, volume: VolumeRef, update: ModelUpdate) -> ModelUpdate:
        if not (volume.replicated and self._targets):
            return update
        with self.store.lock:
            self.store.replicated.add(volume.id)
            self._send(volume.id)
        return ModelUpdate(provider_location=update.provider_location, replication_status="enabled")

    def _sites(self) -> list[str]:
        """Where copies go: every target but the active one, and the primary while failed over."""
        sites = [t.backend_id for t in self._targets if t.backend_id != self.store.active]
        return sites + ([PRIMARY_BACKEND_ID] if self.store.active else [])

    def _send(self, volume_id: str) -> None:
        now = time.time()
        for site in self._sites():
            self.store.replicas.setdefault(site, {})[volume_id] = self.store.volumes[volume_id].copy()
            self.store.synced_at.setdefault(site, {})[volume_id] = now

    def sync_replicas(self) -> None:
        """Test hook: one replication cycle, every replicated volume to every other site."""
        with self.store.lock:
            for volume_id in list(self.store.replicated):
                if volume_id in self.store.volumes:
                    self._send(volume_id)

    def set_active_backend(self, backend_id: str | None) -> None:
        self.store.active = backend_id or None

    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        return self._targets

    def _switch(self, volumes: Sequence[VolumeRef], target: str | None) -> tuple[VolumeFailover, ...]:
        site = target or PRIMARY_BACKEND_ID
        lost = self.store.active_site_lost
        now = time.time()
        results = []
        for volume in volumes:
            current = self.store.volumes.get(volume.id)
            if current is not None and not lost:  # final sync: nothing written is lost
                self.store.replicas.setdefault(site, {})[volume.id] = current.copy()
                self.store.synced_at.setdefault(site, {})[volume.id] = now
            replica = self.store.replicas.get(site, {}).get(volume.id)
            if replica is None:
                results.append(VolumeFailover(volume.id, ok=False, error=f"no copy of the volume on {site}"))
                continue
            age = now - self.store.synced_at[site][volume.id]
            if current is not None:  # the site we leave keeps what it had, to sync back later
                self.store.replicas.setdefault(self.store.active or PRIMARY_BACKEND_ID, {})[volume.id] = current
                self.store.synced_at.setdefault(self.store.active or PRIMARY_BACKEND_ID, {})[volume.id] = now
            self.store.volumes[volume.id] = replica.copy()
            self.store.replicated.add(volume.id)
            results.append(VolumeFailover(volume.id, ok=True, data_age_seconds=0.0 if not lost else age,
                                          update=ModelUpdate(replication_driver_data=f"site:{site}")))
        return tuple(results)

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        self._enter("failover_host", secondary_id)
        with self.store.lock:
            target = resolve_failover_target(self._targets, self.store.active, secondary_id)
            results = self._switch(volumes, target)
            self.store.active = target
            self.store.active_site_lost = False
        progress(100)
        return FailoverResult(active_backend_id=target, volumes=results)

    def freeze_backend(self) -> None:
        self._enter("freeze_backend")

    def thaw_backend(self) -> None:
        self._enter("thaw_backend")

    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        with self.store.lock:
            return {volume_id: tuple(
                ReplicaState(site, self.store.synced_at.get(site, {}).get(volume_id), 0)
                for site in self._sites()) for volume_id in self.store.replicated}

    def enable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        self._enter("enable_group_replication", group_id)
        with self.store.lock:
            for volume in volumes:
                self.store.replicated.add(volume.id)
                self._send(volume.id)
        return tuple(ModelUpdate(replication_status="enabled") for _ in volumes)

    def disable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        self._enter("disable_group_replication", group_id)
        with self.store.lock:
            for volume in volumes:
                self.store.replicated.discard(volume.id)
        return tuple(ModelUpdate(replication_status="disabled") for _ in volumes)

    def failover_group(self, group_id: str, volumes: Sequence[VolumeRef],
                       secondary_id: str | None) -> FailoverResult:
        self._enter("failover_group", group_id)
        with self.store.lock:
            ids = [t.backend_id for t in self._targets]
            if secondary_id == PRIMARY_BACKEND_ID:
                target = None
            elif secondary_id is None:
                target = ids[0] if ids else None
            elif secondary_id in ids:
                target = secondary_id
            else:
                raise InvalidReplicationTarget(f"{secondary_id!r} is not a replication target ({ids})")
            return FailoverResult(active_backend_id=target, volumes=self._switch(volumes, target))
