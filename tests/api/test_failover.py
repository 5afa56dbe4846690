"""Whole-backend failover, failback, freeze and thaw through the API, on the fake driver's replication.

The fake copies replicated volumes to its targets when `sync_replicas()` runs (an asynchronous
replicator's cycle) and fails over to those copies, so data written before a cycle and after it
can be told apart. States are read back through the API (`os-services`, volumes, snapshots).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import update

from cinderblock import cli
from cinderblock.db import tables
from cinderblock.volume.drivers.fake import FakeDriver
from tests.api.helpers import action, assert_fault, headers, snapshot
from tests.conftest import Cloud

HOST = "cinderblock@rep"
CONFIG = """
[DEFAULT]
enabled_backends = rep
host = cinderblock
[rep]
volume_driver = fake
fake_keep_across_restarts = true
replication_device = backend_id:site-b
replication_device = backend_id:site-c
"""
PATTERN, LATER = b"\x5a" * 4096, b"\xa5" * 4096


@pytest.fixture(autouse=True)
def _forget_fake_stores() -> Any:
    yield
    FakeDriver.forget_all()


@pytest.fixture
def rep(make_cloud: Callable[..., Cloud]) -> Cloud:
    cloud = make_cloud(CONFIG)
    for name, specs in (("replicated", {"replication_enabled": "<is> True"}), ("plain", {})):
        created = cloud.request("POST", "/v3/types", json={"volume_type": {"name": name, "extra_specs": specs}})
        assert created.status_code == 200, created.text
    return cloud


def driver(cloud: Cloud) -> FakeDriver:
    (service,) = cloud.running.volume_services
    assert isinstance(service.manager.driver, FakeDriver)
    return service.manager.driver


def service_row(cloud: Cloud) -> dict[str, Any]:
    response = cloud.request("GET", f"/v3/os-services?binary=cinder-volume&host={HOST}")
    (row,) = response.json()["services"]
    return row


def wait_service(cloud: Cloud, *statuses: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        row = service_row(cloud)
        if row["replication_status"] in statuses:
            return row
        assert time.monotonic() < deadline, f"service is {row}, not {statuses}"
        time.sleep(0.02)


def failover(cloud: Cloud, backend_id: str | None, route: str = "failover_host", **extra: Any) -> Any:
    return cloud.request("PUT", f"/v3/os-services/{route}", json={"host": HOST, "backend_id": backend_id, **extra})


def volume(cloud: Cloud, volume_id: str) -> dict[str, Any]:
    return cloud.request("GET", f"/v3/volumes/{volume_id}").json()["volume"]


def setup_volumes(cloud: Cloud) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A replicated volume holding PATTERN (replicated), a plain one with a snapshot."""
    replicated = cloud.create_volume(volume_type="replicated")
    plain = cloud.create_volume(volume_type="plain")
    assert (replicated["replication_status"], plain["replication_status"]) == ("enabled", "disabled")
    snap = snapshot(cloud, plain["id"])
    driver(cloud).write(replicated["id"], 0, PATTERN)
    driver(cloud).sync_replicas()
    return replicated, plain, snap


def test_replication_is_reported_and_bootstrapped(rep: Cloud) -> None:
    row = service_row(rep)
    assert (row["replication_status"], row["active_backend_id"], row["frozen"]) == ("enabled", None, False)
    caps = rep.request("GET", f"/v3/capabilities/{HOST}").json()
    assert caps["replication_targets"] == ["site-b", "site-c"]


def volume_row(cloud: Cloud, volume_id: str) -> tables.Volume:
    """The database row: replication state the volume view does not carry (Cinder's has no such keys)."""
    with cloud.running.core.db.read() as session:
        row = session.get(tables.Volume, volume_id)
        assert row is not None
        return row


def test_failover_switches_replicated_volumes_and_errors_the_others(rep: Cloud) -> None:
    replicated, plain, snap = setup_volumes(rep)
    response = failover(rep, "site-b")
    assert response.status_code == 202 and response.content == b""
    row = wait_service(rep, "failed-over")
    assert (row["active_backend_id"], row["status"], row["disabled_reason"]) == ("site-b", "disabled", "failed-over")
    moved = volume(rep, replicated["id"])
    assert (moved["status"], moved["replication_status"]) == ("available", "failed-over")
    assert volume_row(rep, replicated["id"]).replication_driver_data == "site:site-b"
    errored = volume(rep, plain["id"])
    assert (errored["status"], errored["replication_status"]) == ("error", "not-capable")
    assert rep.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "error"
    assert driver(rep).read(replicated["id"], 0, len(PATTERN)) == PATTERN
    # The replicated volume stays usable: a new connection is made on the active site.
    connection = action(rep, replicated["id"], {"os-initialize_connection": {"connector": {"host": "c1"}}})
    assert connection.status_code == 200, connection.text
    # The backend is disabled: new volumes go nowhere.
    assert rep.create_volume(volume_type="replicated")["status"] == "error"


