"""Storage of volumes: RBD images `volume-<id>` and their snapshots `snapshot-<id>`.

Clones are copy-on-write children of a (protected) snapshot and are flattened once the chain gets
deeper than `rbd_max_clone_depth`. Deleting an image that still has clones flattens those clones
first, so a delete never fails for that reason and never leaves a hidden image behind. Snapshots that
are members of group snapshots are found, copied from and removed through the group snapshots.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import SnapshotRef, StorageListing, VolumeRef
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.groups import GroupSnapshots
from cinderblock.volume.drivers.rbd.images import VOLUME_PREFIX, Images, parent_of, user_snaps
from cinderblock.volume.drivers.rbd.replicator import ImageLayout

LOG = logging.getLogger(__name__)

GiB = 1024**3
SNAPSHOT_PREFIX = "snapshot-"
CLONE_SNAP_SUFFIX = ".clone_snap"


@dataclass(frozen=True)
class StorageSettings:
    order: int = 22  # log2 of the object size of new images (rbd_store_chunk_size)
    max_clone_depth: int = 5  # rbd_max_clone_depth; 0: clones are full copies
    flatten_from_snapshot: bool = False  # rbd_flatten_volume_from_snapshot


class VolumeStorage:
    """Creates, copies, grows, snapshots and removes the volumes' images on the active cluster."""

    def __init__(self, images: Images, groups: GroupSnapshots, settings: StorageSettings) -> None:
        self.images = images
        self.groups = groups
        self.settings = settings
        self.pool_name = images.pool_name

    def check_pool(self, volume: VolumeRef) -> None:
        if volume.pool and volume.pool.rsplit("#", 1)[-1] != self.pool_name:
            raise DriverError(f"unknown pool {volume.pool!r} (this backend has only {self.pool_name!r})")

    def location(self, volume: VolumeRef) -> str:
        return f"rbd://{self.pool_name}/{volume.name}"

    def _features(self, layout: ImageLayout) -> int:
        rbd = ceph.rbd()
        features = (rbd.RBD_FEATURE_LAYERING | rbd.RBD_FEATURE_EXCLUSIVE_LOCK | rbd.RBD_FEATURE_OBJECT_MAP
                    | rbd.RBD_FEATURE_FAST_DIFF | rbd.RBD_FEATURE_DEEP_FLATTEN)
        if layout.journaling:
            features |= rbd.RBD_FEATURE_JOURNALING
        return features

    # -- volumes ----------------------------------------------------------------------------------

    def create(self, volume: VolumeRef, layout: ImageLayout) -> None:
        rbd = ceph.rbd()
        self.check_pool(volume)
        with ceph_errors(f"creating {volume.name}"):
            try:
                rbd.RBD().create(self.images.ioctx(), volume.name, volume.size_gb * GiB, order=self.settings.order,
                                 old_format=False, features=self._features(layout))
            except rbd.ImageExists:
                raise DriverError(f"RBD image {self.pool_name}/{volume.name} already exists") from None
        LOG.info("created %s/%s (%d GiB)", self.pool_name, volume.name, volume.size_gb)

    def exists(self, volume: VolumeRef) -> bool:
        return self.images.exists(volume.name)

    def extend(self, volume: VolumeRef, new_size_gb: int) -> None:
        with self.images.open(volume.name) as handle:
            if handle.size() > new_size_gb * GiB:
                raise DriverError(f"cannot shrink {volume.name} to {new_size_gb} GiB")
            handle.resize(new_size_gb * GiB)
        LOG.info("extended %s to %d GiB", volume.name, new_size_gb)

    def delete(self, volume: VolumeRef) -> None:
        self.remove_image(volume.name)
        LOG.info("deleted %s/%s", self.pool_name, volume.name)

    def remove_quietly(self, name: str) -> None:
        """Best effort, after a failed create: the original error is the one that matters."""
        try:
            self.remove_image(name)
        except Exception:
            LOG.exception("could not remove %s after a failed create", name)

    def remove_image(self, name: str) -> None:
        """Remove an image with its snapshots (their clones flattened) and its group membership."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()
        parent: tuple[str, str] | None = None
        with ceph_errors(f"deleting {name}"):
            try:
                handle = rbd.Image(ioctx, name)
            except rbd.ImageNotFound:
                return
            try:
                parent = parent_of(handle)
                self.groups.release(handle, name)
                for snap in user_snaps(handle):
                    self.images.drop_snapshot(handle, snap["name"])
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
            self.images.drop_unused_snapshot(*parent)

    def listing(self) -> StorageListing:
        rbd = ceph.rbd()
        volumes: dict[str, int] = {}
        snapshots: set[str] = set()
        with ceph_errors("listing the pool"):
            ioctx = self.images.ioctx()
            for name in self.images.volume_names():
                try:
                    with rbd.Image(ioctx, name, read_only=True) as handle:
                        volumes[name[len(VOLUME_PREFIX):]] = handle.size()
                        snapshots.update(str(s["name"])[len(SNAPSHOT_PREFIX):] for s in user_snaps(handle)
                                         if str(s["name"]).startswith(SNAPSHOT_PREFIX))
                        snapshots.update(self.groups.member_ids(handle))
                except rbd.ImageNotFound:  # deleted while we scan
                    continue
        return StorageListing(volumes=volumes, snapshots=frozenset(snapshots), exports=frozenset())

    # -- snapshots --------------------------------------------------------------------------------

    def create_snapshot(self, snapshot: SnapshotRef) -> str:
        """Take the snapshot; its provider location."""
        rbd = ceph.rbd()
        with self.images.open(snapshot.volume.name) as handle:
            try:
                handle.create_snap(snapshot.name)
            except rbd.ImageExists:
                raise DriverError(f"snapshot {snapshot.name} of {snapshot.volume.name} already exists") from None
        return f"rbd://{self.pool_name}/{snapshot.volume.name}@{snapshot.name}"

    def delete_snapshot(self, snapshot: SnapshotRef) -> None:
        with ceph_errors(f"deleting snapshot {snapshot.name}"):
            image_name = self._snapshot_image(snapshot)
            if image_name is None:
                return
            with self.images.open(image_name) as handle:
                if not self.groups.delete_member(handle, image_name, snapshot.id):
                    self.images.drop_snapshot(handle, snapshot.name)
        LOG.info("deleted snapshot %s of %s", snapshot.name, image_name)

    def _has_snapshot(self, handle: ceph.Image, snapshot: SnapshotRef) -> bool:
        return (any(s["name"] == snapshot.name for s in user_snaps(handle))
                or self.groups.member(handle, snapshot.id) is not None)

    def _snapshot_image(self, snapshot: SnapshotRef) -> str | None:
        """The image holding the snapshot: its volume's, or found by scanning (refs with only an id)."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()
        candidates = [snapshot.volume.name] if snapshot.volume.id else []
        if snapshot.provider_location and "@" in snapshot.provider_location:
            candidates.insert(0, snapshot.provider_location.rsplit("/", 1)[-1].split("@", 1)[0])

        def names() -> Iterator[str]:
            yield from candidates
            yield from (name for name in rbd.RBD().list(ioctx)  # listed only when no candidate has it
                        if name.startswith(VOLUME_PREFIX) and name not in candidates)

        for name in names():
            try:
                with rbd.Image(ioctx, name, read_only=True) as handle:
                    if self._has_snapshot(handle, snapshot):
                        return name
            except rbd.ImageNotFound:
                continue
        return None

    def revert(self, volume: VolumeRef, snapshot: SnapshotRef) -> None:
        with self.images.open(volume.name) as handle:
            if self.groups.member(handle, snapshot.id):
                raise DriverError(f"{snapshot.name} is part of a group snapshot: create a volume from it instead")
            size = handle.size()
            handle.rollback_to_snap(snapshot.name)
            if handle.size() < size:  # rollback restores the snapshot's size; keep the volume's
                handle.resize(size)
        LOG.info("reverted %s to %s", volume.name, snapshot.name)

    # -- copies -----------------------------------------------------------------------------------

    def create_from_snapshot(self, volume: VolumeRef, snapshot: SnapshotRef, layout: ImageLayout) -> None:
        """The snapshot's bytes as a new volume: a clone of a user snapshot, a full copy of a group member."""
        self.check_pool(volume)
        rbd = ceph.rbd()
        with ceph_errors(f"creating {volume.name} from {snapshot.name}"):
            parent_name = self._snapshot_image(snapshot)
            if parent_name is None:
                raise DriverError(f"snapshot {snapshot.name} does not exist")
            with rbd.Image(self.images.ioctx(), parent_name, read_only=True) as parent:
                member = self.groups.member(parent, snapshot.id)
                entry = self.groups.member_snap(parent, member) if member else None
                if member and entry is None:
                    raise DriverError(f"group snapshot {member.ref} of {parent_name} is gone")
                size = int(entry["size"]) if entry else self._snapshot_size(parent, snapshot.name)
                if volume.size_gb * GiB < size:
                    raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its snapshot")
                if self.images.exists(volume.name):
                    raise DriverError(f"RBD image {volume.name} already exists")
                if entry is not None:  # a group snapshot member: librbd clones only user snapshots
                    parent.set_snap_by_id(entry["id"])
                    parent.copy(self.images.ioctx(), volume.name, features=self._features(layout),
                                order=self.settings.order)
            if entry is not None:
                self._grow_copy(volume)
            else:
                self._clone(volume, parent_name, snapshot.name, layout,
                            flatten=self.settings.flatten_from_snapshot)
        self._forget_copied(volume)

    def create_clone(self, volume: VolumeRef, source: VolumeRef, layout: ImageLayout) -> None:
        """source's current bytes as a new volume: a clone of a hidden snapshot, or a full copy when
        rbd_max_clone_depth is 0."""
        self.check_pool(volume)
        clone_snap = volume.name + CLONE_SNAP_SUFFIX
        with ceph_errors(f"cloning {source.name} to {volume.name}"):
            with self.images.open(source.name) as src:
                if volume.size_gb * GiB < src.size():
                    raise DriverError(f"volume {volume.id} ({volume.size_gb} GiB) is smaller than its source")
                if self.images.exists(volume.name):
                    raise DriverError(f"RBD image {volume.name} already exists")
                if self.settings.max_clone_depth <= 0:
                    src.copy(self.images.ioctx(), volume.name, features=self._features(layout),
                             order=self.settings.order)
                    clone_snap = ""
                else:
                    src.create_snap(clone_snap)
            if clone_snap:
                try:
                    self._clone(volume, source.name, clone_snap, layout, flatten=False)
                except BaseException:
                    self.images.drop_unused_snapshot(source.name, clone_snap)
                    raise
                with ceph.rbd().Image(self.images.ioctx(), volume.name, read_only=True) as child:
                    flattened = parent_of(child) is None
                if flattened:
                    self.images.drop_unused_snapshot(source.name, clone_snap)
            else:
                self._grow_copy(volume)
        self._forget_copied(volume)

    def _snapshot_size(self, handle: ceph.Image, snap_name: str) -> int:
        for snap in user_snaps(handle):
            if snap["name"] == snap_name:
                return int(snap["size"])
        raise DriverError(f"snapshot {snap_name} does not exist")

    def _grow_copy(self, volume: VolumeRef) -> None:
        with ceph.rbd().Image(self.images.ioctx(), volume.name) as copy:
            if volume.size_gb * GiB > copy.size():
                copy.resize(volume.size_gb * GiB)

    def _clone(self, volume: VolumeRef, parent_name: str, snap_name: str, layout: ImageLayout,
               flatten: bool) -> None:
        """COW child of parent@snap as volume's image, grown to the volume's size, flattened if asked,
        when the layout wants it standalone or when the chain is deeper than rbd_max_clone_depth."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()
        with rbd.Image(ioctx, parent_name) as parent:
            if not parent.is_protected_snap(snap_name):
                parent.protect_snap(snap_name)
        rbd.RBD().clone(ioctx, parent_name, snap_name, ioctx, volume.name, features=self._features(layout),
                        order=self.settings.order)
        try:
            with rbd.Image(ioctx, volume.name) as child:
                if volume.size_gb * GiB > child.size():
                    child.resize(volume.size_gb * GiB)
                if flatten or layout.standalone or self.images.depth(child) > self.settings.max_clone_depth:
                    child.flatten()
        except BaseException:
            self.remove_quietly(volume.name)
            raise

    def _forget_copied(self, volume: VolumeRef) -> None:
        """A copy or clone carries its source's metadata: not the source's group snapshot keys."""
        try:
            with self.images.open(volume.name) as handle:
                self.groups.forget_copied(handle)
        except BaseException:
            self.remove_quietly(volume.name)
            raise
