"""Groups, group types, group snapshots and the CG API: the rules of reference §4.6–4.7, §5 and §6."""
from __future__ import annotations

from typing import Any

import pytest

from cinderblock.db import group_tables as gt
from tests.api.helpers import assert_fault, consistency, headers, in_use, set_volume
from tests.conftest import Cloud

CG_TYPE = "default_cgsnapshot_type"


def ok(response: Any, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def make_type(cloud: Cloud, name: str) -> str:
    return str(ok(cloud.request("POST", "/v3/types", json={"volume_type": {"name": name}}), 200)["volume_type"]["id"])


def make_group_type(cloud: Cloud, name: str = "gt1", specs: dict[str, str] | None = None) -> dict[str, Any]:
    body = {"group_type": {"name": name, "group_specs": specs or {}}}
    return dict(ok(cloud.request("POST", "/v3/group_types", json=body))["group_type"])


def wait_group(cloud: Cloud, group_id: str, *statuses: str) -> dict[str, Any]:
    return cloud._wait(f"/v3/groups/{group_id}", "group", statuses, 10.0)


def wait_cg(cloud: Cloud, cg_id: str, *statuses: str) -> dict[str, Any]:
    return cloud._wait(f"/v3/consistencygroups/{cg_id}", "consistencygroup", statuses, 10.0)


def make_group(cloud: Cloud, types: list[str], group_type: str = "gt1", name: str = "g1") -> dict[str, Any]:
    body = {"group": {"name": name, "description": None, "group_type": group_type, "volume_types": types,
                      "availability_zone": None}}
    created = ok(cloud.request("POST", "/v3/groups", json=body))["group"]
    assert set(created) == {"id", "name"}
    return wait_group(cloud, created["id"], "available", "error")


def make_cg(cloud: Cloud, types: str, name: str = "cg1") -> dict[str, Any]:
    # The body cinderclient sends (reference: client-requests-captured.txt).
    body = {"consistencygroup": {"name": name, "description": None, "volume_types": types, "user_id": None,
                                 "project_id": None, "availability_zone": None, "status": "creating"}}
    created = ok(cloud.request("POST", "/v3/consistencygroups", json=body))["consistencygroup"]
    return wait_cg(cloud, created["id"], "available", "error")


@pytest.fixture
def typed(cloud: Cloud) -> Cloud:
    make_type(cloud, "gold")
    make_type(cloud, "silver")
    make_group_type(cloud, "gt1", {"consistent_group_snapshot_enabled": "<is> True"})
    return cloud


# --- group types -----------------------------------------------------------------------------
def test_group_type_crud_and_specs(cloud: Cloud) -> None:
    created = make_group_type(cloud, "gt1")
    assert created["group_specs"] == {} and created["is_public"] is True
    again = cloud.request("POST", "/v3/group_types", json={"group_type": {"name": "gt1"}})
    assert_fault(again, 409, "conflictingRequest")
    listed = ok(cloud.request("GET", "/v3/group_types"), 200)["group_types"]
    assert {t["name"] for t in listed} >= {"gt1", CG_TYPE}
    cg = [t for t in listed if t["name"] == CG_TYPE][0]
    assert cg["group_specs"] == {"consistent_group_snapshot_enabled": "<is> True"}
    path = f"/v3/group_types/{created['id']}/group_specs"
    ok(cloud.request("POST", path, json={"group_specs": {"a": "1", "b": "2"}}))
    assert ok(cloud.request("GET", path), 200) == {"group_specs": {"a": "1", "b": "2"}}
    assert ok(cloud.request("GET", f"{path}/a"), 200) == {"a": "1"}
    assert ok(cloud.request("PUT", f"{path}/a", json={"a": "9"}), 200) == {"a": "9"}
    ok(cloud.request("DELETE", f"{path}/b"))
    assert_fault(cloud.request("GET", f"{path}/b"), 404, "itemNotFound")
    updated = ok(cloud.request("PUT", f"/v3/group_types/{created['id']}",
                               json={"group_type": {"name": "gt2", "description": "d"}}), 200)["group_type"]
    assert (updated["name"], updated["description"]) == ("gt2", "d")
    # 3.11 is needed; members may not manage group types; the CG type cannot be deleted.
    assert_fault(cloud.request("GET", "/v3/group_types", headers=headers("3.10")), 404, "itemNotFound")
    assert_fault(cloud.request("POST", "/v3/group_types", json={"group_type": {"name": "x"}},
                               headers=headers(token="u:p:member")), 403, "forbidden")
    assert_fault(cloud.request("DELETE", f"/v3/group_types/{cg['id']}"), 400, "badRequest")
    ok(cloud.request("DELETE", f"/v3/group_types/{created['id']}"))
    assert_fault(cloud.request("GET", f"/v3/group_types/{created['id']}"), 404, "itemNotFound")


# --- groups ----------------------------------------------------------------------------------
def test_group_lifecycle_with_members_and_quota(typed: Cloud) -> None:
    cloud = typed
    group = make_group(cloud, ["gold", "silver"])
    assert group["status"] == "available" and len(group["volume_types"]) == 2
    assert in_use(cloud, "groups") == 1
    # A volume created into the group lands on its backend and shows group_id.
    volume = cloud.create_volume(1, volume_type="gold", group_id=group["id"])
    assert volume["status"] == "available" and volume["group_id"] == group["id"]
    assert volume["consistencygroup_id"] is None  # not a CG-typed group
    # The type must be one of the group's; the group must exist.
    assert_fault(cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "group_id": group["id"]}}),
                 400, "badRequest", contains="volume_type")
    assert_fault(cloud.request("POST", "/v3/volumes", json={"volume": {
        "size": 1, "volume_type": "gold", "group_id": "7d3c1c6a-0000-4000-8000-000000000000"}}), 404, "itemNotFound")
    # A member cannot be deleted on its own; the group with members needs delete-volumes.
    assert_fault(cloud.request("DELETE", f"/v3/volumes/{volume['id']}"), 400, "badRequest", contains="group")
    assert_fault(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"delete": {}}), 400, "badRequest")
    shown = ok(cloud.request("GET", f"/v3/groups/{group['id']}?list_volume=True"), 200)["group"]
    assert shown["volumes"] == [volume["id"]] and shown["project_id"] == "admin"
    filtered = ok(cloud.request("GET", f"/v3/volumes?group_id={group['id']}"), 200)["volumes"]
    assert [v["id"] for v in filtered] == [volume["id"]]
    # Remove, then add back; same id in both lists → 400.
    assert_fault(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {
        "add_volumes": volume["id"], "remove_volumes": volume["id"]}}), 400, "badRequest")
    ok(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {"remove_volumes": volume["id"]}}))
    wait_group(cloud, group["id"], "available")
    assert cloud.wait_volume(volume["id"], "available")["group_id"] is None
    ok(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {"add_volumes": volume["id"]}}))
    wait_group(cloud, group["id"], "available")
    assert cloud.wait_volume(volume["id"], "available")["group_id"] == group["id"]
    # delete-volumes removes the members, the group and its quota.
    ok(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"delete": {"delete-volumes": True}}))
    cloud.wait_gone(f"/v3/groups/{group['id']}")
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(cloud, "groups") == 0 and in_use(cloud, "volumes") == 0


