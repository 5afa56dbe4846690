"""Freeze and thaw: a frozen backend has a read-only control plane, exactly as Cinder lists it.

Blocked: creates (no backend is offered), clones and creates from snapshots, extend, volume delete,
snapshot create and delete, group delete, group member changes, group create-from-src, group
snapshot create and delete. Still allowed: attach, detach, connections, metadata, rename,
reset-state, reads. `frozen` is only written once the driver agreed.
"""
from __future__ import annotations

from typing import Any

import pytest

from cinderblock.volume.drivers.fake import FakeDriver
from tests.api.helpers import action, assert_fault, snapshot
from tests.api.test_groups import make_group, make_group_type, make_type, ok
from tests.conftest import Cloud

FROZEN = "Modification operations are not allowed on frozen storage backends."


def host_of(cloud: Cloud) -> str:
    return str(cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"][0]["host"])


def service(cloud: Cloud) -> dict[str, Any]:
    return dict(cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"][0])


def freeze(cloud: Cloud, verb: str = "freeze") -> Any:
    return cloud.request("PUT", f"/v3/os-services/{verb}", json={"host": host_of(cloud)})


def driver(cloud: Cloud) -> FakeDriver:
    (volume_service,) = cloud.running.volume_services
    assert isinstance(volume_service.manager.driver, FakeDriver)
    return volume_service.manager.driver


@pytest.fixture
def world(fake_cloud: Cloud) -> tuple[Cloud, dict[str, Any]]:
    """Before the freeze: a volume with a snapshot, a group with a member and a group snapshot."""
    cloud = fake_cloud
    make_type(cloud, "gold")
    make_group_type(cloud, "gt1")  # generic: the fake takes member snapshots one by one
    volume = cloud.create_volume(1, volume_type="gold")
    snap = snapshot(cloud, volume["id"])
    group = make_group(cloud, ["gold"])
    member = cloud.create_volume(1, volume_type="gold", group_id=group["id"])
    loose = cloud.create_volume(1, volume_type="gold")
    gsnap = ok(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {"group_id": group["id"]}}))
    gsnap_id = gsnap["group_snapshot"]["id"]
    cloud._wait(f"/v3/group_snapshots/{gsnap_id}", "group_snapshot", ("available",), 10.0)
    return cloud, {"volume": volume, "snapshot": snap, "group": group, "member": member, "loose": loose,
                   "group_snapshot": gsnap_id}


