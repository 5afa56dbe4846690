"""Restart recovery: rows a dead process left in transient states reach their end states (file driver)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cinderblock.db import tables
from tests.api.helpers import in_use, set_volume, snapshot
from tests.conftest import Cloud


def file_of(cloud: Cloud, volume_id: str) -> Path:
    with cloud.running.core.db.read() as session:
        volume = session.get(tables.Volume, volume_id)
        assert volume is not None and volume.provider_location
        return Path(volume.provider_location)


def restart(make_cloud: Callable[..., Cloud], cloud: Cloud) -> Cloud:
    cloud.running.stop()
    return make_cloud("", state="same")


def row(cloud: Cloud, table: Any, ident: str) -> Any:
    with cloud.running.core.db.read() as session:
        return session.get(table, ident)


def test_transient_volumes_reach_end_states(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    made = cloud.create_volume(1, name="made")
    lost = cloud.create_volume(1, name="lost")
    doomed = cloud.create_volume(2, name="doomed")
    growing = cloud.create_volume(1, name="growing")
    unplaced = cloud.create_volume(1, name="unplaced")
    doomed_file, lost_file = file_of(cloud, doomed["id"]), file_of(cloud, lost["id"])
    assert doomed_file.is_file() and lost_file.is_file()
    lost_file.unlink()  # the crash happened before the driver published the file
    set_volume(cloud, made["id"], status="creating")
    set_volume(cloud, lost["id"], status="creating")
    set_volume(cloud, doomed["id"], status="deleting")
    set_volume(cloud, growing["id"], status="extending", previous_status="available")
    set_volume(cloud, unplaced["id"], status="creating", host=None)
    assert in_use(cloud, "volumes") == 5 and in_use(cloud, "gigabytes") == 6

    cloud = restart(make_cloud, cloud)

    def status(volume: dict[str, Any]) -> str:
        return str(cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]["status"])

    assert status(made) == "available"
    assert status(lost) == "error"
    cloud.wait_gone(f"/v3/volumes/{doomed['id']}")
    assert not doomed_file.exists()
    assert status(growing) == "error_extending"
    assert status(unplaced) == "error"
    assert row(cloud, tables.Volume, lost["id"]).error_reason.startswith("recovered after restart")
    assert in_use(cloud, "volumes") == 4 and in_use(cloud, "gigabytes") == 4
    # Everything recovered can be deleted normally.
    for volume in (made, lost, growing, unplaced):
        assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
        cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


def test_transient_snapshots_and_attachments(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    volume = cloud.create_volume(1)
    creating = snapshot(cloud, volume["id"])
    deleting = snapshot(cloud, volume["id"])
    restoring = snapshot(cloud, volume["id"])
    other = cloud.create_volume(1)
    attach = {"os-attach": {"host_name": "node1", "mountpoint": "/dev/vdb"}}
    assert cloud.request("POST", f"/v3/volumes/{other['id']}/action", json=attach).status_code == 202
    completed = snapshot(cloud, volume["id"])
    with cloud.running.core.db.write() as session:
        for snap, state in ((creating, "creating"), (completed, "creating"), (deleting, "deleting"),
                            (restoring, "restoring")):
            session.get(tables.Snapshot, snap["id"]).status = state
        Path(session.get(tables.Snapshot, creating["id"]).provider_location).unlink()  # never published
    set_volume(cloud, volume["id"], status="reverting")
    set_volume(cloud, other["id"], status="detaching")

    cloud = restart(make_cloud, cloud)

    assert cloud.request("GET", f"/v3/snapshots/{creating['id']}").json()["snapshot"]["status"] == "error"
    # Its file was complete: the crash came after the copy, before the status was written.
    assert cloud.request("GET", f"/v3/snapshots/{completed['id']}").json()["snapshot"]["status"] == "available"
    cloud.wait_gone(f"/v3/snapshots/{deleting['id']}")
    assert cloud.request("GET", f"/v3/snapshots/{restoring['id']}").json()["snapshot"]["status"] == "available"
    assert cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]["status"] == "error"
    shown = cloud.request("GET", f"/v3/volumes/{other['id']}").json()["volume"]
    assert shown["status"] == "in-use" and len(shown["attachments"]) == 1
    assert in_use(cloud, "snapshots") == 3


def test_storage_and_rows_are_reconciled(make_cloud: Callable[..., Cloud]) -> None:
    """Files with no row are removed; rows whose storage vanished say so; a completed extend is kept."""
    cloud = make_cloud("", state="same")
    kept, lost, grown, reserved, detaching = (cloud.create_volume(1) for _ in range(5))
    snap = snapshot(cloud, kept["id"])
    pool = file_of(cloud, kept["id"]).parent
    orphan_volume, orphan_snapshot = pool / "volume-0ddba11-orphan", pool / "snapshot-0ddba11-orphan"
    for orphan in (orphan_volume, orphan_snapshot):
        orphan.write_bytes(b"left by a crash")
    file_of(cloud, lost["id"]).unlink()
    os.truncate(file_of(cloud, grown["id"]), 3 << 30)  # the driver finished; the row was not written
    set_volume(cloud, grown["id"], status="extending", previous_status="available")
    set_volume(cloud, reserved["id"], status="attaching")
    set_volume(cloud, detaching["id"], status="detaching")

    cloud = restart(make_cloud, cloud)

    def shown(volume: dict[str, Any]) -> dict[str, Any]:
        return dict(cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"])

    assert not orphan_volume.exists() and not orphan_snapshot.exists()
    assert shown(kept)["status"] == "available" and file_of(cloud, kept["id"]).is_file()
    assert cloud.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"
    assert shown(lost)["status"] == "error"
    assert row(cloud, tables.Volume, lost["id"]).error_reason == "recovered after restart: its storage is missing"
    assert (shown(grown)["status"], shown(grown)["size"]) == ("available", 3)
    assert shown(reserved)["status"] == "available"  # a reservation that died with the process
    assert shown(detaching)["status"] == "available"  # no attachment left: detached


def test_restart_keeps_settled_volumes(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    volume = cloud.create_volume(1, name="keep", metadata={"k": "v"})
    cloud = restart(make_cloud, cloud)
    shown = cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]
    assert shown["status"] == "available" and shown["metadata"] == {"k": "v"}
    assert file_of(cloud, volume["id"]).is_file()
