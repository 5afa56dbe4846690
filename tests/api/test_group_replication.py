"""Group replication (3.38, reference §6.3): enable, disable, fail over and back, list targets.

Through the HTTP API of an embedded cloud whose fake backend has two replication targets; real
SQLite, the fake driver's bytes for the data checks, `fail_next` for driver failures.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from cinderblock.db import group_tables as gt
from cinderblock.db import tables
from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.drivers.fake import FakeDriver
from tests.api.helpers import assert_fault, headers, set_volume
from tests.conftest import ADMIN, Cloud

CONFIG = """[DEFAULT]
enabled_backends = fake
[fake]
volume_driver = fake
replication_device = backend_id:b1, san_password:hunter2
replication_device = backend_id:b2
"""
REPLICATED = {"group_replication_enabled": "<is> True"}
MIB = 1024 * 1024


def ok(response: Any, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


@pytest.fixture
def rcloud(make_cloud: Callable[..., Cloud]) -> Cloud:
    cloud = make_cloud(CONFIG)
    for name, specs in (("rep", {"replication_enabled": "<is> True"}), ("plain", {})):
        created = ok(cloud.request("POST", "/v3/types", json={"volume_type": {"name": name}}), 200)
        if specs:
            ok(cloud.request("POST", f"/v3/types/{created['volume_type']['id']}/extra_specs",
                             json={"extra_specs": specs}), 200)
    for name, specs in (("rgt", REPLICATED), ("crgt", {"consistent_group_replication_enabled": "<is> True"}),
                        ("gt1", {})):
        ok(cloud.request("POST", "/v3/group_types", json={"group_type": {"name": name, "group_specs": specs}}))
    return cloud


def driver(cloud: Cloud) -> FakeDriver:
    fake = cloud.running.volume_services[0].manager.driver
    assert isinstance(fake, FakeDriver)
    return fake


def group_path(group_id: str) -> str:
    return f"/v3/groups/{group_id}"


def show(cloud: Cloud, group_id: str) -> dict[str, Any]:
    return dict(ok(cloud.request("GET", group_path(group_id)), 200)["group"])


def wait_group(cloud: Cloud, group_id: str, *rep_statuses: str, timeout: float = 10.0) -> dict[str, Any]:
    """Until the group's replication_status is one of `rep_statuses`."""
    deadline = time.monotonic() + timeout
    group: dict[str, Any] = {}
    while time.monotonic() < deadline:
        group = show(cloud, group_id)
        if group["replication_status"] in rep_statuses:
            return group
        time.sleep(0.02)
    raise AssertionError(f"group {group_id} is {group.get('replication_status')}, not {rep_statuses}")


def volume(cloud: Cloud, volume_id: str) -> dict[str, Any]:
    return dict(ok(cloud.request("GET", f"/v3/volumes/{volume_id}"), 200)["volume"])


def make_group(cloud: Cloud, group_type: str = "rgt", types: tuple[str, ...] = ("rep",), members: int = 2,
               name: str = "g1") -> tuple[dict[str, Any], list[str]]:
    body = {"group": {"name": name, "group_type": group_type, "volume_types": list(types)}}
    created = ok(cloud.request("POST", "/v3/groups", json=body))["group"]
    group = cloud._wait(group_path(created["id"]), "group", ("available", "error"), 10.0)
    assert group["status"] == "available", group
    ids = [cloud.create_volume(1, volume_type=types[i % len(types)], group_id=group["id"])["id"]
           for i in range(members)]
    return group, ids


def act(cloud: Cloud, group_id: str, body: Any, version: str = "3.38", token: str = "admin:admin") -> Any:
    return cloud.request("POST", f"{group_path(group_id)}/action", json=body, headers=headers(version, token))


def enable(cloud: Cloud, group_id: str) -> dict[str, Any]:
    ok(act(cloud, group_id, {"enable_replication": {}}))
    return wait_group(cloud, group_id, "enabled", "error")


def failover(cloud: Cloud, group_id: str, target: str | None = None, allow: bool = False) -> dict[str, Any]:
    ok(act(cloud, group_id, {"failover_replication": {"allow_attached_volume": allow,
                                                      "secondary_backend_id": target}}))
    return wait_group(cloud, group_id, "failed-over", "enabled", "error")


