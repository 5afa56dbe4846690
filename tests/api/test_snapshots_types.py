"""Snapshot and volume-type rules (reference §4.3, §4.4, §8.9)."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.helpers import action, assert_fault, headers, in_use, set_volume, snapshot
from tests.conftest import Cloud

MEMBER = "u:abc:member"


def create_snapshot(cloud: Cloud, volume_id: str, version: str = "3.71", **fields: Any) -> Any:
    return cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume_id, **fields}},
                         headers=headers(version))


def in_use_volume(cloud: Cloud) -> dict[str, Any]:
    volume = cloud.create_volume(1)
    body = {"os-attach": {"instance_uuid": "6b1e0f5c-0000-4000-8000-00000000beef", "mountpoint": "/dev/vdb"}}
    assert action(cloud, volume["id"], body).status_code == 202
    return volume


# --- snapshots -------------------------------------------------------------------------------
def test_snapshot_of_in_use_volume_needs_force_below_3_66(cloud: Cloud) -> None:
    volume = in_use_volume(cloud)
    assert_fault(create_snapshot(cloud, volume["id"], "3.65"), 400, "badRequest", contains="in-use")
    assert_fault(create_snapshot(cloud, volume["id"], "3.65", force=False), 400, "badRequest")
    assert in_use(cloud, "snapshots") == 0
    forced = create_snapshot(cloud, volume["id"], "3.65", force=True)
    assert forced.status_code == 202, forced.text
    assert cloud.wait_snapshot(forced.json()["snapshot"]["id"], "available")


def test_snapshot_of_in_use_volume_from_3_66(cloud: Cloud) -> None:
    volume = in_use_volume(cloud)
    assert create_snapshot(cloud, volume["id"], "3.66").status_code == 202
    assert create_snapshot(cloud, volume["id"], "3.66", force=True).status_code == 202
    assert_fault(create_snapshot(cloud, volume["id"], "3.66", force=False), 400, "badRequest", contains="force")
    assert_fault(create_snapshot(cloud, volume["id"], "3.66", force="maybe"), 400, "badRequest", contains="force")
    assert in_use(cloud, "snapshots") == 2


@pytest.mark.parametrize("state", ["error", "creating", "deleting", "extending", "maintenance", "attaching"])
def test_snapshot_refused_from_other_states(cloud: Cloud, state: str) -> None:
    volume = cloud.create_volume(1)
    set_volume(cloud, volume["id"], status=state)
    assert_fault(create_snapshot(cloud, volume["id"], force=True), 400, "badRequest")
    assert in_use(cloud, "snapshots") == 0


def test_snapshot_create_validation(cloud: Cloud) -> None:
    unknown = "00000000-0000-4000-8000-000000000002"
    assert_fault(create_snapshot(cloud, unknown), 404, "itemNotFound", f"Volume {unknown} could not be found.")
    assert_fault(cloud.request("POST", "/v3/snapshots", json={"snapshot": {"name": "x"}}), 400, "badRequest",
                 contains="volume_id")
    volume = cloud.create_volume(1)
    assert_fault(create_snapshot(cloud, volume["id"], name="n" * 256), 400, "badRequest", contains="name")
    assert_fault(create_snapshot(cloud, volume["id"], bogus=1), 400, "badRequest", contains="bogus")
    assert in_use(cloud, "snapshots") == 0


def test_snapshot_delete_rules(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"])
    sid = snap["id"]
    for state in ("creating", "deleting", "error_deleting", "restoring"):
        assert cloud.request("POST", f"/v3/snapshots/{sid}/action",
                             json={"os-reset_status": {"status": state}}).status_code == 202
        assert_fault(cloud.request("DELETE", f"/v3/snapshots/{sid}"), 400, "badRequest",
                     contains="Invalid snapshot")
    assert_fault(cloud.request("POST", f"/v3/snapshots/{sid}/action", json={"os-reset_status": {"status": "x"}}),
                 400, "badRequest")
    assert cloud.request("POST", f"/v3/snapshots/{sid}/action",
                         json={"os-reset_status": {"status": "error"}}).status_code == 202
    assert cloud.request("DELETE", f"/v3/snapshots/{sid}").status_code == 202
    cloud.wait_gone(f"/v3/snapshots/{sid}")
    assert in_use(cloud, "snapshots") == 0 and in_use(cloud, "gigabytes") == 1


@pytest.mark.parametrize("stuck", ["creating", "deleting", "error", "error_deleting"])
def test_snapshot_force_delete(cloud: Cloud, stuck: str) -> None:
    """From any status, `deleting` included (Tempest's SnapshotsActionsTest), and the storage goes too."""
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"])
    cloud.request("POST", f"/v3/snapshots/{snap['id']}/action", json={"os-reset_status": {"status": stuck}})
    assert cloud.request("POST", f"/v3/snapshots/{snap['id']}/action",
                         json={"os-force_delete": None}).status_code == 202
    cloud.wait_gone(f"/v3/snapshots/{snap['id']}")
    assert in_use(cloud, "snapshots") == 0
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202  # no snapshot is left
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")


def test_snapshot_update(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"], name="a")
    response = cloud.request("PUT", f"/v3/snapshots/{snap['id']}", json={"snapshot": {"name": "b"}})
    assert response.status_code == 200 and response.json()["snapshot"]["name"] == "b"
    assert_fault(cloud.request("PUT", f"/v3/snapshots/{snap['id']}", json={"snapshot": {}}), 400, "badRequest")


# --- types -----------------------------------------------------------------------------------
def create_type(cloud: Cloud, name: str, **fields: Any) -> dict[str, Any]:
    response = cloud.request("POST", "/v3/types", json={"volume_type": {"name": name, **fields}})
    assert response.status_code == 200, response.text
    return dict(response.json()["volume_type"])


def test_type_create_duplicate_and_specs(cloud: Cloud) -> None:
    gold = create_type(cloud, "gold", extra_specs={"k": "v"})
    assert gold["extra_specs"] == {"k": "v"} and gold["is_public"] is True
    assert_fault(cloud.request("POST", "/v3/types", json={"volume_type": {"name": "gold"}}), 409,
                 "conflictingRequest", contains="gold")
    specs = cloud.request("POST", f"/v3/types/{gold['id']}/extra_specs", json={"extra_specs": {"a": "1"}})
    assert specs.status_code == 200 and specs.json() == {"extra_specs": {"a": "1"}}
    assert cloud.request("GET", f"/v3/types/{gold['id']}/extra_specs/a").json() == {"a": "1"}
    assert_fault(cloud.request("PUT", f"/v3/types/{gold['id']}/extra_specs/a", json={"b": "2"}), 400,
                 "badRequest", contains="Request body and URI mismatch")
    assert cloud.request("PUT", f"/v3/types/{gold['id']}/extra_specs/a", json={"a": "2"}).json() == {"a": "2"}
    assert cloud.request("DELETE", f"/v3/types/{gold['id']}/extra_specs/a").status_code == 202
    assert_fault(cloud.request("DELETE", f"/v3/types/{gold['id']}/extra_specs/a"), 404, "itemNotFound")
    both = {"extra_specs": {"multiattach": "<is> True", "cacheable": "<is> True"}}
    assert_fault(cloud.request("POST", f"/v3/types/{gold['id']}/extra_specs", json=both), 400, "badRequest")


def test_type_in_use_is_immutable(cloud: Cloud) -> None:
    gold = create_type(cloud, "gold", extra_specs={"vendor:k": "v"})
    volume = cloud.create_volume(1, volume_type="gold")
    assert volume["status"] == "available" and volume["volume_type"] == "gold"
    tid = gold["id"]
    for method, path, body in [("POST", "/extra_specs", {"extra_specs": {"vendor:x": "1"}}),
                               ("PUT", "/extra_specs/vendor:k", {"vendor:k": "w"}),
                               ("DELETE", "/extra_specs/vendor:k", None)]:
        assert_fault(cloud.request(method, f"/v3/types/{tid}{path}", json=body), 400, "badRequest",
                     "Volume Type is currently in use.")
    assert_fault(cloud.request("DELETE", f"/v3/types/{tid}"), 400, "badRequest",
                 "Target volume type is still in use.")
    assert cloud.request("GET", f"/v3/types/{tid}/extra_specs").json() == {"extra_specs": {"vendor:k": "v"}}
    # Renaming is still allowed; once the volume is gone everything is.
    assert cloud.request("PUT", f"/v3/types/{tid}", json={"volume_type": {"description": "d"}}).status_code == 200
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    specs = {"extra_specs": {"vendor:x": "1"}}
    assert cloud.request("POST", f"/v3/types/{tid}/extra_specs", json=specs).status_code == 200
    assert cloud.request("DELETE", f"/v3/types/{tid}").status_code == 202
    assert cloud.request("GET", f"/v3/types/{tid}").status_code == 404


def test_type_update_duplicate_name(cloud: Cloud) -> None:
    create_type(cloud, "gold")
    silver = create_type(cloud, "silver")
    assert_fault(cloud.request("PUT", f"/v3/types/{silver['id']}", json={"volume_type": {"name": "gold"}}), 409,
                 "conflictingRequest")
    assert_fault(cloud.request("PUT", f"/v3/types/{silver['id']}", json={"volume_type": {}}), 400, "badRequest")


def test_default_type_cannot_be_deleted(cloud: Cloud) -> None:
    default = cloud.request("GET", "/v3/types/default").json()["volume_type"]
    assert default["name"] == "__DEFAULT__"
    assert_fault(cloud.request("DELETE", f"/v3/types/{default['id']}"), 400, "badRequest")


def test_type_name_lookup_and_is_public_none(cloud: Cloud) -> None:
    create_type(cloud, "gold")
    create_type(cloud, "hidden", **{"os-volume-type-access:is_public": False})
    def names(query: str) -> list[str]:
        return sorted(t["name"] for t in cloud.request("GET", f"/v3/types{query}").json()["volume_types"])

    assert names("") == ["__DEFAULT__", "gold"]
    assert names("?is_public=None") == ["__DEFAULT__", "gold", "hidden"]
    assert names("?is_public=false") == ["hidden"]
    assert names("?name=gold&is_public=None") == ["gold"]
    assert_fault(cloud.request("GET", "/v3/types?is_public=perhaps"), 400, "badRequest")


def test_private_type_access(cloud: Cloud) -> None:
    private = create_type(cloud, "private", **{"os-volume-type-access:is_public": False})
    tid = private["id"]
    assert private["is_public"] is False and private["os-volume-type-access:is_public"] is False
    member = headers(token=MEMBER)
    assert_fault(cloud.request("GET", f"/v3/types/{tid}", headers=member), 404, "itemNotFound")
    assert "private" not in [t["name"] for t in cloud.request("GET", "/v3/types", headers=member).json()[
        "volume_types"]]
    refused = cloud.request("POST", "/v3/volumes", headers=member, json={"volume": {"size": 1, "volume_type": tid}})
    assert_fault(refused, 404, "itemNotFound")
    add = {"addProjectAccess": {"project": "abc"}}
    assert cloud.request("POST", f"/v3/types/{tid}/action", json=add).status_code == 202
    assert_fault(cloud.request("POST", f"/v3/types/{tid}/action", json=add), 409, "conflictingRequest")
    access = cloud.request("GET", f"/v3/types/{tid}/os-volume-type-access").json()
    assert access == {"volume_type_access": [{"volume_type_id": tid, "project_id": "abc"}]}
    assert cloud.request("GET", f"/v3/types/{tid}", headers=member).status_code == 200
    allowed = cloud.request("POST", "/v3/volumes", headers=member, json={"volume": {"size": 1, "volume_type": tid}})
    assert allowed.status_code == 202, allowed.text
    remove = {"removeProjectAccess": {"project": "abc"}}
    assert cloud.request("POST", f"/v3/types/{tid}/action", json=remove).status_code == 202
    assert_fault(cloud.request("POST", f"/v3/types/{tid}/action", json=remove), 404, "itemNotFound")
    assert_fault(cloud.request("POST", f"/v3/types/{tid}/action", json={"addProjectAccess": {}}), 400,
                 "badRequest", contains="project")
    assert_fault(cloud.request("POST", f"/v3/types/{tid}/action", json={"fly": {}}), 400, "badRequest",
                 contains="There is no such action: fly")
    # Public types have no access list.
    gold = create_type(cloud, "gold")
    assert_fault(cloud.request("GET", f"/v3/types/{gold['id']}/os-volume-type-access"), 404, "itemNotFound")
    assert_fault(cloud.request("POST", f"/v3/types/{gold['id']}/action", json=add), 400, "badRequest")


def test_type_admin_only_calls(cloud: Cloud) -> None:
    member = headers(token=MEMBER)
    assert_fault(cloud.request("POST", "/v3/types", headers=member, json={"volume_type": {"name": "x"}}), 403,
                 "forbidden")
    assert "extra_specs" not in cloud.request("GET", "/v3/types/default", headers=member).json()["volume_type"]
