"""RBDDriver: volumes are RBD images `volume-<id>` in `rbd_pool`; snapshots are RBD snapshots
`snapshot-<id>` of the volume's image.

Clones are copy-on-write children of a (protected) snapshot and are flattened once the chain gets
deeper than `rbd_max_clone_depth`. Deleting an image that still has clones flattens those clones
first, so a delete never fails for that reason and never leaves a hidden image behind. There is no
export: hosts reach the images over librbd with the `rbd` connection info of the cluster active now.

Replication (rbd-mirror, mirroring.py) and consistent group snapshots (RBD groups, groups.py) are
mixed in. All librbd calls run on the caller's thread over one shared RADOS connection per cluster.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from oslo_config import cfg

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    BackendStats,
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
from cinderblock.volume.drivers.rbd.connection import (
    ClientPool,
    ClusterClient,
    ClusterConfig,
    bindings,
    ceph_errors,
)
from cinderblock.volume.drivers.rbd.groups import (
    META_PREFIX,
    RBDGroupSnapshots,
    member_ref,
    member_snap,
    member_snapshot_ids,
)
from cinderblock.volume.drivers.rbd.mirroring import RBDReplication

LOG = logging.getLogger(__name__)

GiB = 1024**3
MiB = 1024**2
VOLUME_PREFIX = "volume-"
SNAPSHOT_PREFIX = "snapshot-"
CLONE_SNAP_SUFFIX = ".clone_snap"
AUTO_RATIO_DEFAULT = 20.0

rbd_opts = (
    cfg.StrOpt("rbd_pool", default="rbd", help="The RADOS pool holding the volumes (same name on every cluster)."),
    cfg.StrOpt("rbd_user", default=None, help="The RADOS client id (without 'client.'); unset: librados' default."),
    cfg.StrOpt("rbd_ceph_conf", default="", help="Path to the cluster's ceph.conf; empty: librados' search path."),
    cfg.StrOpt("rbd_cluster_name", default="ceph", help="The cluster name (selects /etc/ceph/<name>.conf)."),
    cfg.StrOpt("rbd_secret_uuid", default=None,
               help="The libvirt secret holding rbd_user's key; unset: the cluster's fsid."),
    cfg.IntOpt("rbd_max_clone_depth", default=5, min=0,
               help="Clones deeper than this are flattened; 0: clones are always full copies."),
    cfg.BoolOpt("rbd_flatten_volume_from_snapshot", default=False,
                help="Flatten volumes created from snapshots (no dependency on the snapshot)."),
    cfg.IntOpt("rbd_store_chunk_size", default=4, min=1, help="Object size of new images, in MiB (power of two)."),
    cfg.IntOpt("replication_connect_timeout", default=5,
               help="Seconds to wait for a cluster during failover demotions/promotions; <0: librados' default."),
    cfg.StrOpt("rbd_replication_mode", default="journal", choices=("journal", "snapshot"),
               help="Mirroring mode of replicated volumes; a type overrides it with replication:mode."),
    cfg.IntOpt("rbd_failover_workers", default=32, min=1,
               help="Volumes demoted/promoted at once during failover and failback."),
    cfg.IntOpt("rbd_failover_promote_timeout", default=60, min=1,
               help="Seconds a clean promotion waits for the target to replay the demotion before it is forced."),
)


class RBDDriver(RBDReplication, RBDGroupSnapshots, VolumeDriver):
    VERSION = "1.0.0"
    OPTIONS = rbd_opts

    def __init__(self, backend_name: str, options: DriverOptions, state_path: str) -> None:
        super().__init__(backend_name, options, state_path)
        self.pool_name = str(options.get("rbd_pool") or "rbd")
        self.primary = ClusterConfig(
            backend_id="default",
            cluster_name=str(options.get("rbd_cluster_name") or "ceph"),
            conf=str(options.get("rbd_ceph_conf") or ""),
            user=options.get("rbd_user") or None,
            secret_uuid=options.get("rbd_secret_uuid") or None,
            pool=self.pool_name,
        )
        self.max_clone_depth = int(options.get("rbd_max_clone_depth", 5) or 0)
        chunk_mib = int(options.get("rbd_store_chunk_size") or 4)
        self.order = max(12, (chunk_mib * MiB).bit_length() - 1)
        self.clients = ClientPool()
        self._init_replication()

    # -- clusters ------------------------------------------------------------------------------

    @property
    def active_config(self) -> ClusterConfig:
        """The cluster serving the volumes now (the primary unless failed over)."""
        return self._config_for(self.active_backend_id)

    def client(self, config: ClusterConfig | None = None) -> ClusterClient:
        return self.clients.get(config or self.active_config)

    def ioctx(self, config: ClusterConfig | None = None) -> Any:
        return self.client(config).ioctx()

    def stop(self) -> None:
        """Close the RADOS connections (the service calls it on shutdown)."""
        self._stop_replication()
        self.clients.close()

    @contextmanager
    def image(self, name: str, read_only: bool = False, config: ClusterConfig | None = None) -> Iterator[Any]:
        _, rbd = bindings()
        with ceph_errors(f"opening image {self.pool_name}/{name}"):
            try:
                handle = rbd.Image(self.ioctx(config), name, read_only=read_only)
            except rbd.ImageNotFound:
                raise DriverError(f"RBD image {self.pool_name}/{name} does not exist") from None
        try:
            with ceph_errors(f"on image {self.pool_name}/{name}"):
                yield handle
        finally:
            handle.close()

    def image_exists(self, name: str, config: ClusterConfig | None = None) -> bool:
        _, rbd = bindings()
        with ceph_errors(f"checking image {name}"):
            try:
                rbd.Image(self.ioctx(config), name, read_only=True).close()
                return True
            except rbd.ImageNotFound:
                return False

    def _check_pool(self, volume: VolumeRef) -> None:
        if volume.pool and volume.pool.rsplit("#", 1)[-1] != self.pool_name:
            raise DriverError(f"unknown pool {volume.pool!r} (this backend has only {self.pool_name!r})")

    # -- setup and stats -----------------------------------------------------------------------

    def do_setup(self) -> None:
        bindings()
        self._setup_replication()
        with ceph_errors(f"connecting to cluster {self.active_config.cluster_name}"):
            self.ioctx()

    def check_for_setup_error(self) -> None:
        self._ratio_setting()
        with ceph_errors("checking the pool"):
            self.ioctx()

    def _ratio_setting(self) -> str | float:
        raw = str(self.options.get("max_over_subscription_ratio") or AUTO_RATIO_DEFAULT).strip()
        if raw.lower() == "auto":
            return "auto"
        try:
            ratio = float(raw)
        except ValueError:
            raise DriverError(f"max_over_subscription_ratio must be a number or 'auto', not {raw!r}") from None
        if ratio < 1.0:
            raise DriverError(f"max_over_subscription_ratio must be >= 1.0, not {ratio}")
        return ratio

    def _pool_usage(self) -> tuple[float, float]:
        """(total, free) bytes of the pool: its quota if it has one, else used + what Ceph can still store."""
        client = self.client()
        df = client.mon_command({"prefix": "df", "detail": "detail"})
        stats = next((p["stats"] for p in df.get("pools", []) if p.get("name") == self.pool_name), None)
        if stats is None:
            raise DriverError(f"pool {self.pool_name!r} is not in 'ceph df'")
        used = float(stats.get("stored", stats.get("bytes_used", 0)))
        free = float(stats.get("max_avail", 0))
        quota = client.mon_command({"prefix": "osd pool get-quota", "pool": self.pool_name})
        quota_bytes = float((quota or {}).get("quota_max_bytes") or 0)
        if quota_bytes:
            return quota_bytes, max(0.0, min(free, quota_bytes - used))
        return used + free, free

    def _provisioned(self) -> tuple[int, int]:
        """(sum of volume image sizes, number of volume images)."""
        total = count = 0
        for name, size in self._volume_images().items():
            total += size
            count += 1
            del name
        return total, count

    def get_stats(self) -> BackendStats:
        setting = self._ratio_setting()
        with ceph_errors("reading pool usage"):
            total, free = self._pool_usage()
            provisioned, count = self._provisioned()
        used = max(total - free, 0.0)
        if isinstance(setting, float):
            ratio = setting
        else:
            ratio = AUTO_RATIO_DEFAULT if provisioned <= 0 or used <= 0 else round(1 + provisioned / used, 2)
        capabilities: dict[str, Any] = {"total_volumes": count, **self._group_capabilities()}
        pool = PoolStats(
            name=self.pool_name,
            total_capacity_gb=round(total / GiB, 2),
            free_capacity_gb=round(free / GiB, 2),
            provisioned_capacity_gb=round(provisioned / GiB, 2),
            allocated_capacity_gb=round(provisioned / GiB, 2),
            reserved_percentage=int(self.options.get("reserved_percentage") or 0),
            max_over_subscription_ratio=ratio,
            thin_provisioning_support=True,
            thick_provisioning_support=False,
            capabilities=capabilities,
        )
        return BackendStats(
            volume_backend_name=str(self.options.get("volume_backend_name") or self.backend_name),
            vendor_name="Open Source",
            driver_version=self.VERSION,
            storage_protocol="ceph",
            pools=(pool,),
            capabilities={"multiattach": False, "QoS_support": False, **self._replication_capabilities()},
        )

    # -- listing -------------------------------------------------------------------------------

    def _volume_images(self, config: ClusterConfig | None = None) -> dict[str, int]:
        """volume image name → size, for every complete volume image of the pool."""
        _, rbd = bindings()
        ioctx = self.ioctx(config)
        sizes: dict[str, int] = {}
        for name in rbd.RBD().list(ioctx):
            if not name.startswith(VOLUME_PREFIX) or "." in name:
                continue
            try:
                with rbd.Image(ioctx, name, read_only=True) as handle:
                    sizes[name] = handle.size()
            except rbd.ImageNotFound:  # deleted while we scan
                continue
        return sizes

    def list_storage(self) -> StorageListing:
        _, rbd = bindings()
        volumes: dict[str, int] = {}
        snapshots: set[str] = set()
        with ceph_errors("listing the pool"):
            ioctx = self.ioctx()
            for name in rbd.RBD().list(ioctx):
                if not name.startswith(VOLUME_PREFIX) or "." in name:
                    continue
                try:
                    with rbd.Image(ioctx, name, read_only=True) as handle:
                        volumes[name[len(VOLUME_PREFIX):]] = handle.size()
                        snapshots.update(s["name"][len(SNAPSHOT_PREFIX):] for s in _user_snaps(handle)
                                         if s["name"].startswith(SNAPSHOT_PREFIX))
                        snapshots.update(member_snapshot_ids(handle))
                except rbd.ImageNotFound:
                    continue
        return StorageListing(volumes=volumes, snapshots=frozenset(snapshots), exports=frozenset())

    # -- volumes -------------------------------------------------------------------------------

    def _features(self, replicated_journal: bool) -> int | None:
        _, rbd = bindings()
        features = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK | rbd.RBD_FEATURE_OBJECT_MAP
                    | rbd.RBD_FEATURE_FAST_DIFF | rbd.RBD_FEATURE_DEEP_FLATTEN)
        if replicated_journal:
            features |= rbd.RBD_FEATURE_JOURNALING
        return features

    def create_volume(self, volume: VolumeRef) -> ModelUpdate:
        self._check_pool(volume)
        _, rbd = bindings()
        with ceph_errors(f"creating {volume.name}"):
            try:
                rbd.RBD().create(self.ioctx(), volume.name, volume.size_gb * GiB, order=self.order,
                                 old_format=False, features=self._features(self._wants_journal(volume)))
            except rbd.ImageExists:
                raise DriverError(f"RBD image {self.pool_name}/{volume.name} already exists") from None
        LOG.info("created %s/%s (%d GiB)", self.pool_name, volume.name, volume.size_gb)
        return self._finish_new(volume)

    def _location(self, volume: VolumeRef) -> str:
        return f"rbd://{self.pool_name}/{volume.name}"

    def _finish_new(self, volume: VolumeRef) -> ModelUpdate:
        """Mirroring for a new image of a replicated type; remove the image when that fails."""
        try:
            with self.image(volume.name) as handle:  # clone/copy carry the source's metadata: not its keys
                for key in member_snapshot_ids(handle):
                    handle.metadata_remove(META_PREFIX + key)
            status, data = self._setup_new_image(volume)
        except BaseException:
            self._remove_image_quietly(volume.name)
            raise
        return ModelUpdate(provider_location=self._location(volume), replication_status=status,
                           replication_driver_data=data)

    def _remove_image_quietly(self, name: str) -> None:
        try:
            self._delete_image(name)
        except Exception:  # noqa: BLE001 -- best effort cleanup, the original error matters
            LOG.exception("could not remove %s after a failed create", name)

    def delete_volume(self, volume: VolumeRef) -> None:
        self._delete_image(volume.name)
        LOG.info("deleted %s/%s", self.pool_name, volume.name)

    def _delete_image(self, name: str) -> None:
        _, rbd = bindings()
        ioctx = self.ioctx()
        parent: tuple[str, str] | None = None
        with ceph_errors(f"deleting {name}"):
            try:
                handle = rbd.Image(ioctx, name)
            except rbd.ImageNotFound:
                return
            try:
                parent = _parent(handle)
                self._leave_group(handle, name)
                for snap in _user_snaps(handle):
                    self._drop_snapshot(handle, snap["name"])
            finally:
                handle.close()
            for attempt in range(50):
                try:
                    rbd.RBD().remove(ioctx, name)
                    break
                except rbd.ImageNotFound:
                    break
                except rbd.ImageBusy:  # a watcher still closing (e.g. mirror daemon); it goes away
                    if attempt == 49:
                        raise
                    time.sleep(0.1)
        if parent and parent[1].endswith(CLONE_SNAP_SUFFIX):
            self._drop_clone_snap(*parent)

    def _drop_snapshot(self, handle: Any, snap_name: str) -> None:
        """Remove one snapshot of an open image; its clones are flattened first (they keep their data)."""
        _, rbd = bindings()
        handle.set_snap(snap_name)
        try:
            for child in handle.list_children2():
                if child.get("trash"):
                    continue
                child_ioctx = self.client().ioctx(child["pool"])
                with rbd.Image(child_ioctx, child["image"]) as child_image:
                    LOG.info("flattening %s before removing its parent snapshot %s", child["image"], snap_name)
                    child_image.flatten()
        finally:
            handle.set_snap(None)
        if handle.is_protected_snap(snap_name):
            handle.unprotect_snap(snap_name)
        handle.remove_snap(snap_name)

    def _drop_clone_snap(self, image_name: str, snap_name: str) -> None:
        """Remove the hidden snapshot a clone-from-volume made, once no clone uses it."""
        _, rbd = bindings()
        try:
            with rbd.Image(self.ioctx(), image_name) as parent:
                parent.set_snap(snap_name)
                children = [c for c in parent.list_children2() if not c.get("trash")]
                parent.set_snap(None)
                if not children:
                    if parent.is_protected_snap(snap_name):
                        parent.unprotect_snap(snap_name)
                    parent.remove_snap(snap_name)
        except (rbd.ImageNotFound, rbd.ImageBusy) as exc:
            LOG.info("leaving %s@%s: %s", image_name, snap_name, exc)
        except rbd.Error as exc:
            LOG.warning("could not remove %s@%s: %s", image_name, snap_name, exc)

    def volume_exists(self, volume: VolumeRef) -> bool:
        return self.image_exists(volume.name)

    def extend_volume(self, volume: VolumeRef, new_size_gb: int) -> None:
        with self.image(volume.name) as handle:
            if handle.size() > new_size_gb * GiB:
                raise DriverError(f"cannot shrink {volume.name} to {new_size_gb} GiB")
            handle.resize(new_size_gb * GiB)
        LOG.info("extended %s to %d GiB", volume.name, new_size_gb)

    # -- snapshots -----------------------------------------------------------------------------

    def create_snapshot(self, snapshot: SnapshotRef, progress: ProgressCallback = no_progress) -> ModelUpdate:
        _, rbd = bindings()
        with self.image(snapshot.volume.name) as handle:
            try:
                handle.create_snap(snapshot.name)
            except rbd.ImageExists:
                raise DriverError(f"snapshot {snapshot.name} of {snapshot.volume.name} already exists") from None
        progress(100)
        return ModelUpdate(provider_location=f"rbd://{self.pool_name}/{snapshot.volume.name}@{snapshot.name}")

    def _snapshot_image(self, snapshot: SnapshotRef) -> str | None:
        """The image holding the snapshot: its volume's, or found by scanning (refs with only an id)."""
        _, rbd = bindings()
        ioctx = self.ioctx()
        candidates = [snapshot.volume.name] if snapshot.volume.id else []
        if snapshot.provider_location and "@" in snapshot.provider_location:
            candidates.insert(0, snapshot.provider_location.rsplit("/", 1)[-1].split("@", 1)[0])
        for name in candidates:
            try:
                with rbd.Image(ioctx, name, read_only=True) as handle:
                    if _has_snapshot(handle, snapshot):
                        return name
            except rbd.ImageNotFound:
                continue
        for name in rbd.RBD().list(ioctx):
            if not name.startswith(VOLUME_PREFIX) or name in candidates:
                continue
            try:
                with rbd.Image(ioctx, name, read_only=True) as handle:
                    if _has_snapshot(handle, snapshot):
                        return name
            except rbd.ImageNotFound:
                continue
        return None

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        with ceph_errors(f"deleting snapshot {snapshot.name}"):
            image_name = self._snapshot_image(snapshot)
            if image_name is None:
                return
            with self.image(image_name) as handle:
                if not self._delete_member_snapshot(handle, image_name, snapshot.id):
                    self._drop_snapshot(handle, snapshot.name)
        LOG.info("deleted snapshot %s of %s", snapshot.name, image_name)

    def _snapshot_size(self, handle: Any, snap_name: str) -> int:
        for snap in _user_snaps(handle):
            if snap["name"] == snap_name:
                return int(snap["size"])
        raise DriverError(f"snapshot {snap_name} does not exist")

    def _clone(self, volume: VolumeRef, parent_name: str, snap_name: str, min_size: int,
               flatten: bool) -> None:
        """COW child of parent@snap as volume's image, grown to the volume's size, flattened if asked
        or when the chain is deeper than rbd_max_clone_depth."""
        _, rbd = bindings()
        ioctx = self.ioctx()
        with rbd.Image(ioctx, parent_name) as parent:
            if not parent.is_protected_snap(snap_name):
                parent.protect_snap(snap_name)
        rbd.RBD().clone(ioctx, parent_name, snap_name, ioctx, volume.name,
                        features=self._features(self._wants_journal(volume)), order=self.order)
        try:
            with rbd.Image(ioctx, volume.name) as child:
                if volume.size_gb * GiB > child.size():
                    child.resize(volume.size_gb * GiB)
                if flatten or self._depth(child) > self.max_clone_depth or self._must_flatten(volume):
                    child.flatten()
        except BaseException:
            self._remove_image_quietly(volume.name)
            raise
        del min_size

    def _depth(self, handle: Any) -> int:
        """How many parents the image has."""
        _, rbd = bindings()
        depth = 0
        parent = _parent(handle)
        while parent is not None:
            depth += 1
            try:
                with rbd.Image(self.ioctx(), parent[0], read_only=True) as image:
                    parent = _parent(image)
            except rbd.ImageNotFound:
                break
        return depth

    def create_volume_from_snapshot(
        self, volume: VolumeRef, snapshot: SnapshotRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self._check_pool(volume)
        _, rbd = bindings()
        with ceph_errors(f"creating {volume.name} from {snapshot.name}"):
            parent_name = self._snapshot_image(snapshot)
            if parent_name is None:
                raise DriverError(f"snapshot {snapshot.name} does not exist")
            with rbd.Image(self.ioctx(), parent_name, read_only=True) as parent:
                member = member_ref(parent, snapshot.id)
                entry = member_snap(parent, *member) if member else None
                if member and entry is None:
                    raise DriverError(f"group snapshot {member[0]}/{member[1]} of {parent_name} is gone")
                size = int(entry["size"]) if entry else self._snapshot_size(parent, snapshot.name)
                if volume.size_gb * GiB < size:
                    raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its snapshot")
                if self.image_exists(volume.name):
                    raise DriverError(f"RBD image {volume.name} already exists")
                if entry is not None:  # a group snapshot member: librbd clones only user snapshots
                    parent.set_snap_by_id(entry["id"])
                    parent.copy(self.ioctx(), volume.name, features=self._features(self._wants_journal(volume)),
                                order=self.order)
            if entry is not None:
                with rbd.Image(self.ioctx(), volume.name) as copy:
                    if volume.size_gb * GiB > copy.size():
                        copy.resize(volume.size_gb * GiB)
            else:
                self._clone(volume, parent_name, snapshot.name, size,
                            flatten=bool(self.options.get("rbd_flatten_volume_from_snapshot")))
        progress(100)
        return self._finish_new(volume)

    def create_cloned_volume(
        self, volume: VolumeRef, source: VolumeRef, progress: ProgressCallback = no_progress
    ) -> ModelUpdate:
        self._check_pool(volume)
        _, rbd = bindings()
        clone_snap = volume.name + CLONE_SNAP_SUFFIX
        with ceph_errors(f"cloning {source.name} to {volume.name}"):
            ioctx = self.ioctx()
            with self.image(source.name) as src:
                if volume.size_gb * GiB < src.size():
                    raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its source")
                if self.image_exists(volume.name):
                    raise DriverError(f"RBD image {volume.name} already exists")
                if self.max_clone_depth <= 0:
                    src.copy(ioctx, volume.name, features=self._features(self._wants_journal(volume)),
                             order=self.order)
                    clone_snap = ""
                else:
                    src.create_snap(clone_snap)
            if clone_snap:
                try:
                    self._clone(volume, source.name, clone_snap, 0, flatten=False)
                except BaseException:
                    self._drop_clone_snap(source.name, clone_snap)
                    raise
                with rbd.Image(ioctx, volume.name, read_only=True) as child:
                    flattened = _parent(child) is None
                if flattened:
                    self._drop_clone_snap(source.name, clone_snap)
            else:
                with rbd.Image(ioctx, volume.name) as copy:
                    if volume.size_gb * GiB > copy.size():
                        copy.resize(volume.size_gb * GiB)
        progress(100)
        return self._finish_new(volume)

    def revert_to_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        with self.image(volume.name) as handle:
            if member_ref(handle, snapshot.id):
                raise DriverError(f"{snapshot.name} is part of a group snapshot: create a volume from it instead")
            size = handle.size()
            handle.rollback_to_snap(snapshot.name)
            if handle.size() < size:  # rollback restores the snapshot's size; keep the volume's
                handle.resize(size)
        LOG.info("reverted %s to %s", volume.name, snapshot.name)

    # -- exports and connections ---------------------------------------------------------------

    def create_export(self, volume: VolumeRef, connector: Connector) -> ModelUpdate:
        return ModelUpdate()

    def remove_export(self, volume: VolumeRef) -> None:
        return None

    def export_exists(self, volume: VolumeRef) -> bool:
        return False

    def initialize_connection(self, volume: VolumeRef, connector: Connector) -> ConnectionInfo:
        config = self.active_config
        client = self.client(config)
        with ceph_errors("reading the monitors"):
            if not self.image_exists(volume.name, config):
                raise DriverError(f"RBD image {self.pool_name}/{volume.name} does not exist")
            hosts, ports = client.monitors()
            secret = config.secret_uuid or client.fsid
        return ConnectionInfo(driver_volume_type="rbd", data={
            "name": f"{self.pool_name}/{volume.name}",
            "hosts": hosts,
            "ports": ports,
            "cluster_name": config.cluster_name,
            "auth_enabled": config.user is not None,
            "auth_username": config.user,
            "secret_type": "ceph",
            "secret_uuid": secret,
            "volume_id": volume.id,
            "discard": True,
            "access_mode": "rw",
        })

    def terminate_connection(self, volume: VolumeRef, connector: Connector | None) -> None:
        return None


def _user_snaps(handle: Any) -> list[dict[str, Any]]:
    """The image's snapshots in the user namespace (not mirror or group snapshots)."""
    _, rbd = bindings()
    user = getattr(rbd, "RBD_SNAP_NAMESPACE_TYPE_USER", 0)
    return [s for s in handle.list_snaps() if s.get("namespace", user) == user]


def _has_snapshot(handle: Any, snapshot: SnapshotRef) -> bool:
    return any(s["name"] == snapshot.name for s in _user_snaps(handle)) or member_ref(handle, snapshot.id) is not None


def _parent(handle: Any) -> tuple[str, str] | None:
    """(parent image, parent snapshot) of a clone, None for an image with no parent."""
    _, rbd = bindings()
    try:
        spec = handle.get_parent_image_spec()
    except rbd.ImageNotFound:
        return None
    return spec["image_name"], spec["snap_name"]
