"""Who may do what: every endpoint and action for four callers, and no foreign data in any answer.

Callers: an administrator (`admin:projA`), a member and a reader of project A, a member of project B.
The resources acted on belong to project A (the private type `secret` to project B only). Expected
statuses follow Cinder's personas (api/policy.py): readers read, members change their own project's
resources, admin-only rules answer 403 to everyone else, and an id of another project answers 404 —
unless the caller's role alone already refuses the rule (403 for any id: nothing learnt either way).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.api.helpers import message
from tests.conftest import Cloud

ADMIN, MEMBER, READER, OTHER = "admin:projA", "u:projA:member", "u:projA:reader", "u:projB:member"
CALLERS = (ADMIN, MEMBER, READER, OTHER)
V = "3.71"
CONSISTENT = {"consistent_group_snapshot_enabled": "<is> True"}
CONNECTOR = {"host": "node1", "initiator": "iqn.1993-08.org.debian:01:abc"}


@dataclass
class World:
    """Project A's volume, snapshot, message and type; project B's volume, snapshot and private type."""

    ids: dict[str, str]
    # Strings that must not reach callers of the other project.
    secrets_of_a: set[str]
    secrets_of_b: set[str]


def _request(cloud: Cloud, method: str, path: str, token: str, version: str = V, **kwargs: Any) -> Any:
    headers = {"X-Auth-Token": token, "OpenStack-API-Version": f"volume {version}"}
    return cloud.client.request(method, path, headers=headers, **kwargs)


def _ok(response: Any, *codes: int) -> Any:
    assert response.status_code in codes, response.text
    return response.json() if response.content else None


def _group(cloud: Cloud, token: str, volume: bool = False, snapshot: bool = False) -> tuple[str, str | None]:
    """A group of the caller's project (group type gt1, volume type plain), with a volume and a group snapshot."""
    body = {"group": {"name": "g", "group_type": "gt1", "volume_types": ["plain"]}}
    created = _ok(_request(cloud, "POST", "/v3/groups", token, json=body), 202)["group"]
    group_id = cloud._wait(f"/v3/groups/{created['id']}", "group", ("available",), 10.0)["id"]
    if not (volume or snapshot):
        return group_id, None
    member = _ok(_request(cloud, "POST", "/v3/volumes", token,
                          json={"volume": {"size": 1, "volume_type": "plain", "group_id": group_id}}), 202)
    cloud.wait_volume(member["volume"]["id"], "available")
    if not snapshot:
        return group_id, None
    made = _ok(_request(cloud, "POST", "/v3/group_snapshots", token, json={"group_snapshot": {"group_id": group_id}}),
               202)["group_snapshot"]
    return group_id, cloud._wait(f"/v3/group_snapshots/{made['id']}", "group_snapshot", ("available",), 10.0)["id"]


