"""The consistency barrier: consistent group snapshots through Ceph's RBD groups.

A group snapshot puts the members' images in one RBD group (`cbgroup-<group id>`, created on first
use, members added as needed) and takes an RBD group snapshot: librbd quiesces every member (writers
pause, they do not fail), snapshots them all, and resumes them, so the snapshots hold one instant.

Each member's snapshot is the image's snapshot in the group namespace. The image's metadata key
`cinderblock.groupsnap.<snapshot id>` names it (`<group>/<group snap>`), which is how list_storage,
delete_snapshot and create_volume_from_snapshot find it by the member snapshot's id. A volume created
from a member is a full copy (librbd clones only user snapshots). Reverting a volume to a member
snapshot is refused. The group snapshot itself goes when its last member snapshot is deleted.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import GroupSnapshotResult, ModelUpdate, ProgressCallback, SnapshotRef, no_progress
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.images import Images

LOG = logging.getLogger(__name__)

META_PREFIX = "cinderblock.groupsnap."


@dataclass(frozen=True)
class Member:
    """A snapshot that is one image's part of a group snapshot."""

    group: str
    group_snap: str

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.group_snap}"


class GroupSnapshots:
    """Takes, finds and removes the members of RBD group snapshots in the volumes' pool."""

    def __init__(self, images: Images) -> None:
        self.images = images

    @staticmethod
    def capabilities() -> dict[str, bool]:
        return {"consistent_group_snapshot_enabled": True, "consistencygroup_support": True}

    def create(self, snapshots: Sequence[SnapshotRef], progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        """Hold writes to every member, snapshot them all, release; all or nothing."""
        rbd = ceph.rbd()
        if not snapshots:
            return GroupSnapshotResult(updates=(), write_pause_ms=0.0)
        ioctx = self.images.ioctx()
        key = snapshots[0].volume.group_id or snapshots[0].id
        group = f"cbgroup-{key}"
        gsnap = f"cbgsnap-{uuid.uuid4().hex[:12]}"
        with ceph_errors(f"group snapshot of {len(snapshots)} volume(s) in RBD group {group}"):
            try:
                rbd.RBD().group_create(ioctx, group)
            except (rbd.ImageExists, rbd.ObjectExists):
                pass
            handle_group = rbd.Group(ioctx, group)
            for snapshot in snapshots:
                with self.images.open(snapshot.volume.name) as handle:
                    current = handle.group().get("name")
                if current == group:
                    continue
                if current:
                    raise DriverError(f"{snapshot.volume.name} already belongs to RBD group {current!r}")
                handle_group.add_image(ioctx, snapshot.volume.name)
            progress(10)
            started = time.monotonic()
            handle_group.create_snap(gsnap)  # librbd: quiesce all, snapshot all, resume; all or nothing
            pause_ms = (time.monotonic() - started) * 1000
            try:
                for snapshot in snapshots:
                    with self.images.open(snapshot.volume.name) as handle:
                        handle.metadata_set(META_PREFIX + snapshot.id, f"{group}/{gsnap}")
            except BaseException:
                for snapshot in snapshots:  # best effort, the group snap goes anyway
                    with contextlib.suppress(Exception), self.images.open(snapshot.volume.name) as handle:
                        handle.metadata_remove(META_PREFIX + snapshot.id)
                handle_group.remove_snap(gsnap)
                raise
        progress(100)
        LOG.info("group snapshot %s/%s of %d volume(s), writes paused %.1f ms", group, gsnap, len(snapshots),
                 pause_ms)
        pool = self.images.pool_name
        return GroupSnapshotResult(
            updates=tuple(ModelUpdate(provider_location=f"rbd://{pool}/{s.volume.name}@{group}/{gsnap}")
                          for s in snapshots),
            write_pause_ms=pause_ms)

    # -- members, as the volume storage meets them --------------------------------------------------

    @staticmethod
    def member(handle: ceph.Image, snapshot_id: str) -> Member | None:
        """The group snapshot the open image holds snapshot_id in, if it is a member."""
        rbd = ceph.rbd()
        try:
            value = handle.metadata_get(META_PREFIX + snapshot_id)
        except (rbd.ObjectNotFound, KeyError):
            return None
        group, _, gsnap = str(value).partition("/")
        return Member(group, gsnap) if group and gsnap else None

    @staticmethod
    def member_snap(handle: ceph.Image, member: Member) -> ceph.Info | None:
        """The image's snapshot entry (id, size) for the member, None if gone."""
        rbd = ceph.rbd()
        for snap in handle.list_snaps():
            info = snap.get("group") or {}
            if (snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP and info.get("name") == member.group
                    and info.get("snap_name") == member.group_snap):
                return snap
        return None

    @staticmethod
    def member_ids(handle: ceph.Image) -> list[str]:
        """Ids of the member snapshots the open image holds."""
        return [key[len(META_PREFIX):] for key, _ in handle.metadata_list() if key.startswith(META_PREFIX)]

    def forget_copied(self, handle: ceph.Image) -> None:
        """A clone or copy carries its source's metadata, not its source's member snapshots."""
        for snapshot_id in self.member_ids(handle):
            handle.metadata_remove(META_PREFIX + snapshot_id)

    def delete_member(self, handle: ceph.Image, image_name: str, snapshot_id: str) -> bool:
        """Remove snapshot_id if it is a group snapshot member of the open image; True when it was one."""
        rbd = ceph.rbd()
        member = self.member(handle, snapshot_id)
        if member is None:
            return False
        handle.metadata_remove(META_PREFIX + snapshot_id)
        # Other members still referencing the group snapshot keep it.
        ioctx = self.images.ioctx()
        try:
            names = [m["name"] for m in rbd.Group(ioctx, member.group).list_images()]
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            names = []
        for name in names:
            if name == image_name:
                continue
            try:
                with rbd.Image(ioctx, name, read_only=True) as other:
                    if any(v == member.ref for k, v in other.metadata_list() if k.startswith(META_PREFIX)):
                        return True  # the group snapshot stays until its last member snapshot goes
            except rbd.ImageNotFound:
                continue
        try:
            rbd.Group(ioctx, member.group).remove_snap(member.group_snap)
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            pass
        snap = self.member_snap(handle, member)
        if snap is not None:
            handle.remove_snap_by_id(snap["id"])
        return True

    def release(self, handle: ceph.Image, image_name: str) -> None:
        """Before an image is removed: drop its group snapshot members and leave its RBD group.

        Group snapshots that still hold this image because other members' snapshots reference them go
        whole (librbd cannot drop one member of a group snapshot and keep the rest). Cinder deletes the
        members of a group snapshot together, so this only happens out of order (recovery)."""
        rbd = ceph.rbd()
        for snapshot_id in self.member_ids(handle):
            self.delete_member(handle, image_name, snapshot_id)
        group = handle.group().get("name")
        ioctx = self.images.ioctx()
        if group:
            rbd_group = rbd.Group(ioctx, group)
            for gs in list(rbd_group.list_snaps()):
                if self.member_snap(handle, Member(group, gs["name"])) is None:
                    continue
                LOG.warning("removing group snapshot %s/%s: its member %s is being deleted", group, gs["name"],
                            image_name)
                self._forget_group_snap(Member(group, gs["name"]))
                rbd_group.remove_snap(gs["name"])
            rbd_group.remove_image(ioctx, image_name)
            if not list(rbd_group.list_images()):
                rbd.RBD().group_remove(ioctx, group)
        for snap in handle.list_snaps():  # left by a group that no longer exists
            if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP:
                handle.remove_snap_by_id(snap["id"])

    def _forget_group_snap(self, member: Member) -> None:
        """Remove every member's metadata key naming the group snapshot."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()
        for image in rbd.Group(ioctx, member.group).list_images():
            try:
                with rbd.Image(ioctx, image["name"]) as other:
                    for key, value in list(other.metadata_list()):
                        if key.startswith(META_PREFIX) and value == member.ref:
                            other.metadata_remove(key)
            except rbd.ImageNotFound:
                continue
