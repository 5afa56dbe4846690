"""Malformed requests: each is refused with the right fault and leaves nothing behind (reference §2, §3)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import action, assert_fault, headers, in_use, volume_ids
from tests.conftest import Cloud

UNKNOWN = "5d6cd9d1-0000-4000-8000-000000000000"


def assert_nothing_created(cloud: Cloud) -> None:
    assert volume_ids(cloud) == []
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


def test_malformed_json(cloud: Cloud) -> None:
    for path in ("/v3/volumes", "/v3/snapshots", "/v3/types"):
        response = cloud.request("POST", path, content=b'{"volume": {"size": 1', headers={
            "Content-Type": "application/json"})
        assert_fault(response, 400, "badRequest", "Malformed request body")
    volume = cloud.create_volume(1)
    response = cloud.request("POST", f"/v3/volumes/{volume['id']}/action", content=b"{nope",
                             headers={"Content-Type": "application/json"})
    assert_fault(response, 400, "badRequest", "Malformed request body")


def test_wrong_content_type_is_415(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", content=b'{"volume": {"size": 1}}',
                             headers={"Content-Type": "text/plain"})
    assert_fault(response, 415, "badMediaType")
    assert_nothing_created(cloud)


def test_vendor_content_type_accepted(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", content=b'{"volume": {"size": 1}}',
                             headers={"Content-Type": "application/vnd.openstack.volume+json"})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("size", [0, -1, "abc", 1.5, True, None, "", "1.0", [1], {"a": 1}])
def test_bad_size(cloud: Cloud, size: Any) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": size}})
    assert_fault(response, 400, "badRequest", contains="size")
    assert_nothing_created(cloud)


def test_size_as_digit_string_accepted(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": "2"}})
    assert response.status_code == 202, response.text
    assert response.json()["volume"]["size"] == 2


@pytest.mark.parametrize("body", [{}, {"volume": None}, {"volume": "x"}, {"volume": []}, [], {"size": 1}])
def test_bad_body_shape(cloud: Cloud, body: Any) -> None:
    response = cloud.request("POST", "/v3/volumes", json=body)
    assert_fault(response, 400, "badRequest")
    assert_nothing_created(cloud)


def test_unknown_keys_tolerated_below_3_53(cloud: Cloud) -> None:
    body = {"volume": {"size": 1, "bogus": 1, "user_id": "x"}}
    assert cloud.request("POST", "/v3/volumes", json=body, headers=headers("3.52")).status_code == 202
    response = cloud.request("POST", "/v3/volumes", json=body, headers=headers("3.53"))
    assert_fault(response, 400, "badRequest", contains="bogus")
    assert len(volume_ids(cloud)) == 1


def test_unknown_update_keys_from_3_53(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    path = f"/v3/volumes/{volume['id']}"
    assert cloud.request("PUT", path, json={"volume": {"name": "a", "x": 1}},
                         headers=headers("3.52")).status_code == 200
    assert_fault(cloud.request("PUT", path, json={"volume": {"name": "a", "x": 1}}, headers=headers("3.53")),
                 400, "badRequest", contains="x")
    assert_fault(cloud.request("PUT", path, json={"volume": {}}, headers=headers("3.53")), 400, "badRequest")


@pytest.mark.parametrize("field", ["name", "description", "display_name"])
def test_name_longer_than_255(cloud: Cloud, field: str) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, field: "n" * 256}})
    assert_fault(response, 400, "badRequest", contains=field)
    assert_nothing_created(cloud)
    assert cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, field: "n" * 255}}).status_code == 202


@pytest.mark.parametrize("metadata", [{"k": 1}, {"": "v"}, ["k"], {"k" * 256: "v"}, {"k": "v" * 256}])
def test_bad_metadata(cloud: Cloud, metadata: Any) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "metadata": metadata}})
    assert_fault(response, 400, "badRequest", contains="metadata")
    assert_nothing_created(cloud)


def test_unknown_volume_type_is_404(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "volume_type": "gold"}})
    assert_fault(response, 404, "itemNotFound", "Volume type gold could not be found.")
    assert_nothing_created(cloud)


def test_multiattach_flag_refused(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "multiattach": True}})
    assert_fault(response, 400, "badRequest", contains="multiattach parameter has been removed")
    assert_nothing_created(cloud)


def test_unknown_source_ids_are_404(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "snapshot_id": UNKNOWN}})
    assert_fault(response, 404, "itemNotFound", f"Snapshot {UNKNOWN} could not be found.")
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "source_volid": UNKNOWN}})
    assert_fault(response, 404, "itemNotFound", f"Volume {UNKNOWN} could not be found.")
    assert_nothing_created(cloud)


def test_size_smaller_than_source(cloud: Cloud) -> None:
    source = cloud.create_volume(2)
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "source_volid": source["id"]}})
    assert_fault(response, 400, "badRequest", contains="size")
    assert volume_ids(cloud) == [source["id"]] and in_use(cloud, "gigabytes") == 2


def test_unknown_availability_zone(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "availability_zone": "mars"}})
    assert_fault(response, 400, "badRequest", contains="mars")
    assert_nothing_created(cloud)


@pytest.mark.parametrize("method,suffix", [("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/metadata"),
                                           ("POST", "/action")])
def test_unknown_volume_is_404(cloud: Cloud, method: str, suffix: str) -> None:
    body: dict[str, Any] | None = {"volume": {"name": "x"}} if method == "PUT" else None
    if suffix == "/action":
        body = {"os-extend": {"new_size": 2}}
    response = cloud.request(method, f"/v3/volumes/{UNKNOWN}{suffix}", json=body)
    assert_fault(response, 404, "itemNotFound", f"Volume {UNKNOWN} could not be found.")


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_unknown_snapshot_and_type_are_404(cloud: Cloud, method: str) -> None:
    assert_fault(cloud.request(method, f"/v3/snapshots/{UNKNOWN}"), 404, "itemNotFound",
                 f"Snapshot {UNKNOWN} could not be found.")
    assert_fault(cloud.request(method, f"/v3/types/{UNKNOWN}"), 404, "itemNotFound")


@pytest.mark.parametrize("body", [{}, {"os-reserve": None, "os-unreserve": None}, [], "os-reserve", None])
def test_action_body_must_have_one_key(cloud: Cloud, body: Any) -> None:
    volume = cloud.create_volume(1)
    assert_fault(action(cloud, volume["id"], body), 400, "badRequest", "Malformed request body")
    assert cloud.wait_volume(volume["id"], "available")["status"] == "available"


def test_unknown_action(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    assert_fault(action(cloud, volume["id"], {"os-fly": {}}), 400, "badRequest",
                 "There is no such action: os-fly. Verify the request body and Content-Type header and try again.")
    response = cloud.request("POST", f"/v3/snapshots/{UNKNOWN}/action", json={"os-fly": None})
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("value", [None, {}])
def test_argument_less_actions_accept_null_and_empty(cloud: Cloud, value: Any) -> None:
    volume = cloud.create_volume(1)
    vid = volume["id"]
    assert action(cloud, vid, {"os-reserve": value}).status_code == 202
    assert cloud.wait_volume(vid, "attaching")["status"] == "attaching"
    assert action(cloud, vid, {"os-unreserve": value}).status_code == 202
    assert cloud.wait_volume(vid, "available")["status"] == "available"
    assert action(cloud, vid, {"os-roll_detaching": value}).status_code == 202
    assert action(cloud, vid, {"os-detach": value}).status_code == 400  # not attached: state, not schema
    assert action(cloud, vid, {"os-force_delete": value}).status_code == 202
    cloud.wait_gone(f"/v3/volumes/{vid}")


@pytest.mark.parametrize("value", [None, {}, {"new_size": 0}, {"new_size": "x"}, {"new_size": 1.5},
                                   {"new_size": True}, {"size": 3}])
def test_bad_extend_arguments(cloud: Cloud, value: Any) -> None:
    volume = cloud.create_volume(1)
    assert_fault(action(cloud, volume["id"], {"os-extend": value}), 400, "badRequest", contains="new_size")
    assert in_use(cloud, "gigabytes") == 1


def test_extend_not_larger(cloud: Cloud) -> None:
    volume = cloud.create_volume(2)
    for size in (1, 2):
        assert_fault(action(cloud, volume["id"], {"os-extend": {"new_size": size}}), 400, "badRequest",
                     contains="New size for extend must be greater than current size")
    assert in_use(cloud, "gigabytes") == 2


def test_sources_must_be_usable(cloud: Cloud) -> None:
    source = cloud.create_volume(1)
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": source["id"]}})
    snapshot_id = snap.json()["snapshot"]["id"]
    cloud.wait_snapshot(snapshot_id, "available")
    cloud.request("POST", f"/v3/snapshots/{snapshot_id}/action", json={"os-reset_status": {"status": "error"}})
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"snapshot_id": snapshot_id}})
    assert_fault(response, 400, "badRequest", contains="snapshot")
    action(cloud, source["id"], {"os-reset_status": {"status": "error"}})
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"source_volid": source["id"]}})
    assert_fault(response, 400, "badRequest", contains="Source volume status must be available or in-use")
    assert volume_ids(cloud) == [source["id"]] and in_use(cloud, "volumes") == 1


def test_size_is_required_without_a_source(cloud: Cloud) -> None:
    assert_fault(cloud.request("POST", "/v3/volumes", json={"volume": {"name": "x"}}), 400, "badRequest",
                 contains="size")
    assert_nothing_created(cloud)


def test_wrong_method_is_405(cloud: Cloud) -> None:
    response = cloud.request("PATCH", "/v3/volumes", json={})
    assert_fault(response, 405, "badMethod")
    assert response.headers["OpenStack-API-Version"] == "volume 3.71"