def build_world(cloud: Cloud, groups: bool = False) -> World:
    admin = {"X-Auth-Token": "admin:admin"}
    ids: dict[str, str] = {}
    for project, token in (("A", MEMBER), ("B", OTHER)):
        volume = {"volume": {"size": 1, "name": f"vol{project}", "metadata": {"k": "v"}}}
        created = _ok(_request(cloud, "POST", "/v3/volumes", token, json=volume), 202)
        ids[f"vol{project}"] = cloud.wait_volume(created["volume"]["id"], "available")["id"]
        snap = _ok(_request(cloud, "POST", "/v3/snapshots", token,
                            json={"snapshot": {"volume_id": ids[f"vol{project}"], "name": f"snap{project}",
                                               "metadata": {"k": "v"}}}), 202)
        ids[f"snap{project}"] = cloud.wait_snapshot(snap["snapshot"]["id"], "available")["id"]
        ids[f"msg{project}"] = message(cloud, f"proj{project}")
    public = _ok(cloud.request("POST", "/v3/types", headers=admin,
                               json={"volume_type": {"name": "public-t", "extra_specs": {"k": "v"}}}), 200)
    ids["type"] = public["volume_type"]["id"]
    secret = {"volume_type": {"name": "secret", "os-volume-type-access:is_public": False}}
    private = _ok(cloud.request("POST", "/v3/types", headers=admin, json=secret), 200)
    ids["secret"] = private["volume_type"]["id"]
    _ok(cloud.request("POST", f"/v3/types/{ids['secret']}/action", headers=admin,
                      json={"addProjectAccess": {"project": "projB"}}), 202)
    services = _ok(cloud.request("GET", "/v3/os-services?binary=cinder-volume", headers=admin), 200)
    ids["host"] = services["services"][0]["host"]
    world = World(ids, {ids["volA"], ids["snapA"], ids["msgA"], "projA"},
                  {ids["volB"], ids["snapB"], ids["msgB"], "projB", "secret", ids["secret"]})
    if groups:
        _ok(cloud.request("POST", "/v3/types", headers=admin, json={"volume_type": {"name": "plain"}}), 200)
        group_type = _ok(cloud.request("POST", "/v3/group_types", headers=admin,
                                       json={"group_type": {"name": "gt1", "group_specs": CONSISTENT}}), 202)
        ids["gtype"] = group_type["group_type"]["id"]
        for project, token in (("A", MEMBER), ("B", OTHER)):
            group_id, group_snapshot = _group(cloud, token, snapshot=True)
            ids[f"grp{project}"], ids[f"gs{project}"] = group_id, str(group_snapshot)
        world.secrets_of_a |= {ids["grpA"], ids["gsA"]}
        world.secrets_of_b |= {ids["grpB"], ids["gsB"]}
    return world


@dataclass
class Case:
    name: str
    method: str
    path: str  # formatted with World.ids
    expect: tuple[int, int, int, int]  # ADMIN, MEMBER, READER, OTHER
    body: Any = None
    version: str = V
    # Each caller gets a fresh project A volume (and snapshot) for actions that change or remove them.
    fresh: bool = False
    check: Callable[[str, Any], object] | None = field(default=None, repr=False)  # False: failed


def _no_admin_fields(token: str, body: Any) -> None:
    volumes = body["volumes"] if "volumes" in body else [body["volume"]]
    for volume in volumes:
        admin_only = {"os-vol-host-attr:host", "migration_status", "os-vol-mig-status-attr:migstat",
                      "os-vol-mig-status-attr:name_id", "provider_id", "cluster_name"}
        shown = admin_only & set(volume)
        if token == ADMIN:
            assert {"os-vol-host-attr:host", "migration_status"} <= shown, volume
        else:
            assert not shown, (token, shown)
            assert volume["os-vol-tenant-attr:tenant_id"] == token.split(":")[1]


def _only_own(key: str) -> Callable[[str, Any], None]:
    def check(token: str, body: Any) -> None:
        if token != ADMIN:
            owners = {item.get("os-vol-tenant-attr:tenant_id")
                      or item.get("os-extended-snapshot-attributes:project_id") for item in body[key]}
            assert owners <= {token.split(":")[1]}, owners

    return check


def _no_specs(token: str, body: Any) -> None:
    for volume_type in body.get("volume_types", [body.get("volume_type")]):
        assert ("extra_specs" in volume_type) == (token == ADMIN), volume_type


OK_R = (200, 200, 200, 404)       # read own project's item
OK_W = (200, 200, 403, 404)       # change own project's item
ACC_W = (202, 202, 403, 404)
ADMIN_ONLY = (200, 403, 403, 403)
ADMIN_ONLY_202 = (202, 403, 403, 403)
ALL = (200, 200, 200, 200)
VOL, SNAP = "/v3/volumes/{volA}", "/v3/snapshots/{snapA}"

