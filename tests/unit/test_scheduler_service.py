"""The scheduler inside a running (embedded) cinderblock: retry on driver failure, a burst against a
small pool, zones from the volume type, and the capacity check of extend. Real database, real
in-memory fake driver, the HTTP API; failures are injected with FakeDriver.fail_next."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from cinderblock.db import tables
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import RequestSpec
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.workflows import create as create_workflow
from tests.api.helpers import action, assert_fault
from tests.conftest import Cloud

TWO_FAKES = """
[DEFAULT]
enabled_backends = f1,f2
quota_volumes = 100
{extra}
[f1]
volume_driver = fake
volume_backend_name = fake
fake_capacity_gb = 2000
[f2]
volume_driver = fake
volume_backend_name = fake
fake_capacity_gb = 1000
backend_availability_zone = {f2_zone}
"""


def two_fakes(make_cloud: Callable[..., Cloud], extra: str = "", f2_zone: str = "nova") -> Cloud:
    return make_cloud(TWO_FAKES.format(extra=extra, f2_zone=f2_zone))


def driver(cloud: Cloud, backend: str) -> FakeDriver:
    for service in cloud.running.volume_services:
        if service.backend.name == backend:
            fake = service.manager.driver
            assert isinstance(fake, FakeDriver)
            return fake
    raise AssertionError(backend)


def create(cloud: Cloud, size: int = 1, **fields: Any) -> dict[str, Any]:
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": size, **fields}})
    assert response.status_code == 202, response.text
    return cloud.wait_volume(response.json()["volume"]["id"], "available", "error")


def messages_of(cloud: Cloud, volume_id: str) -> list[dict[str, Any]]:
    response = cloud.request("GET", f"/v3/messages?resource_uuid={volume_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def creates(fake: FakeDriver) -> list[str | None]:
    return [ident for method, ident in fake.calls if method == "create_volume"]


def test_a_failed_create_is_retried_on_another_backend(make_cloud: Callable[..., Cloud]) -> None:
    cloud = two_fakes(make_cloud)
    f1, f2 = driver(cloud, "f1"), driver(cloud, "f2")
    assert create(cloud)["os-vol-host-attr:host"].endswith("@f1#fake")  # the roomier backend comes first
    f1.fail_next("create_volume")
    volume = create(cloud)
    assert volume["status"] == "available" and volume["os-vol-host-attr:host"].endswith("@f2#fake")
    assert creates(f1)[-1] == volume["id"] and creates(f2) == [volume["id"]]
    assert ("delete_volume", volume["id"]) in f1.calls  # what the failed create left is removed
    assert messages_of(cloud, volume["id"]) == []


def test_every_backend_failing_ends_in_error_with_a_message(make_cloud: Callable[..., Cloud]) -> None:
    cloud = two_fakes(make_cloud)
    driver(cloud, "f1").fail_next("create_volume")
    driver(cloud, "f2").fail_next("create_volume")
    volume = create(cloud, 2)
    assert volume["status"] == "error"
    assert volume["os-vol-host-attr:host"] is None  # no backend that gave up keeps it
    (message,) = messages_of(cloud, volume["id"])
    assert message["event_id"] == "VOLUME_VOLUME_001_003"
    assert "IgnoreAttemptedHostsFilter removed the last candidates" in message["user_message"]
    assert "2 backend(s) tried" in message["user_message"]
    # Both backends are usable afterwards; the error volume deletes without a backend.
    assert create(cloud)["status"] == "available"
    assert cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")


def test_max_attempts_bounds_the_retries(make_cloud: Callable[..., Cloud]) -> None:
    cloud = two_fakes(make_cloud, extra="scheduler_max_attempts = 1")
    driver(cloud, "f1").fail_next("create_volume")
    volume = create(cloud)
    assert volume["status"] == "error" and creates(driver(cloud, "f2")) == []
    (message,) = messages_of(cloud, volume["id"])
    assert "scheduler_max_attempts is 1" in message["user_message"]


def test_a_failed_clone_is_retried_only_on_the_source_backend(make_cloud: Callable[..., Cloud]) -> None:
    cloud = two_fakes(make_cloud)
    source = create(cloud)
    assert source["os-vol-host-attr:host"].endswith("@f1#fake")
    driver(cloud, "f1").fail_next("create_cloned_volume")
    response = cloud.request("POST", "/v3/volumes", json={"volume": {"source_volid": source["id"]}})
    clone = cloud.wait_volume(response.json()["volume"]["id"], "available", "error")
    assert clone["status"] == "error"  # f2 cannot read the source's bytes
    (message,) = messages_of(cloud, clone["id"])
    assert "IgnoreAttemptedHostsFilter" in message["user_message"]
    assert [i for m, i in driver(cloud, "f2").calls if m == "create_cloned_volume"] == []


BURST = """
[DEFAULT]
enabled_backends = small
quota_volumes = 100
[small]
volume_driver = fake
fake_capacity_gb = 10
max_over_subscription_ratio = 1.0
"""


def test_a_burst_fills_a_small_pool_exactly(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud(BURST)
    ids = []
    for _ in range(15):  # no waiting in between: placements race the capability reports
        response = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1}})
        assert response.status_code == 202
        ids.append(response.json()["volume"]["id"])
    final = [cloud.wait_volume(volume_id, "available", "error")["status"] for volume_id in ids]
    assert final.count("available") == 10 and final.count("error") == 5
    refused = [volume_id for volume_id, status in zip(ids, final, strict=True) if status == "error"]
    for volume_id in refused:
        (message,) = messages_of(cloud, volume_id)
        assert "CapacityFilter removed the last candidates" in message["user_message"]


def test_a_delete_frees_room_for_the_next_create_without_a_report(make_cloud: Callable[..., Cloud]) -> None:
    """Capability reports stopped: the room of a deleted volume comes back from the delete itself."""
    cloud = make_cloud(BURST)
    first = create(cloud, 6)
    assert first["status"] == "available"
    reporter = cloud.running.volume_services[0].manager.reporter
    _wait_for_report_counting(cloud, 6)
    reporter.stop()
    assert create(cloud, 6)["status"] == "error"  # 4 GiB left
    assert cloud.request("DELETE", f"/v3/volumes/{first['id']}").status_code == 202
    cloud.wait_gone(f"/v3/volumes/{first['id']}")
    again = create(cloud, 6)
    assert again["status"] == "available", again


def _wait_for_report_counting(cloud: Cloud, provisioned: float, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pools = cloud.request("GET", "/v3/scheduler-stats/get_pools?detail=true").json()["pools"]
        if [p["capabilities"]["provisioned_capacity_gb"] for p in pools] == [provisioned]:
            return
        time.sleep(0.05)
    raise AssertionError(f"no report counted {provisioned} GiB within {timeout} s")


def test_type_zones_place_the_volume(make_cloud: Callable[..., Cloud]) -> None:
    cloud = two_fakes(make_cloud, f2_zone="az2")
    type_id = cloud.request("POST", "/v3/types", json={"volume_type": {
        "name": "in-az2", "extra_specs": {"RESKEY:availability_zones": "az2,az3"}}}).json()["volume_type"]["id"]
    volume = create(cloud, volume_type=type_id)
    assert (volume["status"], volume["availability_zone"]) == ("available", "az2")
    assert volume["os-vol-host-attr:host"].endswith("@f2#fake")
    refused = cloud.request("POST", "/v3/volumes", json={"volume": {"size": 1, "volume_type": type_id,
                                                                    "availability_zone": "nova"}})
    assert_fault(refused, 400, "badRequest", contains="not one of the volume type's availability zones")
    # Without a type restricting zones, the default zone applies (Cinder): f1 in nova.
    assert create(cloud)["os-vol-host-attr:host"].endswith("@f1#fake")


def test_extend_checks_the_pool(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud(BURST)
    volume = create(cloud, 4)
    refused = action(cloud, volume["id"], {"os-extend": {"new_size": 20}})
    assert_fault(refused, 400, "badRequest", contains="no room to grow it by 16 GiB")
    assert cloud.wait_volume(volume["id"], "available")["size"] == 4
    assert action(cloud, volume["id"], {"os-extend": {"new_size": 8}}).status_code == 202
    assert cloud.wait_volume(volume["id"], "available")["size"] == 8


def test_no_scheduler_to_retry_ends_in_error_with_a_message(fake_cloud: Cloud) -> None:
    """The volume service cannot hand a failed create back: it ends the create itself."""
    deps = fake_cloud.running.volume_services[0].manager.deps
    with deps.db.write() as session:  # a volume waiting for a backend, as the API leaves it
        type_id = session.scalar(select(tables.VolumeType.id))
        row = tables.Volume(project_id="0c0c", user_id="u", size=1, status="creating", attach_status="detached",
                            volume_type_id=type_id, availability_zone="nova")
        session.add(row)
        session.flush()
        volume_id = row.id
    driver = deps.driver
    assert isinstance(driver, FakeDriver)
    driver.fail_next("create_volume")

    def no_scheduler(spec: RequestSpec) -> None:
        raise ServiceUnavailable("No cinder-scheduler service is running.")

    create_workflow.create_volume(deps, volume_id, "fake", RequestSpec(volume_id, 1, "0c0c"), no_scheduler)
    volume = fake_cloud.wait_volume(volume_id, "error")
    assert volume["os-vol-host-attr:host"] is None
    response = fake_cloud.request("GET", "/v3/messages", headers={"X-Auth-Token": "u:0c0c"})
    (message,) = response.json()["messages"]
    assert (message["resource_uuid"], message["event_id"]) == (volume_id, "VOLUME_VOLUME_001_009")
    assert message["user_message"] == "schedule allocate volume: Driver failed to create the volume."
