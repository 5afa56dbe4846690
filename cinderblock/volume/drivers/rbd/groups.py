"""The consistency barrier: consistent group snapshots through Ceph's RBD groups.

A group snapshot puts the members' images in one RBD group (`cbgroup-<group id>`, created on first
use, members added as needed) and takes an RBD group snapshot: librbd quiesces every member (writers
pause, they do not fail), snapshots them all, and resumes them, so the snapshots hold one instant.

Each member's snapshot is the image's snapshot in the group namespace. The pool's RADOS object
`cinderblock.group_snapshots` records, in its omap, which one a member snapshot id is
(`<image>/<group>/<group snap>`): that is how list_storage, delete_snapshot and
create_volume_from_snapshot find it by the member snapshot's id. It is not kept in image metadata:
changing an image's metadata needs the image's exclusive lock, so a guest writing to the volume
would have to run it for us (see bounded.py for how that can hang). A volume created from a member
is a full copy (librbd clones only user snapshots). Reverting a volume to a member snapshot is
refused. The group snapshot itself goes when its last member snapshot is deleted.
"""
from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import GroupSnapshotResult, ModelUpdate, ProgressCallback, SnapshotRef, no_progress
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.ceph import ceph_errors
from cinderblock.volume.drivers.rbd.images import Images

LOG = logging.getLogger(__name__)

INDEX = "cinderblock.group_snapshots"


@dataclass(frozen=True)
class Member:
    """A snapshot that is one image's part of a group snapshot."""

    image: str
    group: str
    group_snap: str

    @property
    def ref(self) -> str:
        return f"{self.group}/{self.group_snap}"

    def encode(self) -> bytes:
        return f"{self.image}/{self.group}/{self.group_snap}".encode()

    @classmethod
    def decode(cls, value: bytes) -> Member | None:
        image, group, gsnap = (value.decode().split("/", 2) + ["", ""])[:3]
        return cls(image, group, gsnap) if image and group and gsnap else None


class MemberIndex:
    """Member snapshot id → Member, as the omap of one RADOS object in the active cluster's pool.

    Plain object writes: no image lock involved, so no writer can hold them up."""

    def __init__(self, images: Images) -> None:
        self.images = images

    def put(self, members: dict[str, Member]) -> None:
        """Record them all in one write (all or nothing)."""
        rados = ceph.rados()
        with rados.WriteOpCtx() as op:
            ioctx = self.images.ioctx()
            ioctx.set_omap(op, tuple(members), tuple(m.encode() for m in members.values()))
            ioctx.operate_write_op(op, INDEX)

    def remove(self, snapshot_ids: Iterable[str]) -> None:
        keys = tuple(snapshot_ids)
        if not keys:
            return
        rados = ceph.rados()
        with rados.WriteOpCtx() as op:
            ioctx = self.images.ioctx()
            ioctx.remove_omap_keys(op, keys)
            try:
                ioctx.operate_write_op(op, INDEX)
            except rados.ObjectNotFound:
                pass

    def get(self, snapshot_id: str) -> Member | None:
        return self._read(lambda ioctx, op: ioctx.get_omap_vals_by_keys(op, (snapshot_id,))).get(snapshot_id)

    def all(self) -> dict[str, Member]:
        return self._read(lambda ioctx, op: ioctx.get_omap_vals(op, "", "", -1))

    def _read(self, ask: Callable[[ceph.IoCtx, ceph.ReadOp], tuple[Iterable[tuple[str, bytes]], int]]
              ) -> dict[str, Member]:
        rados = ceph.rados()
        with rados.ReadOpCtx() as op:
            ioctx = self.images.ioctx()
            values, _ = ask(ioctx, op)
            try:
                ioctx.operate_read_op(op, INDEX)
            except rados.ObjectNotFound:
                return {}
            decoded = {key: Member.decode(value) for key, value in values}
        return {key: member for key, member in decoded.items() if member is not None}


