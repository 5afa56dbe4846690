"""RBD images of the active cluster's pool: opening them, and the snapshot and clone-chain rules
every collaborator shares (a snapshot's clones are flattened before it goes)."""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from cinderblock.model.errors import DriverError
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.connection import ClusterConfig
from cinderblock.volume.drivers.rbd.sites import Sites

LOG = logging.getLogger(__name__)

VOLUME_PREFIX = "volume-"


class Images:
    """Opens images of the volumes' pool on the cluster serving now (or on a given one)."""

    def __init__(self, sites: Sites) -> None:
        self.sites = sites
        self.pool_name = sites.pool_name

    def ioctx(self, config: ClusterConfig | None = None) -> ceph.IoCtx:
        return self.sites.ioctx(config)

    @contextmanager
    def open(self, name: str, read_only: bool = False, config: ClusterConfig | None = None) -> Iterator[ceph.Image]:
        """The open image; DriverError when it does not exist, librbd errors become DriverError."""
        rbd = ceph.rbd()
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

    def exists(self, name: str, config: ClusterConfig | None = None) -> bool:
        rbd = ceph.rbd()
        with ceph_errors(f"checking image {name}"):
            try:
                rbd.Image(self.ioctx(config), name, read_only=True).close()
                return True
            except rbd.ImageNotFound:
                return False

    def volume_names(self, config: ClusterConfig | None = None) -> list[str]:
        """The pool's complete volume images (not the `.`-suffixed ones being made)."""
        return [name for name in ceph.rbd().RBD().list(self.ioctx(config))
                if name.startswith(VOLUME_PREFIX) and "." not in name]

    def drop_snapshot(self, handle: ceph.Image, snap_name: str) -> None:
        """Remove one snapshot of an open image; its clones are flattened first (they keep their data)."""
        rbd = ceph.rbd()
        handle.set_snap(snap_name)
        try:
            for child in handle.list_children2():
                if child.get("trash"):
                    continue
                child_ioctx = self.sites.client().ioctx(child["pool"])
                with rbd.Image(child_ioctx, child["image"]) as child_image:
                    LOG.info("flattening %s before removing its parent snapshot %s", child["image"], snap_name)
                    child_image.flatten()
        finally:
            handle.set_snap(None)
        if handle.is_protected_snap(snap_name):
            handle.unprotect_snap(snap_name)
        handle.remove_snap(snap_name)

    def drop_unused_snapshot(self, image_name: str, snap_name: str) -> None:
        """Remove a hidden snapshot (one a clone-from-volume made) once no clone uses it."""
        rbd = ceph.rbd()
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

    def depth(self, handle: ceph.Image) -> int:
        """How many parents the image has."""
        rbd = ceph.rbd()
        depth = 0
        parent = parent_of(handle)
        while parent is not None:
            depth += 1
            try:
                with rbd.Image(self.ioctx(), parent[0], read_only=True) as image:
                    parent = parent_of(image)
            except rbd.ImageNotFound:
                break
        return depth


def user_snaps(handle: ceph.Image) -> list[ceph.Info]:
    """The image's snapshots in the user namespace (not mirror or group snapshots)."""
    user = ceph.rbd().RBD_SNAP_NAMESPACE_TYPE_USER
    return [s for s in handle.list_snaps() if s.get("namespace", user) == user]


def parent_of(handle: ceph.Image) -> tuple[str, str] | None:
    """(parent image, parent snapshot) of a clone, None for an image with no parent."""
    try:
        spec = handle.get_parent_image_spec()
    except ceph.rbd().ImageNotFound:
        return None
    return str(spec["image_name"]), str(spec["snap_name"])
