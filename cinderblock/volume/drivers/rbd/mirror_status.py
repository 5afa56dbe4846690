"""What rbd-mirror's image statuses say: how far a copy is behind, and whether it replays."""
from __future__ import annotations

import json
from typing import Any

from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.rbd.connection import ClusterClient


def parse_status(description: str) -> dict[str, Any]:
    """The JSON part of an rbd-mirror status description ('replaying, {...}')."""
    start = description.find("{")
    if start < 0:
        return {}
    try:
        value = json.loads(description[start:])
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def replica_lag(status: ceph.Info, now: float) -> tuple[float | None, int, bool]:
    """(time of the last complete copy, bytes pending, sync in flight) from a non-primary image's local
    mirror status."""
    rbd = ceph.rbd()
    details = parse_status(str(status.get("description") or ""))
    state = status.get("state")
    updated_at = ceph.timestamp(status.get("last_update"))
    if state == rbd.MIRROR_IMAGE_STATUS_STATE_SYNCING:
        return None, 0, True
    if "local_snapshot_timestamp" in details:  # snapshot mode
        local = float(details.get("local_snapshot_timestamp") or 0) or None
        remote = float(details.get("remote_snapshot_timestamp") or 0)
        late = bool(local and remote and remote > local)
        pending = int(details.get("last_snapshot_bytes") or 0) if late else 0
        in_flight = details.get("replay_state") == "syncing" or late
        return local, pending, in_flight
    if "entries_behind_primary" in details:  # journal mode: caught up as of the status update
        behind = int(details.get("entries_behind_primary") or 0)
        if behind == 0:
            return updated_at or now, 0, False
        # Journal entries carry writes of varied size; 4 KiB each is the usual guest write.
        return None, behind * 4096, True
    return None, 0, state != rbd.MIRROR_IMAGE_STATUS_STATE_REPLAYING


def split_brain(status: ceph.Info) -> bool:
    return "split-brain" in str(status.get("description") or "")


def caught_up(status: ceph.Info) -> bool:
    """The non-primary copy finished bootstrapping and replays. Whether it holds everything is
    left to the non-forced promote, which librbd refuses until the demotion has been replayed
    (rbd-mirror refreshes the status description only every 30 s, its state at once)."""
    return bool(status.get("state") == ceph.rbd().MIRROR_IMAGE_STATUS_STATE_REPLAYING)


def image_mode(client: ClusterClient, name: str) -> str:
    """'journal' or 'snapshot': how the image on client's cluster is mirrored ('unknown' if unreadable)."""
    rbd = ceph.rbd()
    try:
        with rbd.Image(client.ioctx(), name, read_only=True) as handle:
            return "snapshot" if handle.mirror_image_get_mode() == rbd.RBD_MIRROR_IMAGE_MODE_SNAPSHOT else "journal"
    except rbd.Error:
        return "unknown"
