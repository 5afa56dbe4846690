"""Several backends in one volume service: option lookup (section → [backend_defaults] → default),
a service row per backend, one backend failing to start while the others run, and the pools they
report (with backend-level capabilities inherited)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cinderblock.config.settings import ConfigError, build_config, load_settings
from cinderblock.volume.loading import driver_options
from cinderblock.volume.drivers.file.capabilities import parse_extra_capabilities
from cinderblock.model.errors import DriverError
from tests.conftest import Cloud

MULTI = """
[DEFAULT]
host = node1
storage_availability_zone = nova
enabled_backends = a,b,c

[backend_defaults]
volume_driver = fake
reserved_percentage = 5
max_over_subscription_ratio = auto
fake_capacity_gb = 50

[a]
reserved_percentage = 7
backend_host = other
backend_availability_zone = az9
volume_backend_name = shared

[b]
max_over_subscription_ratio = 2.5
fake_capacity_gb = 70
volume_backend_name = shared

[c]
volume_driver = cinderblock.volume.drivers.fake.FakeDriver
"""


def settings_of(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    conf = tmp_path / "c.conf"
    conf.write_text(text)
    return load_settings(build_config(config_files=[str(conf)]), driver_options, state_path=str(tmp_path))


def test_each_option_comes_from_the_section_then_backend_defaults_then_its_default(tmp_path: Path) -> None:
    backends = {b.name: b for b in settings_of(tmp_path, MULTI).backends}
    a, b, c = backends["a"], backends["b"], backends["c"]
    assert (a.service_host, b.service_host, c.service_host) == ("other@a", "node1@b", "node1@c")
    assert (a.availability_zone, b.availability_zone, c.availability_zone) == ("az9", "nova", "nova")
    assert [x.options["reserved_percentage"] for x in (a, b, c)] == [7, 5, 5]
    assert [x.options["max_over_subscription_ratio"] for x in (a, b, c)] == ["auto", "2.5", "auto"]
    assert [x.options["fake_capacity_gb"] for x in (a, b, c)] == [50, 70, 50]  # driver options too
    assert [x.options["volume_backend_name"] for x in (a, b, c)] == ["shared", "shared", "c"]
    assert [x.options["target_helper"] for x in (a, b, c)] == ["local"] * 3  # the option's default


@pytest.mark.parametrize("text,words", [
    ("[DEFAULT]\nenabled_backends = a\n[a]\nmax_over_subscription_ratio = 0.5\n", "max_over_subscription_ratio"),
    ("[DEFAULT]\nenabled_backends = a\n[backend_defaults]\nmax_over_subscription_ratio = lots\n",
     "max_over_subscription_ratio"),
    ("[DEFAULT]\nenabled_backends = a,a\n", "twice"),
    ("[DEFAULT]\nenabled_backends = a\n[a]\nvolume_driver = nosuch.Driver\n", "volume_driver"),
    ("[DEFAULT]\nenabled_backends = a\n[a]\nreserved_percentage = 101\n", "reserved_percentage"),
])
def test_bad_backend_options_stop_the_start(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        settings_of(tmp_path, text)


def test_one_service_runs_every_backend(make_cloud: Callable[..., Cloud]) -> None:
    cloud = make_cloud(MULTI)
    services = cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"]
    assert sorted((s["host"], s["zone"], s["state"]) for s in services) == [
        ("node1@b", "nova", "up"), ("node1@c", "nova", "up"), ("other@a", "az9", "up")]
    pools = cloud.request("GET", "/v3/scheduler-stats/get_pools?detail=true").json()["pools"]
    by_name = {pool["name"]: pool["capabilities"] for pool in pools}
    assert sorted(by_name) == ["node1@b#fake", "node1@c#fake", "other@a#fake"]
    assert by_name["node1@b#fake"]["total_capacity_gb"] == 70 and by_name["other@a#fake"]["reserved_percentage"] == 7
    assert by_name["other@a#fake"]["availability_zone"] == "az9"


BROKEN = """
[DEFAULT]
enabled_backends = good,broken
[good]
volume_driver = file
file_pool_paths = one:{root}/one, two:{root}/two
extra_capabilities = tier:gold,replication_enabled:true,iops:5000
[broken]
volume_driver = file
file_pool_paths = {root}/broken
extra_capabilities = tier
"""


def test_a_backend_that_cannot_start_is_down_and_the_others_run(make_cloud: Callable[..., Cloud],
                                                                  tmp_path: Path) -> None:
    cloud = make_cloud(BROKEN.format(root=tmp_path))
    services = cloud.request("GET", "/v3/os-services?binary=cinder-volume").json()["services"]
    state = {s["host"].split("@")[1]: s["state"] for s in services}
    assert state == {"good": "up", "broken": "down"}
    pools = cloud.request("GET", "/v3/scheduler-stats/get_pools?detail=true").json()["pools"]
    assert sorted(p["name"].split("@")[1] for p in pools) == ["good#one", "good#two"]
    for pool in pools:  # every pool inherits the backend's keys, typed
        caps = pool["capabilities"]
        assert (caps["tier"], caps["replication_enabled"], caps["iops"]) == ("gold", True, 5000)
    response = cloud.request("POST", "/v3/types", json={"volume_type": {
        "name": "replicated", "extra_specs": {"replication_enabled": "<is> True", "iops": "= 4000"}}})
    volume = cloud.create_volume(1, volume_type=response.json()["volume_type"]["id"])
    assert volume["status"] == "available" and "@good#" in volume["os-vol-host-attr:host"]


@pytest.mark.parametrize("text,expected", [
    ("", {}), ("tier:gold", {"tier": "gold"}), ("a:1, b:2.5,c:true,d:False,e:x:y", {
        "a": 1, "b": 2.5, "c": True, "d": "False", "e": "x:y"}),
    ('{"tier": "gold", "nested": {"k": 1}, "list": ["a", "b"]}',
     {"tier": "gold", "nested": {"k": 1}, "list": ["a", "b"]}),
])
def test_extra_capabilities(text: str, expected: dict[str, object]) -> None:
    assert parse_extra_capabilities(text) == expected


@pytest.mark.parametrize("text", ["tier", "a:1,:2", "{broken", "[1, 2]"])
def test_bad_extra_capabilities(text: str) -> None:
    with pytest.raises(DriverError, match="extra_capabilities"):
        parse_extra_capabilities(text)
