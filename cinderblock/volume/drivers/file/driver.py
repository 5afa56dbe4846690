"""FileDriver: volumes as sparse raw files in pool directories, exported by a target helper.

The driver owns its collaborators and delegates to them; each is built here with what it needs:
- `storage` (storage.py): the volume and snapshot files, reflink or sparse copies;
- `target` (volume/targets): the export named by `target_helper` (local paths, tgt iSCSI);
- `barrier` and `group_snapshots` (consistency.py): writes held while a group's members are cloned;
- `replicator` (replication.py, cycle.py): copies of replicated volumes on every `replication_device`
  (`backend_id:<id>, path:<dir>`), kept in a registry (registry.py) under state_path;
- `failover` (failover.py): which site (sites.py) serves the backend, or a group's volumes.
Every path is resolved on the site serving the volume (the backend's active site, or the volume's own
after a group failover), where pool P lives in `<target path>/<P>`.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from oslo_config import cfg

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    BackendStats,
    ConnectionInfo,
    Connector,
    DriverOptions,
    FailoverResult,
    GroupSnapshotResult,
    ModelUpdate,
    ProgressCallback,
    ReplicaState,
    ReplicationDevice,
    SnapshotRef,
    StorageListing,
    SupportsConsistentGroupSnapshot,
    SupportsGroupReplication,
    SupportsReplication,
    VolumeDriver,
    VolumeRef,
    no_progress,
    replication_devices,
)
from cinderblock.volume.drivers.file.capabilities import parse_extra_capabilities
from cinderblock.volume.drivers.file.consistency import GroupSnapshots, WriteBarrier
from cinderblock.volume.drivers.file.cycle import Sender
from cinderblock.volume.drivers.file.failover import Failover
from cinderblock.volume.drivers.file.registry import DEFAULT_INTERVAL, CopyStates, Registry
from cinderblock.volume.drivers.file.replication import Replicator
from cinderblock.volume.drivers.file.sites import SiteLayout, parse_pools
from cinderblock.volume.drivers.file.storage import (
    TMP_PREFIX,
    VolumeStorage,
    os_errors,
    probe_reflink,
)
from cinderblock.volume.drivers.ratio import ratio_setting
from cinderblock.volume.targets.base import Target, UnavailableTarget, make_target

LOG = logging.getLogger(__name__)

# Re-exported: tests and tools name them from here.
__all__ = ["TMP_PREFIX", "FileDriver", "file_opts"]

file_opts = (
    cfg.ListOpt(
        "file_pool_paths",
        default=["volumes"],
        help="Directories holding volume files, one pool each. Entry: 'path' or 'name:path'. "
        "Relative paths are under state_path; the pool name defaults to the directory's basename.",
    ),
    cfg.StrOpt(
        "extra_capabilities",
        default="",
        help="Capabilities every pool of this backend reports besides its own, for volume types to match: "
        "'key:value,key2:value2' or a JSON object (Cinder's form). Values true/false and numbers are typed.",
    ),
)


class FileDriver(VolumeDriver, SupportsConsistentGroupSnapshot, SupportsReplication, SupportsGroupReplication):
    VERSION = "1.0.0"
    OPTIONS = file_opts

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        super().__init__(backend_name, options, state_path)
        self.layout = SiteLayout(parse_pools(options.get("file_pool_paths") or ["volumes"], state_path))
        self._target_error: DriverError | None = None
        try:
            target = make_target(str(options.get("target_helper") or "local"), options)
        except DriverError as exc:  # reported by do_setup/check_for_setup_error
            self._target_error = exc
            target = UnavailableTarget(options, exc)
        self._target = target
        self._extra_raw = str(options.get("extra_capabilities") or "")
        registry = Registry(Path(state_path) / "file-replication" / f"{backend_name}.json", self.layout)
        self.storage = VolumeStorage(self.layout, registry.volume_site)
        self.barrier = WriteBarrier(target)
        self.group_snapshots = GroupSnapshots(self.storage, self.barrier)
        states = CopyStates()
        self._sender = Sender(self.layout, registry, states, self.barrier)
        self.replicator = Replicator(backend_name, self.layout, registry, states, self._sender,
                                     int(options.get("replication_interval") or DEFAULT_INTERVAL))
        self.failover = Failover(backend_name, self.layout, registry, states, self.replicator, target)

    @property
    def target(self) -> Target:
        if self._target_error is not None:
            raise self._target_error
        return self._target

    # -- setup and stats -----------------------------------------------------------------------

    def do_setup(self) -> None:
        self.target  # noqa: B018 -- raises for an unknown target_helper
        parse_extra_capabilities(self._extra_raw)  # a typo stops this backend, not the service
        self.layout.configure(replication_devices(self.options))
        self.storage.prepare()
        self.replicator.start(probe_reflink)

    def check_for_setup_error(self) -> None:
        self.storage.check()
        ratio_setting(self.options.get("max_over_subscription_ratio"))
        self.target.check_for_setup_error()

    def stop(self) -> None:
        """Stop the replication threads (the service stops)."""
        self.replicator.stop()

    def get_stats(self) -> BackendStats:
        setting = ratio_setting(self.options.get("max_over_subscription_ratio"))
        pools = self.storage.pool_stats(int(self.options.get("reserved_percentage") or 0), setting)
        return BackendStats(
            volume_backend_name=str(self.options.get("volume_backend_name") or self.backend_name),
            vendor_name="cinderblock",
            driver_version=self.VERSION,
            storage_protocol=self.target.protocol,
            pools=tuple(pools),
            capabilities={"multiattach": False, "QoS_support": False,
                          **self.replicator.capabilities(),
                          **parse_extra_capabilities(self._extra_raw)},  # the admin's keys win
        )

    # -- volumes and snapshots -----------------------------------------------------------------

    def volume_path(self, volume: VolumeRef) -> Path:
        return self.storage.volume_path(volume)

    def snapshot_path(self, snapshot: SnapshotRef) -> Path:
        return self.storage.snapshot_path(snapshot)

    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        path = self.storage.create_volume(volume)
        return self.replicator.replicate_new(volume, ModelUpdate(provider_location=str(path)))

    def delete_volume(self, volume: VolumeRef) -> None:
        self.target.remove_export(volume.id)
        path = self.storage.delete_volume(volume)
        with os_errors(f"deleting {path}"):
            self.replicator.forget(volume.id, volume.pool)  # its copies on every replication site
        LOG.info("deleted %s", path)

    def volume_exists(self, volume: VolumeRef) -> bool:
        return self.storage.volume_path(volume).is_file()

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        path = self.storage.extend_volume(volume, new_size_gb)
        self.target.refresh_export(volume.id, str(path))  # tgtd caches the old size

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        return ModelUpdate(provider_location=str(self.storage.create_snapshot(snapshot, progress)))

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        self.storage.delete_snapshot(snapshot)

    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        path = self.storage.create_from_snapshot(volume, snapshot, progress)
        return self.replicator.replicate_new(volume, ModelUpdate(provider_location=str(path)))

    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        path = self.storage.clone_volume(volume, source, progress)
        return self.replicator.replicate_new(volume, ModelUpdate(provider_location=str(path)))

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        path = self.storage.revert_to_snapshot(volume, snapshot)
        self.target.refresh_export(volume.id, str(path))  # tgtd still holds the old inode

    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        return self.group_snapshots.create(snapshots, progress)

    # -- exports -------------------------------------------------------------------------------

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        path = self.storage.existing_volume(volume)
        auth = self.target.ensure_export(volume.id, str(path), volume.size_gb, volume.provider_auth)
        return ModelUpdate(provider_auth=auth)

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        path = self.storage.existing_volume(volume)
        return self.target.initialize_connection(volume.id, str(path), volume.provider_auth, connector)

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        # Exports are per volume with an ACL of ALL (like Cinder's tgt): nothing per connector.
        return None

    def remove_export(self, volume: VolumeRef) -> None:
        self.target.remove_export(volume.id)

    def export_exists(self, volume: VolumeRef) -> bool:
        return self.target.export_exists(volume.id)

    def list_storage(self) -> StorageListing:
        volumes, snapshots = self.storage.list_files()
        volumes.update(self.replicator.served_elsewhere())  # group members failed over on their own
        return StorageListing(volumes=volumes, snapshots=frozenset(snapshots), exports=self.target.list_exports())

    # -- replication ---------------------------------------------------------------------------

    def set_active_backend(self, backend_id: str | None) -> None:
        self.layout.active = None if backend_id in (None, "", PRIMARY_BACKEND_ID) else backend_id

    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        return self.layout.devices

    def replication_capabilities(self) -> dict[str, Any]:
        return self.replicator.capabilities()

    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        return self.replicator.replica_states()

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        return self.failover.failover_host(volumes, secondary_id, progress)

    def freeze_backend(self) -> None:
        self.failover.freeze_backend()

    def thaw_backend(self) -> None:
        self.failover.thaw_backend()

    def enable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        return self.replicator.enable_group_replication(group_id, volumes)

    def disable_group_replication(self, group_id: str, volumes: Sequence[VolumeRef]) -> tuple[ModelUpdate, ...]:
        return self.replicator.disable_group_replication(group_id, volumes)

    def failover_group(self, group_id: str, volumes: Sequence[VolumeRef],
                       secondary_id: str | None) -> FailoverResult:
        return self.failover.failover_group(group_id, volumes, secondary_id)

    # -- test and benchmark hooks --------------------------------------------------------------

    def replicate_now(self, volume_ids: Sequence[str] | None = None) -> dict[str, dict[str, int]]:
        """One synchronous cycle of every unit (or those holding volume_ids); bytes sent per volume per site."""
        return self.replicator.replicate_now(volume_ids)

    def inject_fault(self, after_chunks: int, crash: bool = False, times: int = 1) -> None:
        self._sender.inject_fault(after_chunks, crash, times)

    @property
    def bytes_sent_total(self) -> int:
        return self._sender.bytes_sent_total

    @property
    def last_cycle(self) -> dict[str, float]:
        return self._sender.last_cycle