def test_freeze_blocks_exactly_the_listed_operations(world: tuple[Cloud, dict[str, Any]]) -> None:
    cloud, made = world
    volume_id, group_id = made["volume"]["id"], made["group"]["id"]
    response = freeze(cloud)
    assert (response.status_code, response.content) == (200, b"")
    row = service(cloud)
    assert (row["frozen"], row["status"], row["disabled_reason"]) == (True, "disabled", "frozen")

    blocked = {
        "volume delete": cloud.request("DELETE", f"/v3/volumes/{volume_id}"),
        "extend": action(cloud, volume_id, {"os-extend": {"new_size": 2}}),
        "snapshot create": cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume_id}}),
        "snapshot delete": cloud.request("DELETE", f"/v3/snapshots/{made['snapshot']['id']}"),
        "clone": cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "source_volid": volume_id}}),
        "from snapshot": cloud.request("POST", "/v3/volumes", json={"volume": {
            "size": 1, "snapshot_id": made["snapshot"]["id"]}}),
        "group delete": cloud.request("POST", f"/v3/groups/{group_id}/action",
                                      json={"delete": {"delete-volumes": True}}),
        "group member add": cloud.request("PUT", f"/v3/groups/{group_id}",
                                          json={"group": {"add_volumes": made["loose"]["id"]}}),
        "group snapshot create": cloud.request("POST", "/v3/group_snapshots",
                                               json={"group_snapshot": {"group_id": group_id}}),
        "group snapshot delete": cloud.request("DELETE", f"/v3/group_snapshots/{made['group_snapshot']}"),
        "group from group": cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
            "source_group_id": group_id}}),
        "group from group snapshot": cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
            "group_snapshot_id": made["group_snapshot"]}}),
    }
    for name, refused in blocked.items():
        assert refused.status_code == 400, f"{name}: {refused.status_code} {refused.text}"
        assert FROZEN in refused.text, f"{name}: {refused.text}"
    # A plain create finds no backend: the scheduler offers none that is frozen.
    assert cloud.create_volume(1, volume_type="gold")["status"] == "error"

    # Everything else goes on.
    assert action(cloud, volume_id, {"os-reserve": None}).status_code == 202
    connection = action(cloud, volume_id, {"os-initialize_connection": {"connector": {"host": "c1"}}})
    assert connection.status_code == 200, connection.text
    attached = action(cloud, volume_id, {"os-attach": {"instance_uuid": "4c8e3a0e-1111-4222-8333-944455556666",
                                                       "mountpoint": "/dev/vdb"}})
    assert attached.status_code == 202, attached.text
    assert cloud.request("GET", f"/v3/volumes/{volume_id}").json()["volume"]["status"] == "in-use"
    assert action(cloud, volume_id, {"os-detach": {}}).status_code == 202
    assert cloud.request("GET", f"/v3/volumes/{volume_id}").json()["volume"]["status"] == "available"
    assert cloud.request("POST", f"/v3/volumes/{volume_id}/metadata",
                         json={"metadata": {"k": "v"}}).status_code == 200
    assert cloud.request("PUT", f"/v3/volumes/{volume_id}", json={"volume": {"name": "renamed"}}).status_code == 200
    assert cloud.request("PUT", f"/v3/snapshots/{made['snapshot']['id']}",
                         json={"snapshot": {"name": "s-renamed"}}).status_code == 200
    assert action(cloud, made["loose"]["id"], {"os-reset_status": {"status": "available"}}).status_code == 202
    assert cloud.request("GET", "/v3/volumes/detail").status_code == 200

    # Thaw: the control plane is back.
    assert freeze(cloud, "thaw").status_code == 200
    row = service(cloud)
    assert (row["frozen"], row["status"], row["disabled_reason"]) == (False, "enabled", None)
    assert cloud.request("DELETE", f"/v3/snapshots/{made['snapshot']['id']}").status_code == 202
    cloud.wait_gone(f"/v3/snapshots/{made['snapshot']['id']}")
    assert cloud.create_volume(1, volume_type="gold")["status"] == "available"


def test_freeze_and_thaw_refusals(fake_cloud: Cloud) -> None:
    cloud = fake_cloud
    assert_fault(freeze(cloud, "thaw"), 400, "badRequest", contains="must be True")
    assert freeze(cloud).status_code == 200
    assert_fault(freeze(cloud), 400, "badRequest", contains="frozen in [True] must be False")
    assert_fault(cloud.request("PUT", "/v3/os-services/freeze", json={"host": "nowhere@x"}), 400, "badRequest",
                 contains="No service found with host=nowhere@x")
    assert_fault(cloud.request("PUT", "/v3/os-services/freeze", json={}), 400, "badRequest",
                 contains="Host field is missing.")
    member = cloud.request("PUT", "/v3/os-services/thaw", json={"host": host_of(cloud)},
                           headers={"X-Auth-Token": "u:p:member"})
    assert member.status_code == 403


def test_frozen_is_written_only_once_the_driver_agreed(fake_cloud: Cloud) -> None:
    cloud = fake_cloud
    driver(cloud).fail_next("freeze_backend")
    assert_fault(freeze(cloud), 400, "badRequest", contains="Backend reported error during freeze_host operation")
    row = service(cloud)
    assert (row["frozen"], row["status"]) == (False, "enabled")
    assert freeze(cloud).status_code == 200
    driver(cloud).fail_next("thaw_backend")
    assert_fault(freeze(cloud, "thaw"), 400, "badRequest", contains="Backend reported error during thaw_host operation")
    row = service(cloud)
    assert (row["frozen"], row["status"], row["disabled_reason"]) == (True, "disabled", "frozen")
    assert freeze(cloud, "thaw").status_code == 200
    assert service(cloud)["frozen"] is False