def test_group_add_rules(typed: Cloud) -> None:
    cloud = typed
    group = make_group(cloud, ["gold"])
    other_type = cloud.create_volume(1, volume_type="silver")
    busy = cloud.create_volume(1, volume_type="gold")
    set_volume(cloud, busy["id"], status="error")
    for volume_id, why in ((other_type["id"], "volume type"), (busy["id"], "status"),
                           ("0c0c0c0c-0000-4000-8000-000000000000", "does not exist")):
        assert_fault(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {"add_volumes": volume_id}}),
                     400, "badRequest", contains=why)
    assert_fault(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {}}), 400, "badRequest")
    assert_fault(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {"bogus": 1}}), 400, "badRequest")
    # Name-only update forces available (Cinder).
    ok(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"reset_status": {"status": "error"}}))
    ok(cloud.request("PUT", f"/v3/groups/{group['id']}", json={"group": {"name": "renamed"}}))
    shown = ok(cloud.request("GET", f"/v3/groups/{group['id']}"), 200)["group"]
    assert (shown["name"], shown["status"]) == ("renamed", "available")
    assert_fault(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"reset_status": {"status": "in-use"}}),
                 400, "badRequest")


def test_group_create_validation(typed: Cloud) -> None:
    cloud = typed
    for body, status, name in (
        ({"group": {"group_type": "gt1", "volume_types": []}}, 400, "badRequest"),
        ({"group": {"group_type": "gt1"}}, 400, "badRequest"),
        ({"group": {"group_type": "nope", "volume_types": ["gold"]}}, 404, "itemNotFound"),
        ({"group": {"group_type": "gt1", "volume_types": ["nope"]}}, 404, "itemNotFound"),
        ({"group": {"group_type": "gt1", "volume_types": ["gold", "gold"]}}, 400, "badRequest"),
        ({"group": {"group_type": CG_TYPE, "volume_types": ["gold"]}}, 400, "badRequest"),
        ({"group": {"group_type": "gt1", "volume_types": ["gold"], "extra": 1}}, 400, "badRequest"),
    ):
        assert_fault(cloud.request("POST", "/v3/groups", json=body), status, name)
    assert_fault(cloud.request("GET", "/v3/groups", headers=headers("3.12")), 404, "itemNotFound")
    assert in_use(cloud, "groups") == 0