CASES = [
    # volumes
    Case("list volumes", "GET", "/v3/volumes", ALL, check=lambda t, b: None),
    Case("list volumes detail", "GET", "/v3/volumes/detail", ALL, check=_no_admin_fields),
    Case("list volumes all_tenants", "GET", "/v3/volumes/detail?all_tenants=1", ALL, check=_only_own("volumes")),
    Case("filter volumes by project", "GET", "/v3/volumes?project_id=projB", (200, 400, 400, 400)),
    Case("filter volumes by host", "GET", "/v3/volumes?host={host}", (200, 400, 400, 400)),
    Case("filter volumes old version", "GET", "/v3/volumes/detail?project_id=projB&all_tenants=true",
         ALL, version="3.30", check=_only_own("volumes")),
    Case("volume summary", "GET", "/v3/volumes/summary?all_tenants=1", ALL,
         check=lambda t, b: t == ADMIN or b["volume-summary"]["total_count"] == 1),
    Case("create volume", "POST", "/v3/volumes", (202, 202, 403, 202), body={"volume": {"size": 1}}),
    Case("create volume of a private type", "POST", "/v3/volumes", (202, 404, 403, 202),
         body={"volume": {"size": 1, "volume_type": "{secret}"}}),
    Case("show volume", "GET", VOL, OK_R, check=_no_admin_fields),
    Case("update volume", "PUT", VOL, OK_W, body={"volume": {"name": "renamed"}}),
    Case("delete volume", "DELETE", VOL, (202, 202, 403, 404), fresh=True),
    Case("force-delete volume (3.23)", "DELETE", VOL + "?force=true", ADMIN_ONLY_202, fresh=True),
    Case("volume metadata", "GET", VOL + "/metadata", OK_R),
    Case("volume metadata key", "GET", VOL + "/metadata/k", OK_R),
    Case("merge volume metadata", "POST", VOL + "/metadata", OK_W, body={"metadata": {"a": "b"}}),
    Case("replace volume metadata", "PUT", VOL + "/metadata", OK_W, body={"metadata": {"a": "b"}}),
    Case("set volume metadata key", "PUT", VOL + "/metadata/k", OK_W, body={"meta": {"k": "w"}}),
    Case("delete volume metadata key", "DELETE", VOL + "/metadata/k", OK_W, fresh=True),
    # volume actions
    Case("os-extend", "POST", VOL + "/action", ACC_W, body={"os-extend": {"new_size": 2}}, fresh=True),
    Case("os-reset_status", "POST", VOL + "/action", ADMIN_ONLY_202, body={"os-reset_status": {"status": "error"}},
         fresh=True),
    Case("os-force_delete", "POST", VOL + "/action", ADMIN_ONLY_202, body={"os-force_delete": None}, fresh=True),
    Case("os-set_bootable", "POST", VOL + "/action", OK_W, body={"os-set_bootable": {"bootable": True}}),
    Case("os-update_readonly_flag", "POST", VOL + "/action", ACC_W,
         body={"os-update_readonly_flag": {"readonly": True}}),
    Case("os-initialize_connection", "POST", VOL + "/action", OK_W,
         body={"os-initialize_connection": {"connector": CONNECTOR}}, fresh=True),
    Case("os-terminate_connection", "POST", VOL + "/action", ACC_W,
         body={"os-terminate_connection": {"connector": CONNECTOR}}, fresh=True),
    Case("os-reserve", "POST", VOL + "/action", ACC_W, body={"os-reserve": None}, fresh=True),
    Case("os-attach", "POST", VOL + "/action", ACC_W, fresh=True,
         body={"os-attach": {"instance_uuid": "6b1e0f5c-0000-4000-8000-00000000beef", "mountpoint": "/dev/vdb"}}),
    Case("revert", "POST", VOL + "/action", ACC_W, body={"revert": {"snapshot_id": "{snapA}"}}, fresh=True),
    # snapshots
    Case("list snapshots", "GET", "/v3/snapshots/detail?all_tenants=1", ALL, check=_only_own("snapshots")),
    Case("filter snapshots by project", "GET", "/v3/snapshots?project_id=projB", (200, 400, 400, 400)),
    Case("create snapshot", "POST", "/v3/snapshots", (202, 202, 403, 404), body={"snapshot": {"volume_id": "{volA}"}},
         fresh=True),
    Case("show snapshot", "GET", SNAP, OK_R),
    Case("update snapshot", "PUT", SNAP, OK_W, body={"snapshot": {"name": "renamed"}}),
    Case("delete snapshot", "DELETE", SNAP, ACC_W, fresh=True),
    Case("snapshot os-reset_status", "POST", SNAP + "/action", ADMIN_ONLY_202,
         body={"os-reset_status": {"status": "error"}}),
    Case("snapshot os-force_delete", "POST", SNAP + "/action", ADMIN_ONLY_202, body={"os-force_delete": {}},
         fresh=True),
    Case("snapshot metadata", "GET", SNAP + "/metadata", OK_R),
    Case("snapshot metadata key", "GET", SNAP + "/metadata/k", OK_R),
    Case("merge snapshot metadata", "POST", SNAP + "/metadata", OK_W, body={"metadata": {"a": "b"}}),
    Case("replace snapshot metadata", "PUT", SNAP + "/metadata", OK_W, body={"metadata": {"a": "b"}}),
    Case("set snapshot metadata key", "PUT", SNAP + "/metadata/k", OK_W, body={"meta": {"k": "w"}}),
    Case("delete snapshot metadata key", "DELETE", SNAP + "/metadata/k", OK_W, fresh=True),
    # volume types
    Case("list types", "GET", "/v3/types?is_public=None", ALL, check=_no_specs),
    Case("show type", "GET", "/v3/types/{type}", ALL, check=_no_specs),
    Case("show private type", "GET", "/v3/types/{secret}", (200, 404, 404, 200)),
    Case("create type", "POST", "/v3/types", ADMIN_ONLY, body={"volume_type": {"name": "new"}}),
    Case("update type", "PUT", "/v3/types/{type}", ADMIN_ONLY, body={"volume_type": {"description": "d"}}),
    Case("delete type", "DELETE", "/v3/types/{type}", ADMIN_ONLY_202),
    Case("list extra specs", "GET", "/v3/types/{type}/extra_specs", ADMIN_ONLY),
    Case("show extra spec", "GET", "/v3/types/{type}/extra_specs/k", ADMIN_ONLY),
    Case("set extra specs", "POST", "/v3/types/{type}/extra_specs", ADMIN_ONLY, body={"extra_specs": {"a": "b"}}),
    Case("set extra spec", "PUT", "/v3/types/{type}/extra_specs/k", ADMIN_ONLY, body={"k": "w"}),
    Case("delete extra spec", "DELETE", "/v3/types/{type}/extra_specs/k", ADMIN_ONLY_202),
    Case("type access list", "GET", "/v3/types/{secret}/os-volume-type-access", ADMIN_ONLY),
    Case("add type access", "POST", "/v3/types/{secret}/action", ADMIN_ONLY_202,
         body={"addProjectAccess": {"project": "projA"}}),
    Case("remove type access", "POST", "/v3/types/{secret}/action", ADMIN_ONLY_202,
         body={"removeProjectAccess": {"project": "projB"}}),
    # services, zones, pools, capabilities
    Case("list services", "GET", "/v3/os-services", ADMIN_ONLY),
    Case("disable service", "PUT", "/v3/os-services/disable", ADMIN_ONLY,
         body={"host": "{host}", "binary": "cinder-volume"}),
    Case("availability zones", "GET", "/v3/os-availability-zone", ALL),
    Case("pools", "GET", "/v3/scheduler-stats/get_pools?detail=true", ADMIN_ONLY),
    Case("capabilities", "GET", "/v3/capabilities/{host}", ADMIN_ONLY),
    # quotas and limits
    Case("own quotas", "GET", "/v3/os-quota-sets/projA?usage=true", (200, 200, 200, 403)),
    Case("quota defaults", "GET", "/v3/os-quota-sets/projA/defaults", (200, 200, 200, 403)),
    Case("update quotas", "PUT", "/v3/os-quota-sets/projA", ADMIN_ONLY, body={"quota_set": {"volumes": 20}}),
    Case("reset quotas", "DELETE", "/v3/os-quota-sets/projA", ADMIN_ONLY),
    Case("limits", "GET", "/v3/limits", ALL,
         check=lambda t, b: b["limits"]["absolute"]["totalVolumesUsed"] == 1),
    Case("limits of another project", "GET", "/v3/limits?project_id=projB", (200, 403, 403, 200)),
    # groups, group snapshots, group types, consistency groups
    Case("list groups", "GET", "/v3/groups/detail?all_tenants=1", ALL),
    Case("show group", "GET", "/v3/groups/{grpA}", OK_R),
    Case("create group", "POST", "/v3/groups", (202, 202, 403, 202),
         body={"group": {"group_type": "gt1", "volume_types": ["plain"]}}),
    Case("update group", "PUT", "/v3/groups/{grpA}", ACC_W, body={"group": {"name": "renamed"}}),
    Case("delete group", "POST", "/v3/groups/{grpA}/action", ACC_W, body={"delete": {"delete-volumes": False}},
         fresh=True),
    Case("reset group status", "POST", "/v3/groups/{grpA}/action", ADMIN_ONLY_202,
         body={"reset_status": {"status": "error"}}),
    Case("list group snapshots", "GET", "/v3/group_snapshots/detail?all_tenants=1", ALL),
    Case("show group snapshot", "GET", "/v3/group_snapshots/{gsA}", OK_R),
    Case("create group snapshot", "POST", "/v3/group_snapshots", (202, 202, 403, 404),
         body={"group_snapshot": {"group_id": "{grpA}"}}, fresh=True),
    Case("delete group snapshot", "DELETE", "/v3/group_snapshots/{gsA}", ACC_W, fresh=True),
    Case("reset group snapshot status", "POST", "/v3/group_snapshots/{gsA}/action", ADMIN_ONLY_202,
         body={"reset_status": {"status": "error"}}),
    Case("list group types", "GET", "/v3/group_types", ALL,
         check=lambda t, b: all(("group_specs" in g) == (t == ADMIN) for g in b["group_types"])),
    Case("create group type", "POST", "/v3/group_types", ADMIN_ONLY_202, body={"group_type": {"name": "gt2"}}),
    Case("delete group type", "DELETE", "/v3/group_types/{gtype}", (400, 403, 403, 403)),  # in use: past policy
    Case("group type specs", "GET", "/v3/group_types/{gtype}/group_specs", ADMIN_ONLY),
    Case("set group type specs", "POST", "/v3/group_types/{gtype}/group_specs", ADMIN_ONLY_202,
         body={"group_specs": {"a": "b"}}),
    Case("list consistency groups", "GET", "/v3/consistencygroups/detail?all_tenants=1", ALL),
    Case("list cgsnapshots", "GET", "/v3/cgsnapshots/detail?all_tenants=1", ALL),
    # user messages
    Case("list messages", "GET", "/v3/messages", ALL, check=lambda t, b: len(b["messages"]) == 1),
    Case("show message", "GET", "/v3/messages/{msgA}", OK_R),
    Case("delete message", "DELETE", "/v3/messages/{msgA}", (204, 204, 403, 404), fresh=True),
]


