"""Behaviours where Tempest's volume tests found cinderblock unlike Cinder (issue 11), each kept here so
it cannot come back unnoticed: host look-ups of services, type list sorting, snapshot create with a null
volume, quota resets."""
from __future__ import annotations

from typing import Any

from tests.api.helpers import assert_fault, snapshot
from tests.conftest import Cloud

V311 = {"OpenStack-API-Version": "volume 3.11"}


def _names(response: Any, key: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["name"] for item in response.json()[key]]


def test_services_by_host_name_find_every_backend_of_that_host(cloud: Cloud) -> None:
    services = cloud.request("GET", "/v3/os-services").json()["services"]
    volume_host = next(s["host"] for s in services if s["binary"] == "cinder-volume")
    host_name = volume_host.split("@")[0]
    assert "@" in volume_host and host_name
    found = cloud.request("GET", f"/v3/os-services?host={host_name}").json()["services"]
    assert {s["binary"] for s in found} == {s["binary"] for s in services}  # scheduler and volume alike
    assert all(s["host"].split("@")[0] == host_name for s in found)
    only_volume = cloud.request("GET", f"/v3/os-services?host={host_name}&binary=cinder-volume").json()
    assert [s["host"] for s in only_volume["services"]] == [volume_host]
    # A backend name finds that backend only; LIKE wildcards in a name match nothing.
    assert [s["host"] for s in cloud.request("GET", f"/v3/os-services?host={volume_host}").json()["services"]] \
        == [volume_host]
    assert cloud.request("GET", "/v3/os-services?host=%25").json()["services"] == []
    assert cloud.request("GET", f"/v3/os-services?host={host_name[:-1]}_").json()["services"] == []


def test_group_types_sort_and_filter_by_visibility(cloud: Cloud) -> None:
    for name, public in (("b-private", False), ("a-public", True)):
        response = cloud.request("POST", "/v3/group_types", headers=V311,
                                 json={"group_type": {"name": name, "is_public": public}})
        assert response.status_code == 202, response.text
    everything = "/v3/group_types?is_public=None"
    assert _names(cloud.request("GET", f"{everything}&sort=name:asc", headers=V311), "group_types")[:2] \
        == ["a-public", "b-private"]
    names_desc = _names(cloud.request("GET", f"{everything}&sort=name:desc", headers=V311), "group_types")
    assert names_desc.index("b-private") < names_desc.index("a-public")
    assert "a-public" not in _names(cloud.request("GET", "/v3/group_types?is_public=False", headers=V311),
                                    "group_types")
    assert "b-private" not in _names(cloud.request("GET", "/v3/group_types?is_public=True", headers=V311),
                                     "group_types")
    assert_fault(cloud.request("GET", f"{everything}&sort=bogus:asc", headers=V311), 400, "badRequest",
                 "Invalid input received: Invalid sort key bogus")


def test_volume_types_sort(cloud: Cloud) -> None:
    for name in ("zeta", "alpha"):
        assert cloud.request("POST", "/v3/types", json={"volume_type": {"name": name}}).status_code == 200
    ascending = _names(cloud.request("GET", "/v3/types?sort_key=name&sort_dir=asc"), "volume_types")
    assert ascending == sorted(ascending) and {"zeta", "alpha"} <= set(ascending)
    descending = _names(cloud.request("GET", "/v3/types?sort=name:desc"), "volume_types")
    assert descending == sorted(ascending, reverse=True)


def test_snapshot_of_a_null_volume_is_not_found(cloud: Cloud) -> None:
    response = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": None, "name": "s"}})
    assert_fault(response, 404, "itemNotFound", "Volume None could not be found.")
    missing = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"name": "s"}})
    assert_fault(missing, 400, "badRequest")


def _snapshot_action(cloud: Cloud, snapshot_id: str, body: dict[str, Any], token: str = "admin:admin") -> Any:
    return cloud.request("POST", f"/v3/snapshots/{snapshot_id}/action", json=body,
                         headers={"X-Auth-Token": token})


def test_update_snapshot_status_reports_progress_by_cinders_rules(cloud: Cloud) -> None:
    """os-update_snapshot_status (Nova's assisted snapshots): a project member reports the status of a
    snapshot being created or deleted, with a progress percentage."""
    volume = cloud.create_volume(1)
    snap = snapshot(cloud, volume["id"])
    member = "u:admin:member"
    report = {"os-update_snapshot_status": {"status": "error", "progress": "80%"}}
    assert_fault(_snapshot_action(cloud, snap["id"], report, member), 400, "badRequest",
                 "Snapshot status available not allowed for update_snapshot_status")
    assert _snapshot_action(cloud, snap["id"], {"os-reset_status": {"status": "creating"}}).status_code == 202
    assert_fault(_snapshot_action(cloud, snap["id"], {"os-update_snapshot_status": {"status": "deleting"}},
                                  member), 400, "badRequest",
                 "Provided snapshot status deleting not allowed for snapshot with status creating.")
    for bad in ("80", "101%", "x%", "-1%"):
        assert_fault(_snapshot_action(cloud, snap["id"], {"os-update_snapshot_status": {
            "status": "error", "progress": bad}}, member), 400, "badRequest", "progress must be an integer percentage")
    response = _snapshot_action(cloud, snap["id"], report, member)
    assert response.status_code == 202 and response.content == b""
    shown = cloud.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]
    assert (shown["status"], shown["os-extended-snapshot-attributes:progress"]) == ("error", "80%")
    assert_fault(_snapshot_action(cloud, snap["id"], report, "u:admin:reader"), 403, "forbidden")
    assert_fault(_snapshot_action(cloud, snap["id"], report, "u:other:member"), 404, "itemNotFound")
