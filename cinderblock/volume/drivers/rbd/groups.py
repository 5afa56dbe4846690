"""Consistent group snapshots through Ceph's RBD groups.

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

import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    GroupSnapshotResult,
    ModelUpdate,
    ProgressCallback,
    SnapshotRef,
    SupportsConsistentGroupSnapshot,
    no_progress,
)
from cinderblock.volume.drivers.rbd.connection import bindings, ceph_errors

LOG = logging.getLogger(__name__)

META_PREFIX = "cinderblock.groupsnap."


def member_ref(handle: Any, snapshot_id: str) -> tuple[str, str] | None:
    """(group, group snap name) when the open image holds snapshot_id as a group snapshot member."""
    _, rbd = bindings()
    try:
        value = handle.metadata_get(META_PREFIX + snapshot_id)
    except (rbd.ObjectNotFound, KeyError):
        return None
    group, _, gsnap = str(value).partition("/")
    return (group, gsnap) if group and gsnap else None


def member_snap(handle: Any, group: str, gsnap: str) -> dict[str, Any] | None:
    """The image's snapshot entry (id, size) for the group snapshot, None if gone."""
    _, rbd = bindings()
    for snap in handle.list_snaps():
        info = snap.get("group") or {}
        if (snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP and info.get("name") == group
                and info.get("snap_name") == gsnap):
            return dict(snap)
    return None


def member_snapshot_ids(handle: Any) -> list[str]:
    return [key[len(META_PREFIX):] for key, _ in handle.metadata_list() if key.startswith(META_PREFIX)]


class RBDGroupSnapshots(SupportsConsistentGroupSnapshot):
    """Mixed into RBDDriver (which supplies ioctx(), image(), pool_name)."""

    pool_name: str

    def _group_capabilities(self) -> dict[str, Any]:
        return {"consistent_group_snapshot_enabled": True, "consistencygroup_support": True}

    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        _, rbd = bindings()
        if not snapshots:
            return GroupSnapshotResult(updates=(), write_pause_ms=0.0)
        ioctx = self.ioctx()  # type: ignore[attr-defined]
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
                with self.image(snapshot.volume.name) as handle:  # type: ignore[attr-defined]
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
                    with self.image(snapshot.volume.name) as handle:  # type: ignore[attr-defined]
                        handle.metadata_set(META_PREFIX + snapshot.id, f"{group}/{gsnap}")
            except BaseException:
                for snapshot in snapshots:
                    try:
                        with self.image(snapshot.volume.name) as handle:  # type: ignore[attr-defined]
                            handle.metadata_remove(META_PREFIX + snapshot.id)
                    except Exception:  # noqa: BLE001 -- best effort, the group snap goes anyway
                        pass
                handle_group.remove_snap(gsnap)
                raise
        progress(100)
        LOG.info("group snapshot %s/%s of %d volume(s), writes paused %.1f ms", group, gsnap, len(snapshots),
                 pause_ms)
        return GroupSnapshotResult(
            updates=tuple(ModelUpdate(provider_location=f"rbd://{self.pool_name}/{s.volume.name}@{group}/{gsnap}")
                          for s in snapshots),
            write_pause_ms=pause_ms)

    def _delete_member_snapshot(self, handle: Any, image_name: str, snapshot_id: str) -> bool:
        """Remove snapshot_id if it is a group snapshot member of the open image; True when it was one."""
        _, rbd = bindings()
        ref = member_ref(handle, snapshot_id)
        if ref is None:
            return False
        group, gsnap = ref
        handle.metadata_remove(META_PREFIX + snapshot_id)
        # Other members still referencing the group snapshot keep it.
        ioctx = self.ioctx()  # type: ignore[attr-defined]
        try:
            members = [m["name"] for m in rbd.Group(ioctx, group).list_images()]
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            members = []
        for name in members:
            if name == image_name:
                continue
            try:
                with rbd.Image(ioctx, name, read_only=True) as other:
                    if any(v == f"{group}/{gsnap}" for k, v in other.metadata_list() if k.startswith(META_PREFIX)):
                        return True  # the group snapshot stays until its last member snapshot goes
            except rbd.ImageNotFound:
                continue
        try:
            rbd.Group(ioctx, group).remove_snap(gsnap)
        except (rbd.ImageNotFound, rbd.ObjectNotFound):
            pass
        snap = member_snap(handle, group, gsnap)
        if snap is not None:
            handle.remove_snap_by_id(snap["id"])
        return True

    def _leave_group(self, handle: Any, image_name: str) -> None:
        """Before an image is removed: drop its group snapshot members and leave its RBD group.

        Group snapshots that still hold this image because other members' snapshots reference them go
        whole (librbd cannot drop one member of a group snapshot and keep the rest). Cinder deletes the
        members of a group snapshot together, so this only happens out of order (recovery)."""
        _, rbd = bindings()
        for snapshot_id in member_snapshot_ids(handle):
            self._delete_member_snapshot(handle, image_name, snapshot_id)
        group = handle.group().get("name")
        ioctx = self.ioctx()  # type: ignore[attr-defined]
        if group:
            rbd_group = rbd.Group(ioctx, group)
            for gs in list(rbd_group.list_snaps()):
                if member_snap(handle, group, gs["name"]) is None:
                    continue
                LOG.warning("removing group snapshot %s/%s: its member %s is being deleted", group, gs["name"],
                            image_name)
                self._forget_group_snap(group, gs["name"])
                rbd_group.remove_snap(gs["name"])
            rbd_group.remove_image(ioctx, image_name)
            if not list(rbd_group.list_images()):
                rbd.RBD().group_remove(ioctx, group)
        for snap in handle.list_snaps():  # left by a group that no longer exists
            if snap.get("namespace") == rbd.RBD_SNAP_NAMESPACE_TYPE_GROUP:
                handle.remove_snap_by_id(snap["id"])

    def _forget_group_snap(self, group: str, gsnap: str) -> None:
        """Remove every member's metadata key naming group/gsnap."""
        _, rbd = bindings()
        ioctx = self.ioctx()  # type: ignore[attr-defined]
        for member in rbd.Group(ioctx, group).list_images():
            try:
                with rbd.Image(ioctx, member["name"]) as other:
                    for key, value in list(other.metadata_list()):
                        if key.startswith(META_PREFIX) and value == f"{group}/{gsnap}":
                            other.metadata_remove(key)
            except rbd.ImageNotFound:
                continue
