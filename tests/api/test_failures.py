"""Driver failures end in the defined error states, never stuck in a transient one (reference §5)."""
from __future__ import annotations

from typing import Any

from cinderblock.volume.drivers.fake import FakeDriver
from tests.api.helpers import action, assert_fault, in_use, snapshot
from tests.conftest import Cloud


def driver(cloud: Cloud) -> FakeDriver:
    fake = cloud.running.volume_services[0].manager.driver
    assert isinstance(fake, FakeDriver)
    return fake


def create(cloud: Cloud, size: int = 1) -> dict[str, Any]:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": size}})
    assert response.status_code == 202, response.text
    return cloud.wait_volume(response.json()["volume"]["id"], "available", "error")


def test_create_failure_ends_in_error_and_can_be_deleted(fake_cloud: Cloud) -> None:
    driver(fake_cloud).fail_next("create_volume")
    volume = create(fake_cloud, 2)
    assert volume["status"] == "error"
    assert in_use(fake_cloud, "volumes") == 1 and in_use(fake_cloud, "gigabytes") == 2
    assert fake_cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    fake_cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(fake_cloud, "volumes") == 0 and in_use(fake_cloud, "gigabytes") == 0
    # The backend still works afterwards.
    assert create(fake_cloud)["status"] == "available"


def test_clone_failure_ends_in_error(fake_cloud: Cloud) -> None:
    source = create(fake_cloud)
    driver(fake_cloud).fail_next("create_cloned_volume")
    response = fake_cloud.request("POST", "/v3/volumes", json={"volume": {"source_volid": source["id"]}})
    assert response.status_code == 202
    clone = fake_cloud.wait_volume(response.json()["volume"]["id"], "available", "error")
    assert clone["status"] == "error"
    assert fake_cloud.wait_volume(source["id"], "available")["status"] == "available"


def test_delete_failure_ends_in_error_deleting(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud)
    driver(fake_cloud).fail_next("delete_volume")
    assert fake_cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    assert fake_cloud.wait_volume(volume["id"], "error_deleting")["status"] == "error_deleting"
    assert in_use(fake_cloud, "volumes") == 1  # still held until the volume is really gone
    # A plain delete is refused; force-delete retries.
    assert fake_cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 400
    assert action(fake_cloud, volume["id"], {"os-force_delete": {}}).status_code == 202
    fake_cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(fake_cloud, "volumes") == 0


def test_extend_failure_gives_quota_back(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud, 2)
    driver(fake_cloud).fail_next("extend_volume")
    assert action(fake_cloud, volume["id"], {"os-extend": {"new_size": 5}}).status_code == 202
    failed = fake_cloud.wait_volume(volume["id"], "error_extending")
    assert failed["size"] == 2
    assert in_use(fake_cloud, "gigabytes") == 2
    # error_extending may be deleted (reference §4.2), which gives back the rest.
    assert fake_cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    fake_cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(fake_cloud, "gigabytes") == 0


def test_in_use_extend_failure(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud, 1)
    assert action(fake_cloud, volume["id"], {"os-attach": {"host_name": "h", "mountpoint": "/m"}}).status_code == 202
    driver(fake_cloud).fail_next("extend_volume")
    assert action(fake_cloud, volume["id"], {"os-extend": {"new_size": 3}}).status_code == 202
    assert fake_cloud.wait_volume(volume["id"], "error_extending")["size"] == 1
    assert in_use(fake_cloud, "gigabytes") == 1


def test_snapshot_failure_ends_in_error(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud, 2)
    driver(fake_cloud).fail_next("create_snapshot")
    snap = snapshot(fake_cloud, volume["id"])
    assert snap["status"] == "error"
    assert fake_cloud.wait_volume(volume["id"], "available")["status"] == "available"
    assert fake_cloud.request("DELETE", f"/v3/snapshots/{snap['id']}").status_code == 202
    fake_cloud.wait_gone(f"/v3/snapshots/{snap['id']}")
    assert in_use(fake_cloud, "snapshots") == 0 and in_use(fake_cloud, "gigabytes") == 2


def test_snapshot_delete_failure(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud)
    snap = snapshot(fake_cloud, volume["id"])
    driver(fake_cloud).fail_next("delete_snapshot")
    assert fake_cloud.request("DELETE", f"/v3/snapshots/{snap['id']}").status_code == 202
    assert fake_cloud.wait_snapshot(snap["id"], "error_deleting")["status"] == "error_deleting"
    assert in_use(fake_cloud, "snapshots") == 1


def test_revert_failure_sets_volume_error(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud)
    snap = snapshot(fake_cloud, volume["id"])
    driver(fake_cloud).fail_next("revert_to_snapshot")
    assert action(fake_cloud, volume["id"], {"revert": {"snapshot_id": snap["id"]}}).status_code == 202
    assert fake_cloud.wait_volume(volume["id"], "error")["status"] == "error"
    assert fake_cloud.wait_snapshot(snap["id"], "available")["status"] == "available"