def rep_statuses(cloud: Cloud, ids: list[str]) -> list[str]:
    return [volume(cloud, i)["replication_status"] for i in ids]


def set_frozen(cloud: Cloud, frozen: bool) -> None:
    with cloud.running.core.db.write() as session:
        for service in session.query(tables.Service).filter_by(binary="cinder-volume"):
            service.frozen = frozen


def row(cloud: Cloud, table: type[Any], ident: str) -> Any:
    with cloud.running.core.db.read() as session:
        found = session.get(table, ident)
        assert found is not None
        session.expunge(found)
        return found


# --- enable / disable ------------------------------------------------------------------------
def test_enable_and_disable(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    assert group["replication_status"] == "disabled"
    # Volumes of a replicated type on a backend with targets replicate from their creation on.
    assert rep_statuses(cloud, ids) == ["enabled", "enabled"]
    # The {} cinderclient sends and the null openstacksdk sends.
    shown = enable(cloud, group["id"])
    assert (shown["status"], shown["replication_status"]) == ("available", "enabled")
    assert rep_statuses(cloud, ids) == ["enabled", "enabled"]
    assert ("enable_group_replication", group["id"]) in driver(cloud).calls
    ok(act(cloud, group["id"], {"disable_replication": None}))
    shown = wait_group(cloud, group["id"], "disabled", "error")
    assert (shown["status"], shown["replication_status"]) == ("available", "disabled")
    assert rep_statuses(cloud, ids) == ["disabled", "disabled"]
    assert not set(ids) & driver(cloud).store.replicated
    # disabled → enabling → enabled again; members too.
    ok(act(cloud, group["id"], {"enable_replication": None}))
    assert wait_group(cloud, group["id"], "enabled")["status"] == "available"
    assert rep_statuses(cloud, ids) == ["enabled", "enabled"]
    assert set(ids) <= driver(cloud).store.replicated
    # A frozen backend refuses enable and disable (not failover: that is what freezing prepares for).
    set_frozen(cloud, True)
    for name in ("enable_replication", "disable_replication"):
        assert_fault(act(cloud, group["id"], {name: {}}), 400, "badRequest", contains="frozen")
    assert failover(cloud, group["id"], "b1")["replication_status"] == "failed-over"
    assert failover(cloud, group["id"], "default")["replication_status"] == "enabled"
    set_frozen(cloud, False)
    # The consistent flavour of the group type qualifies too; an in-use member is fine for enable.
    other, other_ids = make_group(cloud, group_type="crgt", members=1, name="g2")
    set_volume(cloud, other_ids[0], status="in-use")
    assert enable(cloud, other["id"])["replication_status"] == "enabled"
    # replication_status is in the group views from 3.38 only.
    assert "replication_status" not in ok(cloud.request("GET", group_path(group["id"]),
                                                        headers=headers("3.37")), 200)["group"]
    listed = ok(cloud.request("GET", "/v3/groups/detail", headers=headers("3.38")), 200)["groups"]
    assert {g["id"]: g["replication_status"] for g in listed} == {group["id"]: "enabled", other["id"]: "enabled"}


def test_refusals(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    path = group_path(group["id"])
    # Below 3.38 the actions do not exist (404, like Cinder's microversion check).
    for name in ("enable_replication", "disable_replication", "failover_replication", "list_replication_targets"):
        assert_fault(act(cloud, group["id"], {name: {}}, version="3.37"), 404, "itemNotFound")
    # A group type that does not ask for replication; a volume type that does not.
    plain_type, _ = make_group(cloud, group_type="gt1", members=0, name="g2")
    for name in ("enable_replication", "disable_replication", "failover_replication", "list_replication_targets"):
        assert_fault(act(cloud, plain_type["id"], {name: {}}), 400, "badRequest",
                     contains="is not a replication group type")
    plain_member, _ = make_group(cloud, types=("rep", "plain"), members=0, name="g3")
    assert_fault(act(cloud, plain_member["id"], {"enable_replication": {}}), 400, "badRequest",
                 contains="does not have 'replication_enabled' spec key set to '<is> True'")
    # Bad bodies.
    assert_fault(act(cloud, group["id"], {"enable_replication": {"x": 1}}), 400, "badRequest")
    assert_fault(act(cloud, group["id"], {"failover_replication": {"allow_attached_volume": "maybe"}}),
                 400, "badRequest")
    assert_fault(act(cloud, group["id"], {"failover_replication": {"secondary_backend_id": 5}}), 400, "badRequest")
    # disable from disabled, failover from disabled: wrong replication status.
    assert_fault(act(cloud, group["id"], {"disable_replication": {}}), 400, "badRequest",
                 contains="replication status must be enabled or error")
    assert_fault(act(cloud, group["id"], {"failover_replication": {}}), 400, "badRequest",
                 contains="replication status must be enabled or failed-over")
    # Failback when nothing failed over.
    enable(cloud, group["id"])
    assert_fault(act(cloud, group["id"], {"failover_replication": {"secondary_backend_id": "default"}}),
                 400, "badRequest", contains="is not failed over")
    # Group status: enable and failover need available; disable available or error.
    ok(act(cloud, group["id"], {"reset_status": {"status": "error"}}))
    assert_fault(act(cloud, group["id"], {"enable_replication": {}}), 400, "badRequest",
                 contains="status must be available")
    assert_fault(act(cloud, group["id"], {"failover_replication": {}}), 400, "badRequest",
                 contains="status must be available")
    ok(act(cloud, group["id"], {"reset_status": {"status": "available"}}))
    # A member in a wrong status; an attached member without allow_attached_volume.
    set_volume(cloud, ids[0], status="error")
    assert_fault(act(cloud, group["id"], {"enable_replication": {}}), 400, "badRequest",
                 contains=f"Volume {ids[0]} status must be available or in-use")
    set_volume(cloud, ids[0], status="in-use")
    assert_fault(act(cloud, group["id"], {"failover_replication": {"allow_attached_volume": False}}),
                 400, "badRequest", contains=f"Volume {ids[0]} is attached but allow_attached_volume flag is False")
    set_volume(cloud, ids[1], replication_status="error")
    assert_fault(act(cloud, group["id"], {"enable_replication": {}}), 400, "badRequest",
                 contains=f"Volume {ids[1]} replication status must be disabled or enabled")
    # Nothing of the refused calls changed anything.
    assert show(cloud, group["id"])["replication_status"] == "enabled"
    assert rep_statuses(cloud, ids) == ["enabled", "error"]
    assert [c for c in driver(cloud).calls if c[0] in ("failover_group", "disable_group_replication")] == []
    # Policy: readers may not act (403); another project's group is not found (404).
    assert_fault(act(cloud, group["id"], {"list_replication_targets": {}}, token="u:admin:reader"),
                 403, "forbidden")
    assert_fault(act(cloud, group["id"], {"enable_replication": {}}, token="u:other:member"), 404, "itemNotFound")
    assert cloud.request("GET", path).status_code == 200


def test_racing_calls_only_one_proceeds(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    path = f"{group_path(group['id'])}/action"
    # A call in flight (the group is still enabling): a second one is refused.
    with cloud.running.core.db.write() as session:
        session.get(gt.Group, group["id"]).replication_status = "enabling"  # type: ignore[union-attr]
    for body in ({"enable_replication": {}}, {"disable_replication": {}}, {"failover_replication": {}}):
        assert_fault(act(cloud, group["id"], body), 400, "badRequest", contains="Invalid group: ")
    with cloud.running.core.db.write() as session:
        session.get(gt.Group, group["id"]).replication_status = "enabled"  # type: ignore[union-attr]
    # Real threads: only one disable can win (disabled does not accept a second one whatever the timing),
    # and only one failback.
    for body, final in (({"disable_replication": {}}, "disabled"),
                        ({"enable_replication": {}}, "enabled"),
                        ({"failover_replication": {"secondary_backend_id": "b1"}}, "failed-over"),
                        ({"failover_replication": {"secondary_backend_id": "default"}}, "enabled")):
        results = race(cloud, 8, lambda client, body=body: client.post(path, json=body))
        counts = Counter(r.status_code for r in results)
        assert counts[202] >= 1 and counts[202] + counts[400] == 8, [r.text for r in results]
        if "disable_replication" in body or body == {"failover_replication": {"secondary_backend_id": "default"}}:
            assert counts[202] == 1, [r.text for r in results]
        for result in results:
            if result.status_code == 400:
                assert result.json()["badRequest"]["message"].startswith("Invalid group: "), result.text
        shown = wait_group(cloud, group["id"], final)
        assert shown["status"] == "available"
        assert rep_statuses(cloud, ids) == [final, final]


def race(cloud: Cloud, count: int, make_request: Callable[[TestClient], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    versioned = {**ADMIN, "OpenStack-API-Version": "volume 3.38"}

    def run(index: int) -> None:
        client = TestClient(cloud.running.app, base_url="http://cinderblock.test", headers=versioned)
        barrier.wait()
        try:
            results[index] = make_request(client)
        except BaseException as error:  # surfaced by the assertion below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(not isinstance(r, BaseException) and r is not None for r in results), results
    return results


def test_enable_and_disable_driver_failures(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    driver(cloud).fail_next("enable_group_replication", DriverError("array said no"))
    ok(act(cloud, group["id"], {"enable_replication": {}}))
    shown = wait_group(cloud, group["id"], "error")
    assert shown["status"] == "error"
    assert rep_statuses(cloud, ids) == ["error", "error"]
    assert [volume(cloud, i)["status"] for i in ids] == ["available", "available"]  # data untouched
    assert "array said no" in (row(cloud, gt.Group, group["id"]).error_reason or "")
    # The way out: disable (group error, replication error are accepted), then enable again.
    ok(act(cloud, group["id"], {"disable_replication": {}}))
    shown = wait_group(cloud, group["id"], "disabled")
    assert rep_statuses(cloud, ids) == ["disabled", "disabled"]
    ok(act(cloud, group["id"], {"reset_status": {"status": "available"}}))
    assert enable(cloud, group["id"])["replication_status"] == "enabled"
    driver(cloud).fail_next("disable_group_replication")
    ok(act(cloud, group["id"], {"disable_replication": {}}))
    shown = wait_group(cloud, group["id"], "error")
    assert shown["status"] == "error" and rep_statuses(cloud, ids) == ["error", "error"]


# --- failover / failback -------------------------------------------------------------------
def test_failover_and_failback_keep_the_data(rcloud: Cloud) -> None:
    cloud = rcloud
    fake = driver(cloud)
    group, ids = make_group(cloud)
    enable(cloud, group["id"])
    # Written before a replication cycle, then after it: the final sync of the failover takes both.
    for n, volume_id in enumerate(ids):
        fake.write(volume_id, 0, f"first-{n}".encode())
    fake.sync_replicas()
    for n, volume_id in enumerate(ids):
        fake.write(volume_id, MIB, f"second-{n}".encode())
    before = {i: (fake.read(i, 0, 16), fake.read(i, MIB, 16)) for i in ids}
    shown = failover(cloud, group["id"], "b1")
    assert (shown["status"], shown["replication_status"]) == ("available", "failed-over")
    for volume_id in ids:
        shown_volume = volume(cloud, volume_id)
        assert (shown_volume["status"], shown_volume["replication_status"]) == ("available", "failed-over")
        assert row(cloud, tables.Volume, volume_id).replication_driver_data == "site:b1"  # the ModelUpdate
        assert (fake.read(volume_id, 0, 16), fake.read(volume_id, MIB, 16)) == before[volume_id]
    assert ("failover_group", group["id"]) in fake.calls
    # Written on the target, then back to the primary: enabled, and nothing written is lost.
    for volume_id in ids:
        fake.write(volume_id, 2 * MIB, b"on-the-target")
    ok(act(cloud, group["id"], {"failover_replication": {"allow_attached_volume": False,
                                                         "secondary_backend_id": "default"}}))
    shown = wait_group(cloud, group["id"], "enabled", "error")
    assert (shown["status"], shown["replication_status"]) == ("available", "enabled")
    assert rep_statuses(cloud, ids) == ["enabled", "enabled"]
    for volume_id in ids:
        assert fake.read(volume_id, 2 * MIB, 13) == b"on-the-target"
        assert (fake.read(volume_id, 0, 16), fake.read(volume_id, MIB, 16)) == before[volume_id]
        assert row(cloud, tables.Volume, volume_id).replication_driver_data == "site:default"


def test_failover_attached_members_and_sdk_body(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    enable(cloud, group["id"])
    set_volume(cloud, ids[0], status="in-use")
    # openstacksdk sends the failover body under "modify_body_for_action" (its bug): accepted.
    ok(act(cloud, group["id"], {"modify_body_for_action": {"allow_attached_volume": True,
                                                           "secondary_backend_id": None}}))
    shown = wait_group(cloud, group["id"], "failed-over", "error")
    assert shown["replication_status"] == "failed-over"
    assert [(v["status"], v["replication_status"]) for v in map(lambda i: volume(cloud, i), ids)] == [
        ("in-use", "failed-over"), ("available", "failed-over")]
    # The driver picks the target when none is named (its stats reporter may have called it since).
    assert ("failover_group", group["id"]) in driver(cloud).calls


def test_failover_invalid_target_changes_nothing(rcloud: Cloud) -> None:
    cloud = rcloud
    group, ids = make_group(cloud)
    enable(cloud, group["id"])
    ok(act(cloud, group["id"], {"failover_replication": {"secondary_backend_id": "nowhere"}}))
    shown = wait_group(cloud, group["id"], "enabled", "error", "failed-over")
    assert ("failover_group", group["id"]) in driver(cloud).calls
    assert (shown["status"], shown["replication_status"]) == ("available", "enabled")
    assert rep_statuses(cloud, ids) == ["enabled", "enabled"]
    # From failed-over, an invalid target restores failed-over.
    assert failover(cloud, group["id"], "b2")["replication_status"] == "failed-over"
    driver(cloud).fail_next("failover_group", InvalidReplicationTarget("b9 is gone"))
    ok(act(cloud, group["id"], {"failover_replication": {"secondary_backend_id": "b1"}}))
    shown = wait_group(cloud, group["id"], "failed-over", "error", "enabled")
    assert (shown["status"], shown["replication_status"]) == ("available", "failed-over")
    assert rep_statuses(cloud, ids) == ["failed-over", "failed-over"]
    assert [volume(cloud, i)["status"] for i in ids] == ["available", "available"]


def test_failover_driver_error_and_member_failure(rcloud: Cloud) -> None:
    cloud = rcloud
    fake = driver(cloud)
    group, ids = make_group(cloud)
    enable(cloud, group["id"])
    fake.fail_next("failover_group", DriverError("replication link down"))
    shown = failover(cloud, group["id"], "b1")
    assert (shown["status"], shown["replication_status"]) == ("error", "error")
    assert "replication link down" in (row(cloud, gt.Group, group["id"]).error_reason or "")
    assert rep_statuses(cloud, ids) == ["error", "error"]

    # One member has no copy on the target: it alone goes to failover-error/error; the group to error.
    other, other_ids = make_group(cloud, name="g2")
    enable(cloud, other["id"])
    set_volume(cloud, other_ids[1], status="in-use")
    with fake.store.lock:
        fake.store.replicas["b2"].pop(other_ids[1])
        fake.store.active_site_lost = True  # no final sync: the missing copy stays missing
    try:
        shown = failover(cloud, other["id"], "b2", allow=True)
    finally:
        fake.store.active_site_lost = False
    assert (shown["status"], shown["replication_status"]) == ("error", "error")
    good, bad = volume(cloud, other_ids[0]), volume(cloud, other_ids[1])
    assert (good["status"], good["replication_status"]) == ("available", "failed-over")
    assert (bad["status"], bad["replication_status"]) == ("error", "failover-error")
    bad_row = row(cloud, tables.Volume, other_ids[1])
    assert bad_row.previous_status == "in-use" and "no copy of the volume on b2" in (bad_row.error_reason or "")


def test_list_replication_targets(rcloud: Cloud) -> None:
    cloud = rcloud
    group, _ = make_group(cloud, members=0)
    for token in ("admin:admin", "u:admin:member"):
        answer = ok(act(cloud, group["id"], {"list_replication_targets": {}}, token=token), 200)
        # Only the ids: never the other replication_device keys (a password here), not even to admins.
        assert answer == {"replication_targets": [{"backend_id": "b1"}, {"backend_id": "b2"}]}
        assert "hunter2" not in str(answer)
    # The null openstacksdk sends.
    assert ok(act(cloud, group["id"], {"list_replication_targets": None}), 200)["replication_targets"]
