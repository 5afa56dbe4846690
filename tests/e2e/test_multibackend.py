"""Several backends in one volume service, placed by the filter scheduler, through the real `cinder` CLI.

One `cinderblock serve` runs four file backends from one cinder.conf: `fast1` and `fast2` share the
backend name `fast` (different pool directories and custom capabilities), `big` is small on purpose
(no over-subscription and a reserve that leaves a few GiB), and `broken` cannot start (a bad option).
"""
from __future__ import annotations

import math
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import RUNNING, SERVICE_CACHE, Server, properties, table_rows

GiB = 1024**3


def _reserve_leaving_a_few_gib(directory: Path) -> tuple[int, float]:
    """reserved_percentage that leaves 6+ GiB of this filesystem to the `big` pool, and those GiB."""
    st = os.statvfs(directory)
    total = round(st.f_blocks * st.f_frsize / GiB, 2)
    for percent in range(99, -1, -1):
        room = total - math.floor(total * percent / 100)
        if room >= 6:
            return percent, room
    raise AssertionError(f"{directory} is too small ({total} GiB)")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, float]]:
    workdir = tmp_path_factory.mktemp("multibackend")
    pools = workdir / "pools"
    pools.mkdir()
    reserve, room = _reserve_leaving_a_few_gib(pools)
    config = f"""
[DEFAULT]
enabled_backends = fast1,fast2,big,broken
quota_volumes = -1
quota_gigabytes = -1

[backend_defaults]
volume_driver = file
max_over_subscription_ratio = 20.0

[fast1]
volume_backend_name = fast
file_pool_paths = ssd1:{pools}/fast1
extra_capabilities = tier:gold,iops:5000

[fast2]
volume_backend_name = fast
file_pool_paths = ssd2:{pools}/fast2
extra_capabilities = tier:gold,iops:3000

[big]
volume_backend_name = big
file_pool_paths = hdd:{pools}/big
extra_capabilities = {{"tier": "bronze", "iops": 100}}
max_over_subscription_ratio = 1.0
reserved_percentage = {reserve}

[broken]
file_pool_paths = {pools}/broken
extra_capabilities = not-a-pair
"""
    server = Server(workdir, config, name="multibackend").start()
    yield server, room
    # Like Server.stop, but the log holds the broken backend's start failure, on purpose.
    RUNNING.remove(server)
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(30) == 0, server.log_tail()
    log = server.log_path.read_text(errors="replace")
    assert "broken failed to start" in log and "extra_capabilities 'not-a-pair' cannot be read" in log
    assert log.count("Traceback") == 1, server.log_tail(400)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def volume_type(server: Server, *specs: str) -> str:
    name = unique("type")
    server.cinder("type-create", name)
    server.cinder("type-key", name, "set", *specs)
    return name


def create(server: Server, type_name: str, size: int = 1, status: str = "available") -> dict[str, str]:
    shown = properties(server.cinder("create", "--volume-type", type_name, "--name", unique("v"), str(size)).stdout)
    server.wait_volume(shown["id"], status)
    return properties(server.cinder("show", shown["id"]).stdout)


def backend_of(volume: dict[str, str]) -> str:
    """`fast1` of host@fast1#ssd1."""
    return volume["os-vol-host-attr:host"].split("@", 1)[1].split("#")[0]


def pools_detail(server: Server, *args: str) -> list[dict[str, str]]:
    """`cinder get-pools --detail` prints one Property/Value table per pool."""
    pools: list[dict[str, str]] = [{}]
    for row in table_rows(server.cinder(*args).stdout):  # later tables' headers come as rows
        if row.get("Property") == "Property":
            pools.append({})
        elif row.get("Property"):
            pools[-1][row["Property"]] = row["Value"]
    return [pool for pool in pools if pool]


def messages_about(server: Server, volume_id: str) -> list[dict[str, str]]:
    return [row for row in table_rows(server.cinder("message-list").stdout) if row["Resource UUID"] == volume_id]


def test_one_service_runs_every_backend_and_lists_the_broken_one_down(cloud: tuple[Server, float]) -> None:
    server, _ = cloud
    rows = {row["Host"].split("@")[-1]: row for row in table_rows(server.cinder("service-list").stdout)
            if row["Binary"] == "cinder-volume"}
    assert set(rows) == {"fast1", "fast2", "big", "broken"}
    assert {name: rows[name]["State"] for name in rows} == {"fast1": "up", "fast2": "up", "big": "up",
                                                           "broken": "down"}