def test_planned_failover_loses_nothing_written_after_the_last_cycle(rep: Cloud) -> None:
    replicated, _, _ = setup_volumes(rep)
    driver(rep).write(replicated["id"], 8192, LATER)  # after the last replication cycle
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    assert driver(rep).read(replicated["id"], 8192, len(LATER)) == LATER  # the final sync carried it


def test_lost_site_lands_on_the_last_complete_copy(rep: Cloud) -> None:
    replicated, _, _ = setup_volumes(rep)
    driver(rep).write(replicated["id"], 8192, LATER)
    driver(rep).store.active_site_lost = True
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    assert driver(rep).read(replicated["id"], 0, len(PATTERN)) == PATTERN
    assert driver(rep).read(replicated["id"], 8192, len(LATER)) == bytes(len(LATER))


def test_invalid_target_restores_the_service_and_touches_nothing(rep: Cloud) -> None:
    replicated, plain, _ = setup_volumes(rep)
    assert failover(rep, "site-z").status_code == 202
    row = wait_service(rep, "enabled")
    assert (row["status"], row["active_backend_id"]) == ("enabled", None)
    assert volume(rep, plain["id"])["status"] == "available"
    assert volume(rep, replicated["id"])["replication_status"] == "enabled"


def test_driver_error_is_failover_error_with_volumes_untouched(rep: Cloud) -> None:
    replicated, plain, snap = setup_volumes(rep)
    driver(rep).fail_next("failover_host")
    assert failover(rep, "site-b").status_code == 202
    row = wait_service(rep, "failover-error")
    assert row["status"] == "disabled" and row["disabled_reason"].startswith("failover-error: ")
    assert row["active_backend_id"] is None
    assert (volume(rep, plain["id"])["status"], volume(rep, replicated["id"])["replication_status"]) == (
        "available", "enabled")
    assert rep.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"
    # failover-error is a state to retry from (the driver reverted).
    assert failover(rep, "site-b").status_code == 202
    assert wait_service(rep, "failed-over")["active_backend_id"] == "site-b"


