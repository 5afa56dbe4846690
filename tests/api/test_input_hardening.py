"""Hostile input never becomes a 5xx (issue 12 §2) and Cinder's input limits hold (§3).

- list filter values go through the filter grammar (api/filters.py): broken structures are a 400;
- NUL characters and lone UTF-16 surrogates are refused where bodies, query strings and paths enter;
- bodies over osapi_max_request_body_size are a 413 before parsing;
- metadata keys/values over 255 characters, blank keys and more than quota_metadata_items items;
- action bodies with keys the action does not take, a volume create naming two sources.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest

from cinderblock.api.faults import fault
from tests.api.helpers import action, assert_fault, headers, volume_ids
from tests.conftest import Cloud

READER = "u:projA:reader"
LISTS = ["/v3/volumes", "/v3/volumes/detail", "/v3/snapshots", "/v3/snapshots/detail", "/v3/groups",
         "/v3/groups/detail", "/v3/group_snapshots", "/v3/group_snapshots/detail", "/v3/consistencygroups",
         "/v3/consistencygroups/detail"]
BAD_FILTERS = ["{{}}", "{[1]:2}", "{[]}", "-" * 20_000 + "1", "[" * 5000]


@pytest.mark.parametrize("path", LISTS)
def test_broken_filter_values_are_400_on_every_list(cloud: Cloud, path: str) -> None:
    key = "volume_id" if path.startswith("/v3/snapshots") else "status"
    for value in BAD_FILTERS:
        response = cloud.client.get(f"{path}?{key}={quote(value)}", headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest",
                     contains=f"Invalid input received: Invalid value for filter '{key}'")
    response = cloud.client.get(f"{path}?status={quote(str(['available', 'error']))}",
                                headers=headers("3.71", READER))
    assert response.status_code == 200, response.text


def test_metadata_filter_of_broken_structure_is_400(cloud: Cloud) -> None:
    for path in ("/v3/volumes", "/v3/snapshots"):
        response = cloud.client.get(f"{path}?metadata={quote('{{}}')}", headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest", contains="filter 'metadata'")


def _post(cloud: Cloud, method: str, path: str, raw: bytes, token: str = "admin:admin") -> object:
    return cloud.client.request(method, path, content=raw,
                                headers={**headers("3.71", token), "Content-Type": "application/json"})


SURROGATE = b'"\\ud800"'  # a lone UTF-16 surrogate, escaped as JSON allows
NUL = b'"a\\u0000b"'


@pytest.mark.parametrize("bad", [SURROGATE, NUL, b'"\\uDFFF x"', "\"\udc80\"".encode("utf-8", "surrogatepass")],
                         ids=["surrogate", "nul", "low-surrogate", "raw-surrogate-bytes"])
def test_unstorable_text_in_bodies_is_400_naming_the_field(cloud: Cloud, bad: bytes) -> None:
    volume = cloud.create_volume(1)
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume["id"]}}).json()
    cloud.wait_snapshot(snap["snapshot"]["id"], "available")
    gtype = cloud.request("POST", "/v3/group_types", json={"group_type": {"name": "g"}}).json()["group_type"]
    vtype = cloud.request("POST", "/v3/types", json={"volume_type": {"name": "t"}}).json()["volume_type"]
    v, s = volume["id"], snap["snapshot"]["id"]
    cases = [
        ("POST", "/v3/volumes", b'{"volume": {"size": 1, "name": %s}}', "volume/name"),
        ("POST", "/v3/volumes", b'{"volume": {"size": 1, "metadata": {"k": %s}}}', "volume/metadata/k"),
        ("PUT", f"/v3/volumes/{v}", b'{"volume": {"description": %s}}', "volume/description"),
        ("POST", f"/v3/volumes/{v}/metadata", b'{"metadata": {%s: "v"}}', "metadata"),
        ("PUT", f"/v3/volumes/{v}/metadata/k", b'{"meta": {"k": %s}}', "meta/k"),
        ("POST", f"/v3/snapshots/{s}/metadata", b'{"metadata": {"k": %s}}', "metadata/k"),
        ("PUT", f"/v3/snapshots/{s}", b'{"snapshot": {"name": %s}}', "snapshot/name"),
        ("POST", "/v3/types", b'{"volume_type": {"name": %s}}', "volume_type/name"),
        ("POST", f"/v3/types/{vtype['id']}/extra_specs", b'{"extra_specs": {%s: "v"}}', "extra_specs"),
        ("POST", f"/v3/group_types/{gtype['id']}/group_specs", b'{"group_specs": {"k": %s}}', "group_specs/k"),
        ("POST", "/v3/group_types", b'{"group_type": {"name": %s}}', "group_type/name"),
        ("POST", f"/v3/volumes/{v}/action", b'{"os-extend": {"new_size": %s}}', "os-extend/new_size"),
        ("POST", f"/v3/volumes/{v}/action", b'{"os-reset_status": {"status": %s}}', "os-reset_status/status"),
        ("POST", f"/v3/types/{vtype['id']}/action", b'{"addProjectAccess": {"project": %s}}',
         "addProjectAccess/project"),
        ("PUT", f"/v3/os-quota-sets/{'p' * 8}", b'{"quota_set": {"volumes": %s}}', "quota_set/volumes"),
        ("PUT", "/v3/os-services/disable", b'{"host": %s, "binary": "cinder-volume"}', "host"),
        ("POST", "/v3/volumes", b'{"volume": {"size": 1, "metadata": [[{"deep": [%s]}]]}}', "volume/metadata/deep"),
    ]
    for method, path, template, field in cases:
        response = _post(cloud, method, path, template % bad)
        message = assert_fault(response, 400, "badRequest",
                               contains=f"Invalid input for field/attribute {field}. Value: ")
        assert "not allowed" in message, message
    assert [x["id"] for x in cloud.request("GET", "/v3/volumes").json()["volumes"]] == [v]
    assert cloud.request("GET", f"/v3/volumes/{v}").json()["volume"]["metadata"] == {}


def test_nul_in_query_strings_and_paths_is_400(cloud: Cloud) -> None:
    for url in ("/v3/volumes?name=a%00b", "/v3/volumes?marker=%00", "/v3/snapshots?volume_id=%00",
                "/v3/types?is_public=%00", "/v3/os-services?host=%00", "/v3/volumes?a%00=1"):
        response = cloud.client.get(url, headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest", contains="Invalid input received: Invalid query parameter ")
    for url in ("/v3/types/%00", "/v3/volumes/a%00b", "/v3/group_types/%00"):
        response = cloud.client.get(url, headers=headers("3.71", READER))
        assert_fault(response, 400, "badRequest", contains="NUL")


def test_fault_messages_that_echo_input_always_encode() -> None:
    # Messages echo input ("Volume type X could not be found."): they must never be why a 500 is sent.
    response = fault(404, "Volume type \ud800 could not be found.")
    assert json.loads(response.body) == {"itemNotFound": {"code": 404,
                                                          "message": "Volume type \\ud800 could not be found."}}


def test_body_over_osapi_max_request_body_size_is_413_before_parsing(cloud: Cloud) -> None:
    big = json.dumps({"volume": {"size": 1, "description": "x" * 200_000}}).encode()
    response = _post(cloud, "POST", "/v3/volumes", big)
    assert_fault(response, 413, "overLimit", message="Request is too large. Larger than 114688.")
    # Not even parsed: a body that is not JSON at all gets the same answer.
    assert _post(cloud, "POST", "/v3/volumes", b"[" * 10_000_000).status_code == 413

    def chunks() -> object:  # no Content-Length: counted while read
        for _ in range(200):
            yield b" " * 1024

    response = cloud.client.post("/v3/volumes", content=chunks(),
                                 headers={**headers(), "Content-Type": "application/json"})
    assert_fault(response, 413, "overLimit")
    assert volume_ids(cloud) == []
    exact = json.dumps({"volume": {"size": 1, "name": "n"}}).encode()
    assert _post(cloud, "POST", "/v3/volumes", exact.ljust(114688)).status_code == 202


def test_body_limit_is_the_configured_one(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("[DEFAULT]\nosapi_max_request_body_size = 64\n")
    assert _post(cloud, "POST", "/v3/volumes", b'{"volume": {"size": 1}}'.ljust(65)).status_code == 413
    assert _post(cloud, "POST", "/v3/volumes", b'{"volume": {"size": 1}}'.ljust(64)).status_code == 202


KEY_LONG = "Invalid metadata size: Metadata property key greater than 255 characters."
VALUE_LONG = "Invalid metadata size: Metadata property value greater than 255 characters."
BLANK = "Invalid metadata: Metadata property key blank."


def test_metadata_limits_with_cinders_messages(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    v = volume["id"]
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": v}}).json()["snapshot"]
    cloud.wait_snapshot(snap["id"], "available")
    writes: list[tuple[str, str, Callable[[dict[str, str]], object]]] = [
        ("POST", "/v3/volumes", lambda m: {"volume": {"size": 1, "metadata": m}}),
        ("PUT", f"/v3/volumes/{v}", lambda m: {"volume": {"metadata": m}}),
        ("POST", f"/v3/volumes/{v}/metadata", lambda m: {"metadata": m}),
        ("PUT", f"/v3/volumes/{v}/metadata", lambda m: {"metadata": m}),
        ("POST", "/v3/snapshots", lambda m: {"snapshot": {"volume_id": v, "metadata": m, "force": True}}),
        ("POST", f"/v3/snapshots/{snap['id']}/metadata", lambda m: {"metadata": m}),
        ("PUT", f"/v3/snapshots/{snap['id']}/metadata", lambda m: {"metadata": m}),
    ]
    for method, path, body in writes:
        for metadata, message in (({"k" * 256: "v"}, KEY_LONG), ({"k": "v" * 256}, VALUE_LONG), ({"": "v"}, BLANK)):
            assert_fault(cloud.request(method, path, json=body(metadata)), 400, "badRequest", message=message)
        too_many = {f"k{i}": "v" for i in range(129)}
        assert_fault(cloud.request(method, path, json=body(too_many)), 413, "overLimit",
                     message="MetadataLimitExceeded: Maximum number of metadata items exceeds 128")
        # 255 characters and 128 items are allowed.
        response = cloud.request(method, path, json=body({"k" * 255: "v" * 255}))
        assert response.status_code in (200, 202), response.text
    assert_fault(cloud.request("PUT", f"/v3/volumes/{v}/metadata/{'k' * 256}", json={"meta": {"k" * 256: "v"}}),
                 400, "badRequest", message=KEY_LONG)
    assert len(volume_ids(cloud)) == 2  # the first volume and the one 255-character create


def test_metadata_items_count_after_a_merge(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud("[DEFAULT]\nquota_metadata_items = 3\n")
    v = cloud.create_volume(1, metadata={"a": "1", "b": "2"})["id"]
    merged = cloud.request("POST", f"/v3/volumes/{v}/metadata", json={"metadata": {"a": "x", "c": "3"}})
    assert merged.status_code == 200
    response = cloud.request("POST", f"/v3/volumes/{v}/metadata", json={"metadata": {"d": "4"}})
    assert_fault(response, 413, "overLimit",
                 message="MetadataLimitExceeded: Maximum number of metadata items exceeds 3")
    response = cloud.request("PUT", f"/v3/volumes/{v}/metadata/e", json={"meta": {"e": "5"}})
    assert_fault(response, 413, "overLimit")
    assert cloud.request("GET", f"/v3/volumes/{v}/metadata").json()["metadata"] == {"a": "x", "b": "2", "c": "3"}
    # A replacement counts only what it keeps.
    assert cloud.request("PUT", f"/v3/volumes/{v}/metadata", json={"metadata": {"x": "1"}}).status_code == 200


def test_ten_thousand_metadata_keys_are_refused(cloud: Cloud) -> None:
    body = {"volume": {"size": 1, "metadata": {str(i): "" for i in range(10_000)}}}
    assert_fault(cloud.request("POST", "/v3/volumes", json=body), 413, "overLimit")
    assert volume_ids(cloud) == []


def test_action_bodies_with_keys_the_action_does_not_take_are_400(cloud: Cloud) -> None:
    v = cloud.create_volume(1)["id"]
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": v}}).json()["snapshot"]
    cloud.wait_snapshot(snap["id"], "available")
    vtype = cloud.request("POST", "/v3/types", json={"volume_type": {"name": "t"}}).json()["volume_type"]
    for body in ({"os-extend": {"new_size": 2, "x": 1}}, {"os-reset_status": {"status": "available", "x": 1}},
                 {"os-set_bootable": {"bootable": True, "x": 1}},
                 {"os-update_readonly_flag": {"readonly": True, "x": 1}},
                 {"os-attach": {"host_name": "h", "mountpoint": "/d", "x": 1}}, {"os-detach": {"x": 1}},
                 {"os-initialize_connection": {"connector": {}, "x": 1}},
                 {"os-terminate_connection": {"connector": {}, "x": 1}},
                 {"revert": {"snapshot_id": snap["id"], "x": 1}}):
        name = next(iter(body))
        assert_fault(action(cloud, v, body), 400, "badRequest",
                     message=f"Invalid input for field/attribute {name}. Value: {body[name]!r}. "
                             f"Additional properties are not allowed ('x' was unexpected)")
    assert cloud.request("GET", f"/v3/volumes/{v}").json()["volume"]["size"] == 1
    response = cloud.request("POST", f"/v3/snapshots/{snap['id']}/action",
                             json={"os-reset_status": {"status": "error", "x": 1, "y": 2}})
    assert_fault(response, 400, "badRequest", contains="('x', 'y' were unexpected)")
    response = cloud.request("POST", f"/v3/types/{vtype['id']}/action",
                             json={"addProjectAccess": {"project": "p", "x": 1}})
    assert_fault(response, 400, "badRequest", contains="('x' was unexpected)")
    # The keys clients send are all still taken.
    assert action(cloud, v, {"os-extend": {"new_size": 2}}).status_code == 202


@pytest.mark.parametrize("sources", [("snapshot_id", "source_volid"), ("snapshot_id", "imageRef"),
                                     ("source_volid", "backup_id"), ("source_volid", "image_id")])
def test_volume_create_naming_two_sources_is_400(cloud: Cloud, sources: tuple[str, str]) -> None:
    v = cloud.create_volume(1)["id"]
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": v}}).json()["snapshot"]
    cloud.wait_snapshot(snap["id"], "available")
    ids = {"snapshot_id": snap["id"], "source_volid": v, "imageRef": v, "image_id": v, "backup_id": v}
    for version in ("3.0", "3.71"):
        body = {"volume": {"size": 1, **{key: ids[key] for key in sources}, "snapshot_id": None} | {
            key: ids[key] for key in sources}}
        response = cloud.request("POST", "/v3/volumes", json=body,
                                 headers={"OpenStack-API-Version": f"volume {version}"})
        assert_fault(response, 400, "badRequest", message="Invalid input received: May specify only one of backup, "
                                                          "imageRef, snapshot, source volume")
    assert volume_ids(cloud) == [v]
    # Nulls name nothing (cinderclient sends every key).
    body = {"volume": {"size": 1, "snapshot_id": snap["id"], "source_volid": None, "imageRef": None}}
    assert cloud.request("POST", "/v3/volumes", json=body).status_code == 202


def test_over_long_group_specs_and_quota_project_ids_are_400(cloud: Cloud) -> None:
    # SQLite stores any length; PostgreSQL and MariaDB refuse it (500s there before, found by the sweep).
    gtype = cloud.request("POST", "/v3/group_types", json={"group_type": {"name": "g"}}).json()["group_type"]
    g = gtype["id"]
    for body in ({"group_specs": {"k" * 256: "v"}}, {"group_specs": {"k": "v" * 256}}, {"group_specs": {"": "v"}}):
        assert_fault(cloud.request("POST", f"/v3/group_types/{g}/group_specs", json=body), 400, "badRequest",
                     contains="Invalid input for field/attribute group_specs")
    assert_fault(cloud.request("PUT", f"/v3/group_types/{g}/group_specs/k", json={"k": "v" * 256}), 400, "badRequest")
    assert_fault(cloud.request("POST", "/v3/group_types", json={"group_type": {"name": "h", "group_specs": {
        "k": "v" * 256}}}), 400, "badRequest")
    assert cloud.request("GET", f"/v3/group_types/{g}/group_specs").json()["group_specs"] == {}
    response = cloud.request("PUT", f"/v3/os-quota-sets/{'p' * 256}", json={"quota_set": {"volumes": 5}})
    assert_fault(response, 400, "badRequest", contains="project id is at most 255 characters")