def test_group_type_specs_must_match_capabilities(typed: Cloud) -> None:
    cloud = typed
    make_group_type(cloud, "repl", {"group_replication_enabled": "<is> True"})
    group = make_group(cloud, ["gold"], group_type="repl")
    assert group["status"] == "error"  # no backend reports group replication
    with cloud.running.core.db.read() as session:
        row = session.get(gt.Group, group["id"])
        assert row is not None and "group_replication_enabled" in (row.error_reason or "")
    ok(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"delete": {"delete-volumes": False}}))
    cloud.wait_gone(f"/v3/groups/{group['id']}")


def test_group_snapshot_and_create_from_src(typed: Cloud) -> None:
    cloud = typed
    group = make_group(cloud, ["gold", "silver"])
    assert_fault(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {"group_id": group["id"]}}),
                 400, "badRequest", contains="no volumes")
    members = [cloud.create_volume(1, volume_type=t, group_id=group["id"]) for t in ("gold", "silver")]
    created = ok(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {
        "group_id": group["id"], "name": "gs1", "description": None}}))["group_snapshot"]
    assert set(created) == {"id", "name", "group_type_id"}
    gsnap = cloud._wait(f"/v3/group_snapshots/{created['id']}", "group_snapshot", ("available",), 10.0)
    assert "consistent" not in gsnap
    consistent, pause_ms = consistency(cloud, gsnap["id"])
    assert consistent is True and pause_ms is not None
    snaps = ok(cloud.request("GET", "/v3/snapshots/detail"), 200)["snapshots"]
    assert sorted(s["volume_id"] for s in snaps) == sorted(m["id"] for m in members)
    assert {s["group_snapshot_id"] for s in snaps} == {created["id"]}
    assert in_use(cloud, "snapshots") == 2
    # A member snapshot cannot be deleted alone; the group cannot be deleted while it has a group snapshot.
    assert_fault(cloud.request("DELETE", f"/v3/snapshots/{snaps[0]['id']}"), 400, "badRequest")
    assert_fault(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"delete": {"delete-volumes": True}}),
                 400, "badRequest")
    # From the group snapshot, and from the group itself (openstacksdk sends both keys, one null).
    from_snap = ok(cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
        "group_snapshot_id": created["id"], "source_group_id": None, "name": "copy"}}))["group"]
    copy = wait_group(cloud, from_snap["id"], "available")
    assert copy["group_snapshot_id"] == created["id"]
    shown = ok(cloud.request("GET", f"/v3/groups/{copy['id']}?list_volume=true"), 200)["group"]
    assert len(shown["volumes"]) == 2
    for volume_id in shown["volumes"]:
        assert cloud.wait_volume(volume_id, "available")["group_id"] == copy["id"]
    clone = ok(cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
        "source_group_id": group["id"]}}))["group"]
    assert wait_group(cloud, clone["id"], "available")["source_group_id"] == group["id"]
    assert_fault(cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
        "source_group_id": group["id"], "group_snapshot_id": created["id"]}}), 400, "badRequest")
    assert_fault(cloud.request("POST", "/v3/groups/action", json={"create-from-src": {}}), 400, "badRequest")
    # reset_status (3.19, admin), then delete: its snapshots and their quota go.
    path = f"/v3/group_snapshots/{created['id']}"
    assert_fault(cloud.request("POST", f"{path}/action", json={"reset_status": {"status": "error"}},
                               headers=headers("3.18")), 400, "badRequest")
    ok(cloud.request("POST", f"{path}/action", json={"reset_status": {"status": "error"}}))
    assert ok(cloud.request("GET", path), 200)["group_snapshot"]["status"] == "error"
    ok(cloud.request("DELETE", path))
    cloud.wait_gone(path)
    assert in_use(cloud, "snapshots") == 0


def test_fallback_group_snapshot_says_not_consistent(typed: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    from cinderblock.volume.workflows import groups as workflow

    monkeypatch.setattr(workflow, "consistent_capable", lambda driver: False)
    cloud = typed
    group = make_group(cloud, ["gold"])
    cloud.create_volume(1, volume_type="gold", group_id=group["id"])
    created = ok(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {"group_id": group["id"]}}))
    gsnap = cloud._wait(f"/v3/group_snapshots/{created['group_snapshot']['id']}", "group_snapshot",
                        ("available",), 10.0)
    assert consistency(cloud, gsnap["id"]) == (False, None)