class GroupSnapshots:
    """Takes, finds and removes the members of RBD group snapshots in the volumes' pool."""

    def __init__(self, images: Images) -> None:
        self.images = images
        self.index = MemberIndex(images)

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
                with self.images.open(snapshot.volume.name, read_only=True) as handle:
                    current = handle.group().get("name")
                if current == group:
                    continue
                if current:
                    raise DriverError(f"{snapshot.volume.name} already belongs to RBD group {current!r}")
                handle_group.add_image(ioctx, snapshot.volume.name)  # the image's header, not its lock
            progress(10)
            started = time.monotonic()
            # librbd: quiesce all, take every member's lock from its writer, snapshot all, resume
            self.images.bounded(f"group snapshot {group}/{gsnap}", lambda: rbd.Group(ioctx, group).create_snap(gsnap),
                                done=lambda: self._taken(group, gsnap))
            pause_ms = (time.monotonic() - started) * 1000
            try:
                self.index.put({s.id: Member(s.volume.name, group, gsnap) for s in snapshots})
            except BaseException:
                with contextlib.suppress(Exception):
                    self._remove_group_snap(Member("", group, gsnap))
                raise
        progress(100)
        LOG.info("group snapshot %s/%s of %d volume(s), writes paused %.1f ms", group, gsnap, len(snapshots),
                 pause_ms)
        pool = self.images.pool_name
        return GroupSnapshotResult(
            updates=tuple(ModelUpdate(provider_location=f"rbd://{pool}/{s.volume.name}@{group}/{gsnap}")
                          for s in snapshots),
            write_pause_ms=pause_ms)

    def _taken(self, group: str, gsnap: str) -> bool:
        snap = self._group_snaps(group).get(gsnap)
        return snap is not None and snap.get("state") == ceph.rbd().RBD_GROUP_SNAP_STATE_COMPLETE

    # -- members, as the volume storage meets them --------------------------------------------------

    def member(self, snapshot_id: str) -> Member | None:
        """The group snapshot member snapshot_id is, if it is one."""
        return self.index.get(snapshot_id)

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

    def member_ids(self, image_names: Collection[str]) -> set[str]:
        """Ids of the member snapshots recorded for these images."""
        return {sid for sid, member in self.index.all().items() if member.image in image_names}

    def delete_member(self, snapshot_id: str) -> bool:
        """Remove snapshot_id if it is a group snapshot member; True when it was one."""
        member = self.member(snapshot_id)
        if member is None:
            return False
        others = [sid for sid, m in self.index.all().items() if m.ref == member.ref and sid != snapshot_id]
        if not others:  # the group snapshot stays until its last member snapshot goes
            self._remove_group_snap(member)
        self.index.remove((snapshot_id,))
        return True

    def release(self, handle: ceph.Image, image_name: str) -> None:
        """Before an image is removed: drop its group snapshot members and leave its RBD group.

        Group snapshots that still hold this image because other members' snapshots reference them go
        whole (librbd cannot drop one member of a group snapshot and keep the rest). Cinder deletes the
        members of a group snapshot together, so this only happens out of order (recovery)."""
        rbd = ceph.rbd()
        for snapshot_id, member in self.index.all().items():
            if member.image == image_name:
                self.delete_member(snapshot_id)
        group = handle.group().get("name")
        ioctx = self.images.ioctx()
        if group:
            rbd_group = rbd.Group(ioctx, group)
            for gs in list(rbd_group.list_snaps()):
                member = Member(image_name, group, gs["name"])
                if self.member_snap(handle, member) is None:
                    continue
                LOG.warning("removing group snapshot %s: its member %s is being deleted", member.ref, image_name)
                self._remove_group_snap(member)
                self.index.remove(sid for sid, m in self.index.all().items() if m.ref == member.ref)
            rbd_group.remove_image(ioctx, image_name)  # the group's and the image's headers, not its lock
            if not list(rbd_group.list_images()):
                rbd.RBD().group_remove(ioctx, group)
        left = [snap["id"] for snap in handle.list_snaps()  # left by a group that no longer exists
                if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP]
        if left:
            def remove(own: ceph.Image) -> None:
                for snap_id in left:
                    own.remove_snap_by_id(snap_id)

            self.images.maintain("removing left-over group snapshots", image_name, remove)

    def _remove_group_snap(self, member: Member) -> None:
        """Remove the group snapshot (every member image's part of it), within the deadline."""
        rbd = ceph.rbd()
        ioctx = self.images.ioctx()

        def remove() -> None:
            try:
                rbd.Group(ioctx, member.group).remove_snap(member.group_snap)
            except (rbd.ImageNotFound, rbd.ObjectNotFound):
                pass

        self.images.bounded(f"removing group snapshot {member.ref}", remove,
                            done=lambda: member.group_snap not in self._group_snaps(member.group))

    def _group_snaps(self, group: str) -> dict[str, ceph.Info]:
        rbd = ceph.rbd()
        try:
            return {s["name"]: s for s in rbd.Group(self.images.ioctx(), group).list_snaps()}
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            return {}