def _fill(text: str, ids: dict[str, str]) -> str:
    for key, value in ids.items():
        text = text.replace("{" + key + "}", value)
    return text


def _fresh(cloud: Cloud, world: World, case: Case) -> dict[str, str]:
    """A new project A volume (with a snapshot if the case names one) and message: one caller's action
    cannot spoil the next caller's."""
    ids = dict(world.ids)
    volume = {"volume": {"size": 1, "metadata": {"k": "v"}}}
    created = _ok(_request(cloud, "POST", "/v3/volumes", MEMBER, json=volume), 202)
    ids["volA"] = cloud.wait_volume(created["volume"]["id"], "available")["id"]
    if "{snapA}" in case.path + json.dumps(case.body):
        snap = _ok(_request(cloud, "POST", "/v3/snapshots", MEMBER,
                            json={"snapshot": {"volume_id": ids["volA"], "metadata": {"k": "v"}}}), 202)
        ids["snapA"] = cloud.wait_snapshot(snap["snapshot"]["id"], "available")["id"]
    ids["msgA"] = message(cloud, "projA")
    if "{grpA}" in case.path + json.dumps(case.body) or "{gsA}" in case.path:
        populated = "group_snapshot" in case.path + json.dumps(case.body)
        ids["grpA"], group_snapshot = _group(cloud, MEMBER, volume=populated, snapshot="{gsA}" in case.path)
        if group_snapshot is not None:
            ids["gsA"] = group_snapshot
    world.secrets_of_a |= {ids[key] for key in ("volA", "snapA", "msgA", "grpA", "gsA") if key in ids}
    return ids