def test_cascade_delete_with_failing_snapshot(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud)
    snap = snapshot(fake_cloud, volume["id"])
    driver(fake_cloud).fail_next("delete_snapshot")
    assert fake_cloud.request("DELETE", f"/v3/volumes/{volume['id']}?cascade=true").status_code == 202
    assert fake_cloud.wait_volume(volume["id"], "error_deleting")["status"] == "error_deleting"
    assert fake_cloud.wait_snapshot(snap["id"], "error_deleting")["status"] == "error_deleting"


def test_driver_error_in_a_call_is_a_generic_500(fake_cloud: Cloud) -> None:
    volume = create(fake_cloud)
    driver(fake_cloud).fail_next("initialize_connection")
    response = action(fake_cloud, volume["id"], {"os-initialize_connection": {"connector": {"host": "h"}}})
    assert_fault(response, 500, "computeFault",
                 "The server has either erred or is incapable of performing the requested operation.")
    assert fake_cloud.wait_volume(volume["id"], "available")["status"] == "available"


def test_multiattach_type(fake_cloud: Cloud) -> None:
    """A type with multiattach=<is> True makes multiattach volumes (the fake backend supports them)."""
    created = fake_cloud.request("POST", "/v3/types", json={"volume_type": {
        "name": "multi", "extra_specs": {"multiattach": "<is> True"}}})
    assert created.status_code == 200
    volume = fake_cloud.create_volume(1, volume_type="multi")
    assert volume["status"] == "available" and volume["multiattach"] is True
    vid = volume["id"]
    for server in ("s1", "s2"):
        assert action(fake_cloud, vid, {"os-reserve": None}).status_code == 202
        assert fake_cloud.wait_volume(vid, "attaching")["status"] == "attaching"
        body = {"os-attach": {"instance_uuid": server, "mountpoint": "/dev/vdb"}}
        assert action(fake_cloud, vid, body).status_code == 202
    shown = fake_cloud.wait_volume(vid, "in-use")
    assert sorted(a["server_id"] for a in shown["attachments"]) == ["s1", "s2"]
    assert_fault(action(fake_cloud, vid, {"os-detach": None}), 400, "badRequest")  # which one?
    first = shown["attachments"][0]["attachment_id"]
    assert action(fake_cloud, vid, {"os-detach": {"attachment_id": first}}).status_code == 202
    assert len(fake_cloud.wait_volume(vid, "in-use")["attachments"]) == 1
    assert action(fake_cloud, vid, {"os-detach": None}).status_code == 202
    assert fake_cloud.wait_volume(vid, "available")["attachments"] == []
    # A plain type's volume is not multiattach: a second reserve while in use is refused.
    plain = fake_cloud.create_volume(1)
    assert plain["multiattach"] is False
    assert action(fake_cloud, plain["id"], {"os-attach": {"host_name": "h", "mountpoint": "/m"}}).status_code == 202
    assert_fault(action(fake_cloud, plain["id"], {"os-reserve": None}), 400, "badRequest")


def test_multiattach_type_needs_a_capable_backend(cloud: Cloud) -> None:
    """The file backend reports multiattach False: the scheduler finds no backend."""
    assert cloud.request("POST", "/v3/types", json={"volume_type": {
        "name": "multi", "extra_specs": {"multiattach": "<is> True"}}}).status_code == 200
    assert cloud.create_volume(1, volume_type="multi")["status"] == "error"


def test_unreachable_backend_changes_nothing(cloud: Cloud) -> None:
    """A 503 (the volume service never got the request) leaves statuses and quota as they were."""
    volume = cloud.create_volume(1)
    vid = volume["id"]
    snap = snapshot(cloud, vid)
    before = {k: in_use(cloud, k) for k in ("volumes", "gigabytes", "snapshots")}
    cloud.running.volume_services[0].manager.reporter.stop()
    server = cloud.running.volume_services[0].server
    assert server is not None
    server.stop()  # the service row still looks up: the request is claimed, then cannot be sent
    for method, path, body in [
        ("POST", f"/v3/volumes/{vid}/action", {"os-extend": {"new_size": 3}}),
        ("POST", f"/v3/volumes/{vid}/action", {"revert": {"snapshot_id": snap["id"]}}),
        ("DELETE", f"/v3/snapshots/{snap['id']}", None),
        ("DELETE", f"/v3/volumes/{vid}?cascade=true", None),
    ]:
        response = cloud.request(method, path, json=body)
        assert_fault(response, 503, "serviceUnavailable", contains="is running")
        assert cloud.request("GET", f"/v3/volumes/{vid}").json()["volume"]["status"] == "available"
        assert cloud.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"
        assert {k: in_use(cloud, k) for k in before} == before
    # A create is scheduled to the unreachable backend: it fails instead of staying `creating`.
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1}})
    assert response.status_code == 202
    assert cloud.wait_volume(response.json()["volume"]["id"], "available", "error")["status"] == "error"