def test_failback_brings_back_secondary_writes_and_restores_the_other_volumes(rep: Cloud) -> None:
    replicated, plain, snap = setup_volumes(rep)
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    driver(rep).write(replicated["id"], 8192, LATER)  # written on the secondary
    assert failover(rep, "default").status_code == 202
    row = wait_service(rep, "enabled")
    assert (row["active_backend_id"], row["status"], row["disabled_reason"]) == (None, "enabled", None)
    back = volume(rep, replicated["id"])
    assert (back["status"], back["replication_status"]) == ("available", "enabled")
    assert driver(rep).read(replicated["id"], 0, len(PATTERN)) == PATTERN
    assert driver(rep).read(replicated["id"], 8192, len(LATER)) == LATER
    # The primary kept the plain volume all along: it is usable again, its snapshot too.
    restored = volume(rep, plain["id"])
    assert (restored["status"], restored["replication_status"]) == ("available", "disabled")
    assert rep.request("GET", f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available"


def test_failback_keeps_a_frozen_backend_disabled(rep: Cloud) -> None:
    setup_volumes(rep)
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    assert rep.request("PUT", "/v3/os-services/freeze", json={"host": HOST}).status_code == 200
    assert failover(rep, "default").status_code == 202
    row = wait_service(rep, "enabled")
    assert (row["frozen"], row["status"], row["disabled_reason"]) == (True, "disabled", "frozen")


def test_failover_from_one_secondary_to_another(rep: Cloud) -> None:
    replicated, _, _ = setup_volumes(rep)
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    driver(rep).write(replicated["id"], 8192, LATER)
    driver(rep).sync_replicas()
    assert failover(rep, "site-c", route="failover").status_code == 202
    deadline = time.monotonic() + 10
    while service_row(rep)["active_backend_id"] != "site-c":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert service_row(rep)["replication_status"] == "failed-over"
    assert volume(rep, replicated["id"])["replication_status"] == "failed-over"
    assert driver(rep).read(replicated["id"], 8192, len(LATER)) == LATER
    # Failing over to the target that serves now is refused by the driver: state restored.
    assert failover(rep, "site-c").status_code == 202
    time.sleep(0.3)
    assert wait_service(rep, "failed-over")["active_backend_id"] == "site-c"


def test_null_backend_id_lets_the_driver_choose(rep: Cloud) -> None:
    setup_volumes(rep)
    assert failover(rep, None).status_code == 202
    assert wait_service(rep, "failed-over")["active_backend_id"] == "site-b"


def test_restart_in_the_middle_of_a_failover_comes_back_in_failover_error(
        make_cloud: Callable[..., Cloud]) -> None:
    first = make_cloud(CONFIG)
    replicated = first.create_volume()
    # The API claimed the service, and the process died before the volume service ran the cast.
    with first.running.core.db.write() as session:
        session.execute(update(tables.Service).where(tables.Service.host == HOST)
                        .values(replication_status="failing-over"))
    first.running.stop()
    second = make_cloud(CONFIG)
    row = wait_service(second, "failover-error")
    assert (row["status"], row["disabled_reason"], row["active_backend_id"]) == (
        "disabled", "failover interrupted by a restart", None)
    assert volume(second, replicated["id"])["status"] == "available"
    assert failover(second, "site-b").status_code == 202
    assert wait_service(second, "failed-over")["active_backend_id"] == "site-b"


def test_restart_after_failover_keeps_serving_the_secondary(make_cloud: Callable[..., Cloud]) -> None:
    first = make_cloud(CONFIG)
    first.request("POST", "/v3/types", json={"volume_type": {"name": "replicated",
                                                             "extra_specs": {"replication_enabled": "<is> True"}}})
    replicated = first.create_volume(volume_type="replicated")
    assert failover(first, "site-b").status_code == 202
    wait_service(first, "failed-over")
    first.running.stop()
    second = make_cloud(CONFIG)
    row = service_row(second)
    assert (row["replication_status"], row["active_backend_id"]) == ("failed-over", "site-b")
    assert driver(second).store.active == "site-b"
    assert volume(second, replicated["id"])["status"] == "available"


def test_failover_refusals(rep: Cloud, make_cloud: Callable[..., Cloud]) -> None:
    assert_fault(rep.request("PUT", "/v3/os-services/failover_host", json={"backend_id": "site-b"}),
                 400, "badRequest", contains="Host field is missing.")
    assert_fault(rep.request("PUT", "/v3/os-services/failover_host", json={"host": "nowhere@x"}),
                 400, "badRequest", contains="No service found with host=nowhere@x")
    assert_fault(rep.request("PUT", "/v3/os-services/failover", json={"cluster": "c1"},
                             headers=headers("3.26")), 400, "badRequest", contains="No service found with cluster=c1")
    assert_fault(failover(rep, 5), 400, "badRequest", contains="backend_id must be a string or null")  # type: ignore[arg-type]
    assert_fault(rep.request("PUT", "/v3/os-services/freeze", json={"host": ["x"]}), 400, "badRequest",
                 contains="host must be a string")
    assert_fault(rep.request("PUT", "/v3/os-services/failover", json={"host": HOST, "cluster": "c1"},
                             headers=headers("3.26")), 400, "badRequest", contains="exactly one of host and cluster")
    assert service_row(rep)["replication_status"] == "enabled"  # nothing was claimed by a refused request
    member = rep.request("PUT", "/v3/os-services/failover_host", json={"host": HOST, "backend_id": "site-b"},
                         headers=headers(token="user:project:member"))
    assert member.status_code == 403
    # Two claims at once: the second finds the service failing-over (or already failed over).
    setup_volumes(rep)
    first, second = failover(rep, "site-b"), failover(rep, "site-b")
    assert first.status_code == 202
    wait_service(rep, "failed-over")
    if second.status_code != 202:
        assert_fault(second, 400, "badRequest", contains="No service could be changed")


def test_a_backend_without_targets_cannot_fail_over(fake_cloud: Cloud) -> None:
    row = fake_cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"][0]
    assert row["replication_status"] == "disabled"
    response = fake_cloud.request("PUT", "/v3/os-services/failover_host", json={"host": row["host"]})
    assert_fault(response, 400, "badRequest", contains="must be one of")


def test_failover_route_answers_clients_that_send_no_version(rep: Cloud) -> None:
    setup_volumes(rep)
    response = rep.client.put("/v3/os-services/failover", json={"host": HOST, "backend_id": "site-b"},
                              headers={"X-Auth-Token": "admin:admin"})
    assert response.status_code == 202, response.text
    assert wait_service(rep, "failed-over")["active_backend_id"] == "site-b"


def test_lag_is_recorded_per_volume(rep: Cloud) -> None:
    import json

    def extended_status(volume_id: str) -> str | None:
        return volume_row(rep, volume_id).replication_extended_status

    replicated, plain, _ = setup_volumes(rep)
    (service,) = rep.running.volume_services
    service.manager.report_now()
    status = json.loads(extended_status(replicated["id"]) or "null")
    assert set(status["targets"]) == {"site-b", "site-c"}
    for target in status["targets"].values():
        assert target["last_complete_at"] is not None and target["bytes_pending"] == 0
        assert 0 <= target["lag_seconds"] < 60
    assert extended_status(plain["id"]) is None
    # Not in the volume view: Cinder has no such key (its os-volume-replication extension is long gone).
    assert not [key for key in volume(rep, replicated["id"]) if key.startswith("os-volume-replication")]
    # cinderblock's own resource shows it to admins.
    shown = rep.request("GET", f"/v3/volumes/{replicated['id']}/replication").json()["replication"]
    # (the stats reporter may have written a newer report meanwhile: the copies themselves are the same)
    assert shown["replication_status"] == "enabled" and set(shown["targets"]) == {"site-b", "site-c"}
    for target, reported in shown["targets"].items():
        assert reported["last_complete_at"] == status["targets"][target]["last_complete_at"]
        assert reported["bytes_pending"] == 0 and 0 <= reported["lag_seconds"] < 60
    assert shown["reported_at"] >= status["reported_at"]
    plain_shown = rep.request("GET", f"/v3/volumes/{plain['id']}/replication").json()["replication"]
    assert plain_shown["targets"] == {} and plain_shown["replication_status"] != "enabled"
    member = rep.request("GET", f"/v3/volumes/{replicated['id']}/replication",
                         headers={"X-Auth-Token": "u:admin:member"})
    assert member.status_code == 403, member.text
    assert rep.request("GET", "/v3/volumes/nope/replication").status_code == 404


def test_reset_active_backend_promotes_the_secondary_without_sql(rep: Cloud, tmp_path: Any) -> None:
    setup_volumes(rep)
    assert failover(rep, "site-b").status_code == 202
    wait_service(rep, "failed-over")
    config = tmp_path / "state.conf"  # the file make_cloud wrote
    argv = ["--config-file", str(config), "--state-path", str(tmp_path / "state"), "db", "reset-active-backend",
            "--backend-host", HOST]
    assert cli.main(argv) == 1  # not frozen yet
    assert rep.request("PUT", "/v3/os-services/freeze", json={"host": HOST}).status_code == 200
    assert cli.main(argv) == 1  # the service still runs (fresh heartbeat)
    assert cli.main(argv + ["--force", "--enable-replication"]) == 0
    row = service_row(rep)
    assert (row["replication_status"], row["active_backend_id"], row["status"], row["frozen"]) == (
        "enabled", None, "enabled", True)
    assert cli.main(argv + ["--force", "--active-backend-id", "site-c"]) == 1  # no longer disabled


def test_restart_settles_an_interrupted_group_replication_change(make_cloud: Callable[..., Cloud]) -> None:
    from tests.api.test_groups import make_group, make_group_type

    first = make_cloud(CONFIG)
    first.request("POST", "/v3/types", json={"volume_type": {"name": "replicated",
                                                             "extra_specs": {"replication_enabled": "<is> True"}}})
    make_group_type(first, "rg", {"group_replication_enabled": "<is> True"})
    group = make_group(first, ["replicated"], group_type="rg")
    member = first.create_volume(volume_type="replicated", group_id=group["id"])
    with first.running.core.db.write() as session:  # the claim was written, the process died
        session.execute(update(tables.Group).where(tables.Group.id == group["id"])
                        .values(replication_status="enabling"))
        session.execute(update(tables.Volume).where(tables.Volume.id == member["id"])
                        .values(replication_status="enabling"))
    first.running.stop()
    second = make_cloud(CONFIG)
    shown = second.request("GET", f"/v3/groups/{group['id']}", headers=headers("3.38")).json()["group"]
    assert (shown["status"], shown["replication_status"]) == ("error", "error")
    assert volume(second, member["id"])["replication_status"] == "error"


@pytest.mark.parametrize(("entry", "message"), [
    ("path:/x", "has no backend_id"),
    ("backend_id:default, path:/x", "must not be 'default'"),
    ("backend_id:b, nocolon", "is not key:value"),
])
def test_a_malformed_replication_device_stops_only_its_backend(
        make_cloud: Callable[..., Cloud], entry: str, message: str, caplog: pytest.LogCaptureFixture) -> None:
    cloud = make_cloud(f"[DEFAULT]\nenabled_backends = bad\nhost = cinderblock\n[bad]\nvolume_driver = fake\n"
                       f"replication_device = {entry}\n")
    assert cloud.running.volume_services == []  # the backend did not start; the service did
    assert message in caplog.text
    row = cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"][0]
    assert row["state"] == "down"


def test_duplicate_replication_targets_are_refused() -> None:
    from cinderblock.model.errors import DriverError
    from cinderblock.volume.driver import replication_devices

    with pytest.raises(DriverError, match="backend_ids repeat"):
        replication_devices({"replication_device": ["backend_id:b", "backend_id:b, path:/y"]})
    (device,) = replication_devices({"replication_device": ["backend_id:b, path:/srv/b, user:c"]})
    assert (device.backend_id, dict(device.options)) == ("b", {"path": "/srv/b", "user": "c"})