def _assert_no_foreign_data(token: str, world: World, request_text: str, text: str) -> None:
    if token == ADMIN:
        return
    foreign = world.secrets_of_b if token.split(":")[1] == "projA" else world.secrets_of_a
    # An id the caller sent may come back in an error message: that teaches them nothing.
    leaked = {secret for secret in foreign if secret in text and secret not in request_text}
    assert not leaked, f"{token} received foreign data {leaked}: {text}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_policy_matrix(request: pytest.FixtureRequest, case: Case) -> None:
    # The in-memory driver where it will do (storage is not what this test is about); groups need the
    # file driver's group support.
    cloud: Cloud = request.getfixturevalue("cloud" if _needs_groups(case) else "fake_cloud")
    with cloud.client:  # one event loop for all requests (a TestClient outside `with` starts one per request)
        _run_case(cloud, case)


def _needs_groups(case: Case) -> bool:
    return "group" in case.path or "group" in json.dumps(case.body)


def _run_case(cloud: Cloud, case: Case) -> None:
    world = build_world(cloud, groups=_needs_groups(case))
    for token, expected in zip(CALLERS, case.expect, strict=True):
        ids = _fresh(cloud, world, case) if case.fresh else world.ids
        path = _fill(case.path, ids)
        body = json.loads(_fill(json.dumps(case.body), ids)) if case.body is not None else None
        response = _request(cloud, case.method, path, token, case.version,
                            **({"json": body} if body is not None else {}))
        assert response.status_code == expected, f"{case.name} as {token}: {response.status_code} {response.text}"
        if response.status_code == 403:
            name = next(iter(response.json()))
            assert name == "forbidden" and "Policy doesn't allow" in response.json()[name]["message"], response.text
        _assert_no_foreign_data(token, world, path + json.dumps(body), response.text)
        if case.check is not None and response.status_code < 300:
            assert case.check(token, response.json()) is not False, f"{case.name} as {token}: {response.text}"


