"""Volume actions against the state machine (reference §4.2, §5, §8.7)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import action, assert_fault, headers, in_use, set_volume, snapshot
from tests.conftest import Cloud

INSTANCE = "6b1e0f5c-0000-4000-8000-00000000beef"
DELETE_REFUSED = ("Invalid volume: Volume status must be available or error or error_restoring or error_extending "
                  "or error_managing and must not be migrating, attached, belong to a group, have snapshots, "
                  "awaiting a transfer, or be disassociated from snapshots after volume transfer.")


def attach(cloud: Cloud, volume_id: str, **extra: Any) -> Any:
    body = {"os-attach": {"instance_uuid": INSTANCE, "mountpoint": "/dev/vdb", "mode": "rw", **extra}}
    return action(cloud, volume_id, body)


def reset(cloud: Cloud, volume_id: str, **values: Any) -> Any:
    return action(cloud, volume_id, {"os-reset_status": values})


def status(cloud: Cloud, volume_id: str) -> str:
    return str(cloud.request("GET", f"/v3/volumes/{volume_id}").json()["volume"]["status"])


def attached_volume(cloud: Cloud) -> dict[str, Any]:
    volume = cloud.create_volume(1)
    assert attach(cloud, volume["id"]).status_code == 202
    return cloud.wait_volume(volume["id"], "in-use")


# --- extend ----------------------------------------------------------------------------------
def test_extend_available(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert action(cloud, volume["id"], {"os-extend": {"new_size": 3}}).status_code == 202
    done = cloud.wait_volume(volume["id"], "available")
    assert done["size"] == 3 and in_use(cloud, "gigabytes") == 3


def test_extend_in_use_needs_3_42(cloud: Cloud) -> None:
    volume = attached_volume(cloud)
    refused = action(cloud, volume["id"], {"os-extend": {"new_size": 2}}, version="3.41")
    assert_fault(refused, 400, "badRequest", contains="in-use")
    assert in_use(cloud, "gigabytes") == 1
    assert action(cloud, volume["id"], {"os-extend": {"new_size": 2}}, version="3.42").status_code == 202
    assert cloud._wait(f"/v3/volumes/{volume['id']}", "volume", ("in-use",), 10)["size"] == 2
    done = cloud.wait_volume(volume["id"], "in-use")
    assert done["attachments"] and done["size"] == 2


@pytest.mark.parametrize("state", ["error", "creating", "deleting", "error_extending", "attaching",
                                   "reserved", "maintenance"])
def test_extend_refused_in_other_states(cloud: Cloud, state: str) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status=state)
    assert_fault(action(cloud, volume["id"], {"os-extend": {"new_size": 2}}), 400, "badRequest",
                 contains="Volume status must be")
    assert status(cloud, volume["id"]) == state and in_use(cloud, "gigabytes") == 1


# --- reserve / unreserve / attach / detach ---------------------------------------------------
def test_reserve_unreserve(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    assert action(cloud, vid, {"os-reserve": {}}).status_code == 202
    assert status(cloud, vid) == "attaching"
    assert_fault(action(cloud, vid, {"os-reserve": {}}), 400, "badRequest", contains="attaching")
    assert action(cloud, vid, {"os-unreserve": {}}).status_code == 202
    assert status(cloud, vid) == "available"
    assert action(cloud, vid, {"os-unreserve": {}}).status_code == 202  # silent no-op
    assert status(cloud, vid) == "available"


def test_reserve_then_attach_then_detach(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    assert action(cloud, vid, {"os-reserve": None}).status_code == 202
    assert attach(cloud, vid).status_code == 202
    shown = cloud.request("GET", f"/v3/volumes/{vid}").json()["volume"]
    assert shown["status"] == "in-use"
    [entry] = shown["attachments"]
    assert entry["id"] == vid and entry["volume_id"] == vid and entry["server_id"] == INSTANCE
    assert entry["device"] == "/dev/vdb" and entry["attachment_id"] and entry["attached_at"]
    assert "host_name" in entry
    listed = cloud.request("GET", "/v3/volumes/detail").json()["volumes"][0]
    assert listed["attachments"] == shown["attachments"]
    # A second attach of a non-multiattach volume is refused; reserve too.
    assert_fault(attach(cloud, vid), 400, "badRequest")
    assert_fault(action(cloud, vid, {"os-reserve": {}}), 400, "badRequest")
    assert_fault(action(cloud, vid, {"os-detach": {"attachment_id": "nope"}}), 404, "itemNotFound")
    assert action(cloud, vid, {"os-detach": {"attachment_id": entry["attachment_id"]}}).status_code == 202
    shown = cloud.request("GET", f"/v3/volumes/{vid}").json()["volume"]
    assert shown["status"] == "available" and shown["attachments"] == []


def test_attach_needs_instance_or_host(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert_fault(action(cloud, volume["id"], {"os-attach": {"mountpoint": "/dev/vdb"}}), 400, "badRequest")
    assert_fault(attach(cloud, volume["id"], mode="rx"), 400, "badRequest", contains="rx")
    assert action(cloud, volume["id"], {"os-attach": {"host_name": "node1", "mountpoint": "/mnt"}}).status_code == 202
    entry = cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]["attachments"][0]
    assert entry["host_name"] == "node1" and entry["server_id"] is None


def test_readonly_volume_needs_ro_attach(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert action(cloud, volume["id"], {"os-update_readonly_flag": {"readonly": True}}).status_code == 202
    assert_fault(attach(cloud, volume["id"]), 400, "badRequest", contains="read-only")
    assert attach(cloud, volume["id"], mode="ro").status_code == 202


def test_begin_and_roll_detaching(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    assert_fault(action(cloud, vid, {"os-begin_detaching": {}}), 400, "badRequest", contains="in-use")
    assert action(cloud, vid, {"os-roll_detaching": {}}).status_code == 202  # no-op when not detaching
    assert status(cloud, vid) == "available"
    assert attach(cloud, vid).status_code == 202
    assert action(cloud, vid, {"os-begin_detaching": {}}).status_code == 202
    assert status(cloud, vid) == "detaching"
    assert_fault(action(cloud, vid, {"os-begin_detaching": {}}), 400, "badRequest")
    assert action(cloud, vid, {"os-roll_detaching": None}).status_code == 202
    assert status(cloud, vid) == "in-use"
    assert action(cloud, vid, {"os-begin_detaching": {}}).status_code == 202
    assert action(cloud, vid, {"os-detach": None}).status_code == 202
    assert status(cloud, vid) == "available"


def test_detach_when_not_attached(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert_fault(action(cloud, volume["id"], {"os-detach": {}}), 400, "badRequest")


def test_terminate_connection_unreserves(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    connector = {"host": "node1", "initiator": "iqn.1993-08.org.debian:01:abc"}
    info = action(cloud, volume["id"], {"os-initialize_connection": {"connector": connector}})
    assert info.status_code == 200 and "connection_info" in info.json()
    assert action(cloud, volume["id"], {"os-reserve": {}}).status_code == 202
    assert action(cloud, volume["id"], {"os-terminate_connection": {"connector": connector}}).status_code == 202
    assert status(cloud, volume["id"]) == "available"


# --- reset-state -----------------------------------------------------------------------------
def test_reset_state_rules(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    assert reset(cloud, vid, status="error").status_code == 202
    assert status(cloud, vid) == "error"
    assert_fault(reset(cloud, vid, status="in-use"), 400, "badRequest", contains="in-use")
    assert_fault(reset(cloud, vid, status="deleting"), 400, "badRequest", contains="deleting")
    assert_fault(reset(cloud, vid, status="bogus"), 400, "badRequest", contains="bogus")
    assert_fault(reset(cloud, vid, attach_status="attaching"), 400, "badRequest")
    assert_fault(reset(cloud, vid, migration_status="flying"), 400, "badRequest")
    assert_fault(action(cloud, vid, {"os-reset_status": {}}), 400, "badRequest")
    assert reset(cloud, vid, status="available", migration_status="none").status_code == 202
    shown = cloud.request("GET", f"/v3/volumes/{vid}").json()["volume"]
    assert shown["status"] == "available" and shown["migration_status"] is None
    member = action(cloud, vid, {"os-reset_status": {"status": "error"}}, token="u:admin:member")
    assert_fault(member, 403, "forbidden")


def test_reset_attach_status_detached_clears_attachments(cloud: Cloud) -> None:
    volume = attached_volume(cloud)
    vid = volume["id"]
    assert reset(cloud, vid, status="in-use").status_code == 202  # has an attachment
    assert reset(cloud, vid, status="available", attach_status="detached").status_code == 202
    shown = cloud.request("GET", f"/v3/volumes/{vid}").json()["volume"]
    assert shown["status"] == "available" and shown["attachments"] == []
    assert cloud.request("DELETE", f"/v3/volumes/{vid}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{vid}")


# --- delete ----------------------------------------------------------------------------------
@pytest.mark.parametrize("state", ["available", "error", "error_restoring", "error_extending", "error_managing"])
def test_delete_allowed_states(cloud: Cloud, state: str) -> None:
    volume = cloud.create_volume(2)
    set_volume(cloud, volume["id"], status=state)
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


@pytest.mark.parametrize("state", ["creating", "deleting", "extending", "attaching", "detaching", "reserved",
                                   "error_deleting", "maintenance", "reverting", "uploading"])
def test_delete_refused_states(cloud: Cloud, state: str) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status=state)
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{volume['id']}"), 400, "badRequest", DELETE_REFUSED)
    assert status(cloud, volume["id"]) == state


def test_delete_attached_refused_even_forced(cloud: Cloud) -> None:
    volume = attached_volume(cloud)
    vid = volume["id"]
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}"), 400, "badRequest", DELETE_REFUSED)
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}?force=true"), 400, "badRequest", DELETE_REFUSED)
    assert_fault(action(cloud, vid, {"os-force_delete": {}}), 400, "badRequest", DELETE_REFUSED)
    assert status(cloud, vid) == "in-use"


def test_delete_migrating_refused(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], migration_status="migrating")
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{volume['id']}"), 400, "badRequest", DELETE_REFUSED)


def test_delete_with_snapshots_and_cascade(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    snaps = [snapshot(cloud, vid)["id"] for _ in range(2)]
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}"), 400, "badRequest", DELETE_REFUSED)
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}?cascade=false"), 400, "badRequest")
    assert in_use(cloud, "snapshots") == 2
    assert cloud.request("DELETE", f"/v3/volumes/{vid}?cascade=true").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{vid}")
    for snap in snaps:
        assert cloud.request("GET", f"/v3/snapshots/{snap}").status_code == 404
    assert in_use(cloud, "snapshots") == 0 and in_use(cloud, "gigabytes") == 0 and in_use(cloud, "volumes") == 0


def test_cascade_refused_with_busy_snapshot(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"])
    assert cloud.request("POST", f"/v3/snapshots/{snap['id']}/action",
                         json={"os-reset_status": {"status": "creating"}}).status_code == 202
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{volume['id']}?cascade=true"), 400, "badRequest")


def test_force_delete(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    set_volume(cloud, vid, status="error_deleting")
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}"), 400, "badRequest")
    # `force` is ignored below 3.23.
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{vid}?force=true", headers=headers("3.22")), 400,
                 "badRequest")
    assert cloud.request("DELETE", f"/v3/volumes/{vid}?force=true", headers=headers("3.23")).status_code == 202
    cloud.wait_gone(f"/v3/volumes/{vid}")
    other = cloud.create_volume(1)
    set_volume(cloud, other["id"], status="extending")
    member = action(cloud, other["id"], {"os-force_delete": {}}, token="u:admin:member")
    assert_fault(member, 403, "forbidden")
    assert action(cloud, other["id"], {"os-force_delete": None}).status_code == 202
    cloud.wait_gone(f"/v3/volumes/{other['id']}")
    assert in_use(cloud, "volumes") == 0


def test_force_delete_refused_while_deleting(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status="deleting")
    assert_fault(action(cloud, volume["id"], {"os-force_delete": {}}), 400, "badRequest")


def test_unscheduled_volume_deletes_in_any_status(cloud: Cloud) -> None:
    volume = cloud.create_volume(3)
    set_volume(cloud, volume["id"], host=None, status="creating")
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    assert cloud.request("GET", f"/v3/volumes/{volume['id']}").status_code == 404
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


# --- revert ----------------------------------------------------------------------------------
def test_revert_rules(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    other = cloud.create_volume(1)
    other_snap = snapshot(cloud, other["id"])
    assert_fault(action(cloud, vid, {"revert": {"snapshot_id": other_snap["id"]}}), 400, "badRequest")
    first = snapshot(cloud, vid)
    second = snapshot(cloud, vid)
    assert_fault(action(cloud, vid, {"revert": {"snapshot_id": first["id"]}}), 400, "badRequest",
                 contains="latest")
    assert_fault(action(cloud, vid, {"revert": {"snapshot_id": other_snap["id"]}}), 400, "badRequest")
    assert_fault(action(cloud, vid, {"revert": {}}), 400, "badRequest", contains="snapshot_id")
    # Wrong volume state: 409.
    set_volume(cloud, vid, status="error")
    assert_fault(action(cloud, vid, {"revert": {"snapshot_id": second["id"]}}), 409, "conflictingRequest")
    set_volume(cloud, vid, status="available")
    # Wrong snapshot state: 409, and the volume is left as it was.
    cloud.request("POST", f"/v3/snapshots/{second['id']}/action", json={"os-reset_status": {"status": "error"}})
    assert_fault(action(cloud, vid, {"revert": {"snapshot_id": second["id"]}}), 409, "conflictingRequest")
    assert status(cloud, vid) == "available"
    cloud.request("POST", f"/v3/snapshots/{second['id']}/action", json={"os-reset_status": {"status": "available"}})
    assert action(cloud, vid, {"revert": {"snapshot_id": second["id"]}}).status_code == 202
    assert cloud.wait_volume(vid, "available")["status"] == "available"
    assert cloud.wait_snapshot(second["id"], "available")["status"] == "available"


def test_revert_sizes_differ(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"])
    assert action(cloud, volume["id"], {"os-extend": {"new_size": 2}}).status_code == 202
    cloud.wait_volume(volume["id"], "available")
    assert_fault(action(cloud, volume["id"], {"revert": {"snapshot_id": snap["id"]}}), 400, "badRequest",
                 contains="size")


def test_revert_without_snapshots(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    unknown = "00000000-0000-4000-8000-000000000001"
    response = action(cloud, volume["id"], {"revert": {"snapshot_id": unknown}})
    assert response.status_code in (400, 404)


# --- update / flags --------------------------------------------------------------------------
def test_update_in_maintenance_refused(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status="maintenance")
    assert_fault(cloud.request("PUT", f"/v3/volumes/{volume['id']}", json={"volume": {"name": "x"}}), 400,
                 "badRequest")


def test_set_bootable_is_200(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert action(cloud, volume["id"], {"os-set_bootable": {"bootable": "yes"}}).status_code == 200
    assert cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]["bootable"] == "true"
    assert_fault(action(cloud, volume["id"], {"os-set_bootable": {"bootable": "maybe"}}), 400, "badRequest")
