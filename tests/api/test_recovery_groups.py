"""Restart recovery of what issue 12 §4 found left behind: groups and group snapshots in transient
states, and an interrupted extend's quota charge (file driver, embedded, SQLite)."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cinderblock.db import tables
from cinderblock.db.repos import quotas
from tests.api.helpers import in_use, set_volume
from tests.api.test_recovery import file_of, restart, row
from tests.conftest import Cloud

GiB = 1024**3


def ok(response: Any, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def charge(cloud: Cloud, gigabytes: int) -> None:
    """What the domain's extend claim charged (the crash came before the volume service ran)."""
    with cloud.running.core.db.write() as session:
        quotas.consume(session, "admin", {"gigabytes": gigabytes, "gigabytes___DEFAULT__": gigabytes}, {})


def test_interrupted_extend_is_finished_on_restart(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status="extending", previous_status="available", requested_size=3)
    charge(cloud, 2)
    assert in_use(cloud, "gigabytes") == 3

    cloud = restart(make_cloud, cloud)

    shown = cloud.wait_volume(volume["id"], "available", "error_extending")
    assert (shown["status"], shown["size"]) == ("available", 3)
    assert file_of(cloud, volume["id"]).stat().st_size == 3 * GiB
    assert in_use(cloud, "gigabytes") == 3  # charged once, and kept: the volume has it
    assert row(cloud, tables.Volume, volume["id"]).requested_size is None


def test_interrupted_extend_that_already_happened_keeps_its_charge(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    volume = cloud.create_volume(1)
    os.truncate(file_of(cloud, volume["id"]), 2 * GiB)  # the driver finished; the row was not written
    set_volume(cloud, volume["id"], status="extending", previous_status="available", requested_size=2)
    charge(cloud, 1)

    cloud = restart(make_cloud, cloud)

    shown = cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]
    assert (shown["status"], shown["size"]) == ("available", 2)
    assert in_use(cloud, "gigabytes") == 2


def test_interrupted_extend_that_cannot_finish_gives_the_charge_back(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    volume = cloud.create_volume(1)
    file_of(cloud, volume["id"]).unlink()  # the extend cannot run again
    set_volume(cloud, volume["id"], status="extending", previous_status="available", requested_size=4)
    charge(cloud, 3)

    cloud = restart(make_cloud, cloud)

    shown = cloud.wait_volume(volume["id"], "error_extending", "available")
    assert (shown["status"], shown["size"]) == ("error_extending", 1)
    assert in_use(cloud, "gigabytes") == 1  # only what the row holds
    ok(cloud.request("DELETE", f"/v3/volumes/{volume['id']}"))
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(cloud, "gigabytes") == 0


def _typed(cloud: Cloud) -> tuple[str, str]:
    type_id = ok(cloud.request("POST", "/v3/types", json={"volume_type": {"name": "t1"}}), 200)["volume_type"]["id"]
    group_type = ok(cloud.request("POST", "/v3/group_types", json={"group_type": {
        "name": "gt1", "group_specs": {"consistent_group_snapshot_enabled": "<is> True"}}}))["group_type"]["id"]
    return type_id, group_type


def _group(cloud: Cloud, type_id: str, group_type: str, members: int) -> tuple[str, list[str]]:
    group_id = ok(cloud.request("POST", "/v3/groups", json={"group": {
        "group_type": group_type, "volume_types": [type_id]}}))["group"]["id"]
    cloud._wait(f"/v3/groups/{group_id}", "group", ("available",), 10)
    volumes = [cloud.create_volume(1, volume_type=type_id, group_id=group_id)["id"] for _ in range(members)]
    return group_id, volumes


def _group_snapshot(cloud: Cloud, group_id: str) -> tuple[str, list[str]]:
    ident = ok(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {"group_id": group_id}}))[
        "group_snapshot"]["id"]
    cloud._wait(f"/v3/group_snapshots/{ident}", "group_snapshot", ("available",), 10)
    with cloud.running.core.db.read() as session:
        members = [s.id for s in session.query(tables.Snapshot).filter_by(group_snapshot_id=ident)]
    return ident, members


def _set(cloud: Cloud, table: Any, ident: str, **values: Any) -> None:
    with cloud.running.core.db.write() as session:
        item = session.get(table, ident)
        for key, value in values.items():
            setattr(item, key, value)


def test_transient_groups_and_group_snapshots_reach_end_states(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("", state="same")
    type_id, group_type = _typed(cloud)
    creating, _ = _group(cloud, type_id, group_type, 0)
    updating, _ = _group(cloud, type_id, group_type, 1)
    doomed, doomed_members = _group(cloud, type_id, group_type, 2)
    failed, failed_members = _group(cloud, type_id, group_type, 1)
    snapped, _ = _group(cloud, type_id, group_type, 2)
    complete, complete_members = _group_snapshot(cloud, snapped)
    torn, torn_members = _group_snapshot(cloud, snapped)
    going, going_members = _group_snapshot(cloud, snapped)
    assert in_use(cloud, "snapshots") == 6 and in_use(cloud, "groups") == 5
    # The crash: a create and an update whose outcome was never written; a group delete and three
    # group snapshot operations cut short (one snapshot file never published).
    _set(cloud, tables.Group, creating, status="creating")
    _set(cloud, tables.Group, updating, status="updating")
    _set(cloud, tables.Group, failed, status="creating")
    set_volume(cloud, failed_members[0], status="creating")
    file_of(cloud, failed_members[0]).unlink()
    _set(cloud, tables.Group, doomed, status="deleting")
    for volume_id in doomed_members:
        set_volume(cloud, volume_id, status="deleting")
    doomed_files = [file_of(cloud, v) for v in doomed_members]
    for ident, members in ((complete, complete_members), (torn, torn_members)):
        _set(cloud, tables.GroupSnapshot, ident, status="creating")
        for snapshot_id in members:
            _set(cloud, tables.Snapshot, snapshot_id, status="creating")
    with cloud.running.core.db.read() as session:
        Path(session.get(tables.Snapshot, torn_members[0]).provider_location).unlink()
    _set(cloud, tables.GroupSnapshot, going, status="deleting")
    for snapshot_id in going_members:
        _set(cloud, tables.Snapshot, snapshot_id, status="deleting")

    cloud = restart(make_cloud, cloud)

    def status(kind: str, ident: str) -> str:
        return str(ok(cloud.request("GET", f"/v3/{kind}s/{ident}"), 200)[kind]["status"])

    assert status("group", creating) == "available"
    assert status("group", updating) == "available"
    assert status("group", failed) == "error"
    assert row(cloud, tables.Group, failed).error_reason.startswith("recovered after restart")
    cloud.wait_gone(f"/v3/groups/{doomed}")
    assert not any(path.exists() for path in doomed_files)
    assert status("group_snapshot", complete) == "available"
    assert {status("snapshot", s) for s in complete_members} == {"available"}
    assert status("group_snapshot", torn) == "error"
    assert status("snapshot", torn_members[0]) == "error"
    cloud.wait_gone(f"/v3/group_snapshots/{going}")
    assert all(cloud.request("GET", f"/v3/snapshots/{s}").status_code == 404 for s in going_members)
    # Quota usage is what the rows hold.
    assert in_use(cloud, "groups") == 4 and in_use(cloud, "snapshots") == 4
    assert in_use(cloud, "volumes") == 4 and in_use(cloud, "gigabytes") == 4 + 4