def test_every_list_hides_other_projects(cloud: Cloud) -> None:
    """Every GET endpoint of the service as each non-admin caller: nothing of the other project shows."""
    world = build_world(cloud)
    lists = ["/v3/volumes", "/v3/volumes/detail", "/v3/volumes/detail?all_tenants=1&with_count=true",
             "/v3/volumes/summary", "/v3/snapshots", "/v3/snapshots/detail?all_tenants=1", "/v3/types",
             "/v3/types?is_public=None", "/v3/types?is_public=false", "/v3/os-quota-sets/{p}?usage=true",
             "/v3/os-quota-sets/{p}/defaults", "/v3/limits", "/v3/messages?all_tenants=1",
             "/v3/os-availability-zone", "/v3/volumes?sort=project_id:asc", "/v3/volumes?marker={volB}",
             "/v3/snapshots?marker={snapB}", "/v3/messages?marker={msgB}"]
    for token in (MEMBER, READER):
        for path in lists:
            url = _fill(path.replace("{p}", "projA"), world.ids)
            response = _request(cloud, "GET", url, token)
            assert response.status_code in (200, 404), f"{url} as {token}: {response.text}"
            _assert_no_foreign_data(token, world, url, response.text)
    # A marker of another project is unknown, exactly like a made-up one.
    for path in ("/v3/volumes?marker={volB}", "/v3/snapshots?marker={snapB}"):
        response = _request(cloud, "GET", _fill(path, world.ids), MEMBER)
        assert response.status_code == 404, response.text


def test_private_type_quota_keys_hidden(cloud: Cloud) -> None:
    world = build_world(cloud)
    for token, visible in ((MEMBER, False), (OTHER, True), (ADMIN, True)):
        project = token.split(":")[1]
        quota = _ok(_request(cloud, "GET", f"/v3/os-quota-sets/{project}", token), 200)["quota_set"]
        assert ("volumes_secret" in quota) is visible, quota
        assert "volumes_public-t" in quota
    assert world.ids["secret"] not in json.dumps(_request(cloud, "GET", "/v3/types?is_public=None", MEMBER).json())
