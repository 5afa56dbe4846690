"""RBDDriver: volumes are RBD images `volume-<id>` in `rbd_pool`, snapshots RBD snapshots of them.

The driver owns its collaborators and delegates to them; each is built here with what it needs and
works (and is tested) alone:

    Sites           the clusters: primary, replication targets, which serves now; one client each
    Images          opening images of the active cluster's pool; the snapshot and clone-chain rules
    VolumeStorage   volumes, snapshots, clones (volumes.py)
    GroupSnapshots  the consistency barrier: RBD group snapshots (groups.py)
    Replicator      rbd-mirror mirroring per image, lag (replicator.py)
    Failover        demote/promote to a target (failover.py); Failback, back to the primary (failback.py)
    PoolCapacity    pool stats (capacity.py)
    RbdExport       connection info; there is no export (export.py)

What crosses collaborators goes through the driver: the replicator says how a new image must be
laid out (ImageLayout) and mirrors it once storage made it.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cinderblock.volume.driver import (
    BackendStats,
    ConnectionInfo,
    Connector,
    DriverOptions,
    FailoverResult,
    GroupSnapshotResult,
    ModelUpdate,
    PoolStats,
    ProgressCallback,
    ReplicaState,
    ReplicationDevice,
    SnapshotRef,
    StorageListing,
    SupportsConsistentGroupSnapshot,
    SupportsReplication,
    VolumeDriver,
    VolumeRef,
    no_progress,
    replication_devices,
    resolve_failover_target,
)
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.capacity import PoolCapacity
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.connection import ClusterConfig
from cinderblock.volume.drivers.rbd.export import RbdExport
from cinderblock.volume.drivers.rbd.failback import Failback
from cinderblock.volume.drivers.rbd.failover import Failover, FailoverSettings
from cinderblock.volume.drivers.rbd.groups import GroupSnapshots
from cinderblock.volume.drivers.rbd.images import Images
from cinderblock.volume.drivers.rbd.options import rbd_opts
from cinderblock.volume.drivers.rbd.replicator import ReplicationSettings, Replicator
from cinderblock.volume.drivers.rbd.sites import Sites
from cinderblock.volume.drivers.rbd.volumes import StorageSettings, VolumeStorage

LOG = logging.getLogger(__name__)

MiB = 1024**2

__all__ = ["RBDDriver", "rbd_opts"]


class RBDDriver(VolumeDriver, SupportsReplication, SupportsConsistentGroupSnapshot):
    VERSION = "1.0.0"
    OPTIONS = rbd_opts

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        super().__init__(backend_name, options, state_path)
        pool = str(options.get("rbd_pool") or "rbd")
        self.sites = Sites(ClusterConfig(
            backend_id="default",
            cluster_name=str(options.get("rbd_cluster_name") or "ceph"),
            conf=str(options.get("rbd_ceph_conf") or ""),
            user=options.get("rbd_user") or None,
            secret_uuid=options.get("rbd_secret_uuid") or None,
            pool=pool,
        ))
        self.images = Images(self.sites)
        self.groups = GroupSnapshots(self.images)
        self.storage = VolumeStorage(self.images, self.groups, _storage_settings(options))
        timeout = int(options.get("replication_connect_timeout", 5))
        connect_timeout = float(timeout) if timeout >= 0 else None
        self.replicator = Replicator(self.sites, self.images, ReplicationSettings(
            mode=str(options.get("rbd_replication_mode") or "journal"),
            interval=int(options.get("replication_interval") or 60),
            status_timeout=connect_timeout,
        ))
        failover = FailoverSettings(
            workers=int(options.get("rbd_failover_workers") or 32),
            promote_timeout=float(options.get("rbd_failover_promote_timeout") or 60),
            connect_timeout=connect_timeout,
        )
        self.failover = Failover(self.sites, failover, on_active=self.replicator.ensure_schedule)
        self.failback = Failback(self.sites, failover)
        self.capacity = PoolCapacity(self.sites, self.images, options.get("max_over_subscription_ratio"))
        self.export = RbdExport(self.sites, self.images)

    # -- life cycle -------------------------------------------------------------------------------

    def do_setup(self) -> None:
        ceph.rados()
        ceph.rbd()
        self.sites.configure(replication_devices(self.options))
        self.replicator.setup()
        with ceph_errors(f"connecting to cluster {self.sites.active_config.cluster_name}"):
            self.sites.ioctx()

    def check_for_setup_error(self) -> None:
        self.capacity.check()
        with ceph_errors("checking the pool"):
            self.sites.ioctx()

    def stop(self) -> None:
        """Close the RADOS connections (the service calls it on shutdown)."""
        self.replicator.close()
        self.sites.close()

    def get_stats(self) -> BackendStats:
        with ceph_errors("reading pool usage"):
            usage = self.capacity.usage()
        pool = PoolStats(
            name=self.sites.pool_name,
            total_capacity_gb=usage.total_gb,
            free_capacity_gb=usage.free_gb,
            provisioned_capacity_gb=usage.provisioned_gb,
            allocated_capacity_gb=usage.provisioned_gb,
            reserved_percentage=int(self.options.get("reserved_percentage") or 0),
            max_over_subscription_ratio=usage.ratio,
            thin_provisioning_support=True,
            thick_provisioning_support=False,
            capabilities={"total_volumes": usage.volumes, **self.groups.capabilities()},
        )
        return BackendStats(
            volume_backend_name=str(self.options.get("volume_backend_name") or self.backend_name),
            vendor_name="Open Source",
            driver_version=self.VERSION,
            storage_protocol="ceph",
            pools=(pool,),
            capabilities={"multiattach": False, "QoS_support": False, **self.replicator.capabilities()},
        )

    def list_storage(self) -> StorageListing:
        return self.storage.listing()

    # -- volumes and snapshots ------------------------------------------------------------------

    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        self.storage.check_pool(volume)
        self.storage.create(volume, self.replicator.layout(volume))
        return self._replicate_new(volume)

    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self.storage.check_pool(volume)
        self.storage.create_from_snapshot(volume, snapshot, self.replicator.layout(volume))
        progress(100)
        return self._replicate_new(volume)

    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self.storage.check_pool(volume)
        self.storage.create_clone(volume, source, self.replicator.layout(volume))
        progress(100)
        return self._replicate_new(volume)

    def _replicate_new(self, volume: VolumeRef) -> ModelUpdate:
        """Mirroring for a new image of a replicated type; the image goes when that fails."""
        try:
            status, data = self.replicator.setup_new_image(volume)
        except BaseException:
            self.storage.remove_quietly(volume.name)
            raise
        return ModelUpdate(provider_location=self.storage.location(volume), replication_status=status,
                           replication_driver_data=data)

    def delete_volume(self, volume: VolumeRef) -> None:
        self.storage.delete(volume)

    def volume_exists(self, volume: VolumeRef) -> bool:
        return self.storage.exists(volume)

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        self.storage.extend(volume, new_size_gb)

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        location = self.storage.create_snapshot(snapshot)
        progress(100)
        return ModelUpdate(provider_location=location)

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        self.storage.delete_snapshot(snapshot)

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        self.storage.revert(volume, snapshot)

    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        return self.groups.create(snapshots, progress)

    # -- exports and connections ----------------------------------------------------------------

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        return self.export.create_export(volume, connector)

    def remove_export(self, volume: VolumeRef) -> None:
        self.export.remove_export(volume)

    def export_exists(self, volume: VolumeRef) -> bool:
        return self.export.export_exists(volume)

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        return self.export.initialize_connection(volume, connector)

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        self.export.terminate_connection(volume, connector)

    # -- replication ----------------------------------------------------------------------------

    @property
    def active_backend_id(self) -> str | None:
        return self.sites.active_backend_id

    def set_active_backend(self, backend_id: str | None) -> None:
        self.sites.set_active(backend_id)

    def replication_targets(self) -> tuple[ReplicationDevice, ...]:
        return self.sites.targets

    def failover_host(self, volumes: Sequence[VolumeRef], secondary_id: str | None,
                      progress: ProgressCallback = no_progress) -> FailoverResult:
        target_id = resolve_failover_target(self.sites.targets, self.sites.active_backend_id, secondary_id)
        if target_id is None:
            return self.failback.run(volumes, progress)
        return self.failover.run(volumes, target_id, progress)

    def freeze_backend(self) -> None:
        return None

    def thaw_backend(self) -> None:
        return None

    def replication_states(self) -> Mapping[str, tuple[ReplicaState, ...]]:
        return self.replicator.states()

    def enable_replication(self, volume: VolumeRef) -> tuple[str, str]:
        return self.replicator.enable(volume)

    def disable_replication(self, volume: VolumeRef) -> tuple[str, None]:
        return self.replicator.disable(volume)

    def replication_update(self, volume: VolumeRef) -> ModelUpdate:
        return self.replicator.update(volume)

    def sync_now(self, volume: VolumeRef) -> None:
        self.replicator.sync_now(volume)


def _storage_settings(options: Mapping[str, Any]) -> StorageSettings:
    chunk_mib = int(options.get("rbd_store_chunk_size") or 4)
    return StorageSettings(
        order=max(12, (chunk_mib * MiB).bit_length() - 1),
        max_clone_depth=int(options.get("rbd_max_clone_depth", 5) or 0),
        flatten_from_snapshot=bool(options.get("rbd_flatten_volume_from_snapshot")),
    )