def test_pools_with_their_capabilities(cloud: tuple[Server, float]) -> None:
    server, room = cloud
    pools = {pool["name"].split("@", 1)[1]: pool for pool in pools_detail(server, "get-pools", "--detail")}
    assert set(pools) == {"fast1#ssd1", "fast2#ssd2", "big#hdd"}  # the broken backend reports nothing
    assert (pools["fast1#ssd1"]["volume_backend_name"], pools["fast2#ssd2"]["volume_backend_name"]) == ("fast", "fast")
    assert (pools["fast1#ssd1"]["tier"], pools["fast1#ssd1"]["iops"], pools["fast2#ssd2"]["iops"]) == (
        "gold", "5000", "3000")
    assert (pools["big#hdd"]["tier"], pools["big#hdd"]["max_over_subscription_ratio"]) == ("bronze", "1.0")
    assert pools["big#hdd"]["thin_provisioning_support"] == "True"
    # Filters (3.33 in the client): capability keys, and a volume type's extra specs (3.35).
    gold = volume_type(server, "capabilities:iops=>= 4000")
    by_type = pools_detail(server, "--os-volume-api-version", "3.35", "get-pools", "--filters", f"volume_type={gold}")
    assert [pool["name"].split("@", 1)[1] for pool in by_type] == ["fast1#ssd1"]
    bronze = pools_detail(server, "--os-volume-api-version", "3.35", "get-pools", "--detail", "--filters",
                          "tier=bronze")
    assert [pool["name"].split("@", 1)[1] for pool in bronze] == ["big#hdd"]
    host = pools["big#hdd"]["name"].split("#")[0]
    capabilities = server.ok("GET", f"/capabilities/{host}")
    assert capabilities["volume_backend_name"] == "big" and capabilities["properties"]["tier"] == "bronze"


def test_types_route_each_volume_to_its_backend(cloud: tuple[Server, float]) -> None:
    server, _ = cloud
    routes = {
        volume_type(server, "capabilities:iops=>= 4000"): "fast1",  # only fast1 has that many
        volume_type(server, "volume_backend_name=fast", "iops=<= 4000"): "fast2",
        volume_type(server, "tier=<or> bronze <or> silver"): "big",
        volume_type(server, "volume_backend_name=big", "capabilities:tier=s== bronze"): "big",
    }
    made = []
    for type_name, backend in routes.items():
        volume = create(server, type_name)
        assert backend_of(volume) == backend, volume
        made.append(volume["id"])
    server.cinder("delete", *made)


def test_two_backends_with_one_name_share_the_volumes(cloud: tuple[Server, float]) -> None:
    server, _ = cloud
    fast = volume_type(server, "volume_backend_name=fast")
    volumes = [create(server, fast) for _ in range(4)]
    placed = [backend_of(volume) for volume in volumes]
    assert set(placed) == {"fast1", "fast2"}, placed  # spread by free capacity, not stacked
    server.cinder("delete", *[volume["id"] for volume in volumes])


def test_a_type_nothing_satisfies_ends_in_error_with_a_message(cloud: tuple[Server, float]) -> None:
    server, _ = cloud
    platinum = volume_type(server, "tier=platinum")
    volume = create(server, platinum, status="error")
    assert volume["status"] == "error"
    (row,) = messages_about(server, volume["id"])
    assert row["Resource Type"] == "VOLUME" and row["Event ID"] == "VOLUME_VOLUME_001_003"
    assert "CapabilitiesFilter removed the last candidates" in row["User Message"]
    message = properties(server.cinder("message-show", row["ID"]).stdout)
    assert "(tier)" in message["user_message"] and message["message_level"] == "ERROR"
    thick = create(server, volume_type(server, "provisioning:type=thick"), status="error")
    (row,) = messages_about(server, thick["id"])
    assert "no backend supports thick provisioning" in row["User Message"]
    server.cinder("message-delete", message["id"])
    assert messages_about(server, volume["id"]) == []
    server.cinder("delete", volume["id"], thick["id"])


def test_a_small_pool_fills_up(cloud: tuple[Server, float]) -> None:
    server, room = cloud
    big = volume_type(server, "volume_backend_name=big")
    size = math.floor(room / 2)  # two fit; a third cannot: room − 2·size < size
    first, second = create(server, big, size), create(server, big, size)
    assert backend_of(first) == backend_of(second) == "big"
    third = create(server, big, size, status="error")
    (row,) = messages_about(server, third["id"])
    message = properties(server.cinder("message-show", row["ID"]).stdout)["user_message"]
    assert f"CapacityFilter removed the ones it accepts: no backend has {size} GiB" in message
    # Room comes back when a volume goes: at once, from the delete itself (no waiting for a report).
    server.cinder("delete", first["id"], third["id"])
    server.wait_gone(f"/volumes/{first['id']}")
    again = create(server, big, size)
    assert backend_of(again) == "big"
    server.cinder("delete", second["id"], again["id"])


def test_a_disabled_backend_gets_nothing(cloud: tuple[Server, float]) -> None:
    server, _ = cloud
    host = next(row["Host"] for row in table_rows(server.cinder("service-list").stdout)
                if row["Host"].endswith("@fast1"))
    only_fast1 = volume_type(server, "capabilities:iops=>= 4000")
    fast = volume_type(server, "volume_backend_name=fast")
    server.cinder("service-disable", host, "cinder-volume")
    try:
        time.sleep(SERVICE_CACHE + 0.3)
        refused = create(server, only_fast1, status="error")
        (row,) = messages_about(server, refused["id"])
        assert "removed the last candidates" in row["User Message"]
        placed = [backend_of(create(server, fast)) for _ in range(3)]
        assert placed == ["fast2"] * 3
        assert "fast1#ssd1" not in [p["name"].split("@")[1] for p in pools_detail(server, "get-pools")]
    finally:
        server.cinder("service-enable", host, "cinder-volume")
    time.sleep(SERVICE_CACHE + 0.3)
    assert backend_of(create(server, only_fast1)) == "fast1"