def test_member_failure_leaves_group_and_member_in_error(typed: Cloud, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud = typed
    group = make_group(cloud, ["gold"])
    members = [cloud.create_volume(1, volume_type="gold", group_id=group["id"]) for _ in range(2)]
    driver = cloud.running.volume_services[0].manager.driver
    real = driver.delete_volume

    def failing(volume: Any) -> None:
        if volume.id == members[0]["id"]:
            raise RuntimeError("disk on fire")
        real(volume)

    monkeypatch.setattr(driver, "delete_volume", failing)
    ok(cloud.request("POST", f"/v3/groups/{group['id']}/action", json={"delete": {"delete-volumes": True}}))
    assert wait_group(cloud, group["id"], "error")["status"] == "error"
    assert cloud.wait_volume(members[0]["id"], "error")["status"] == "error"
    cloud.wait_gone(f"/v3/volumes/{members[1]['id']}")


# --- consistency groups ----------------------------------------------------------------------
def test_cg_api_end_to_end(typed: Cloud) -> None:
    cloud = typed
    cg = make_cg(cloud, "gold,silver")
    assert cg["status"] == "available" and len(cg["volume_types"]) == 2
    # A CG is a group of the reserved type: hidden from /groups, 400 there.
    assert cg["id"] not in [g["id"] for g in ok(cloud.request("GET", "/v3/groups"), 200)["groups"]]
    assert_fault(cloud.request("GET", f"/v3/groups/{cg['id']}"), 400, "badRequest", contains="reserved")
    volume = cloud.create_volume(1, volume_type="gold", consistencygroup_id=cg["id"])
    assert volume["consistencygroup_id"] == cg["id"] and volume["group_id"] == cg["id"]
    created = ok(cloud.request("POST", "/v3/cgsnapshots", json={"cgsnapshot": {
        "consistencygroup_id": cg["id"], "name": "cgs1", "description": None, "user_id": None,
        "project_id": None, "status": "creating"}}))["cgsnapshot"]
    cgsnap = cloud._wait(f"/v3/cgsnapshots/{created['id']}", "cgsnapshot", ("available",), 10.0)
    assert cgsnap["consistencygroup_id"] == cg["id"] and consistency(cloud, cgsnap["id"], cg_api=True)[0] is True
    assert [c["id"] for c in ok(cloud.request("GET", "/v3/cgsnapshots"), 200)["cgsnapshots"]] == [created["id"]]
    from_src = ok(cloud.request("POST", "/v3/consistencygroups/create_from_src", json={
        "consistencygroup-from-src": {"cgsnapshot_id": created["id"], "source_cgid": None, "name": "cg2"}}))
    cg2 = wait_cg(cloud, from_src["consistencygroup"]["id"], "available")
    assert_fault(cloud.request("POST", "/v3/consistencygroups/create_from_src", json={
        "consistencygroup-from-src": {"name": "x"}}), 400, "badRequest")
    # Update: below 3.6 an all-empty body is refused.
    assert_fault(cloud.request("PUT", f"/v3/consistencygroups/{cg['id']}", json={"consistencygroup": {
        "name": "", "description": ""}}, headers=headers("3.5")), 400, "badRequest")
    ok(cloud.request("PUT", f"/v3/consistencygroups/{cg['id']}", json={"consistencygroup": {"name": ""}}))
    # Delete: with members only when forced; a cgsnapshot blocks it.
    assert_fault(cloud.request("POST", f"/v3/consistencygroups/{cg['id']}/delete",
                               json={"consistencygroup": {"force": True}}), 400, "badRequest")
    ok(cloud.request("DELETE", f"/v3/cgsnapshots/{created['id']}"))
    cloud.wait_gone(f"/v3/cgsnapshots/{created['id']}")
    assert_fault(cloud.request("POST", f"/v3/consistencygroups/{cg['id']}/delete", json=None), 400, "badRequest")
    ok(cloud.request("POST", f"/v3/consistencygroups/{cg['id']}/delete", json={"consistencygroup": {"force": True}}))
    cloud.wait_gone(f"/v3/consistencygroups/{cg['id']}")
    ok(cloud.request("POST", f"/v3/consistencygroups/{cg2['id']}/delete", json={"consistencygroup": {"force": True}}))
    cloud.wait_gone(f"/v3/consistencygroups/{cg2['id']}")
    assert in_use(cloud, "groups") == 0 and in_use(cloud, "volumes") == 0


def test_cg_needs_volume_types(typed: Cloud) -> None:
    assert_fault(typed.request("POST", "/v3/consistencygroups", json={"consistencygroup": {"name": "x"}}),
                 400, "badRequest")
    assert_fault(typed.request("POST", "/v3/cgsnapshots", json={"cgsnapshot": {"name": "x"}}), 400, "badRequest")


def test_group_quota(typed: Cloud) -> None:
    cloud = typed
    ok(cloud.request("PUT", "/v3/os-quota-sets/admin", json={"quota_set": {"groups": 1}}), 200)
    make_group(cloud, ["gold"])
    refused = cloud.request("POST", "/v3/groups", json={"group": {"group_type": "gt1", "volume_types": ["gold"]}})
    assert_fault(refused, 413, "overLimit")
    assert in_use(cloud, "groups") == 1
