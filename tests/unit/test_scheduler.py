"""Placement (placement/filter_scheduler.py with filters/ and weighers/), the host manager's pool
table (placement/backend_state.py) and the scheduler options."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cinderblock.config import options
from cinderblock.config.settings import ConfigError, SchedulerSettings, build_config, load_settings
from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import BackendStateStore, PoolState, pools_of_report
from cinderblock.placement.filter_scheduler import FilterScheduler, choose
from cinderblock.placement.pools import equal_after_convert, filter_pools
from cinderblock.placement.registry import FILTERS, WEIGHERS
from cinderblock.volume.loading import driver_options


def pool(name: str = "p", host: str = "node@local", **caps: Any) -> PoolState:
    capabilities = {"pool_name": name, "total_capacity_gb": 100, "free_capacity_gb": 100,
                    "provisioned_capacity_gb": 0, "reserved_percentage": 0, "thin_provisioning_support": False,
                    "thick_provisioning_support": True, "max_over_subscription_ratio": 1.0,
                    "volume_backend_name": "local", "availability_zone": "nova", **caps}
    return PoolState(host, name, capabilities, time.monotonic())


def spec(size: int = 1, **fields: Any) -> RequestSpec:
    return RequestSpec(volume_id="v", size_gb=size, project_id="p", **fields)


# --- filters: which one removed the last candidates ---------------------------------------------------
def test_no_pools_at_all() -> None:
    decision = choose([], spec())
    assert decision.pool is None and decision.rejected_by is None and "reported" in (decision.reason or "")


@pytest.mark.parametrize("request_spec,rejected_by,words", [
    (spec(required_backend="other@local#p"), "RequiredBackendFilter", "source"),
    (spec(attempted=("node@local#a", "node@local#b")), "IgnoreAttemptedHostsFilter", "2 backend(s) tried"),
    (spec(availability_zone="mars"), "AvailabilityZoneFilter", "availability zone mars"),
    (spec(extra_specs={"RESKEY:availability_zones": "mars, venus"}), "AvailabilityZoneFilter", "mars, venus"),
    (spec(availability_zone="nova", extra_specs={"RESKEY:availability_zones": "mars"}), "AvailabilityZoneFilter",
     "not one of"),
    (spec(extra_specs={"volume_backend_name": "other"}), "CapabilitiesFilter", "(volume_backend_name)"),
    (spec(extra_specs={"capabilities:thin_provisioning_support": "<is> True"}), "CapabilitiesFilter",
     "thin_provisioning_support"),
    (spec(extra_specs={"multiattach": "<is> True"}), "CapabilitiesFilter", "multiattach"),
    (spec(extra_specs={"tier": "gold"}), "CapabilitiesFilter", "tier"),
    (spec(101), "CapacityFilter", "101 GiB"),
    (spec(extra_specs={"provisioning:type": "thin"}), "CapacityFilter", "thin provisioning"),
])
def test_rejections_name_the_filter(request_spec: RequestSpec, rejected_by: str, words: str) -> None:
    decision = choose([pool("a"), pool("b")], request_spec)
    assert decision.pool is None and decision.rejected_by == rejected_by
    assert decision.reason is not None and decision.reason.startswith(f"{rejected_by} removed the last candidates")
    assert words in decision.reason
    assert "node@local" not in decision.reason  # users never see backend names


@pytest.mark.parametrize("request_spec", [
    spec(100), spec(required_backend="node@local#a"), spec(required_backend="node@local"),
    spec(attempted=("node@local#b",)),
    spec(availability_zone="nova"), spec(extra_specs={"RESKEY:availability_zones": "mars,nova"}),
    spec(extra_specs={"volume_backend_name": "local", "capabilities:volume_backend_name": "local"}),
    spec(extra_specs={"volume_backend_name": "<or> other <or> local"}),
    spec(extra_specs={"vendor:whatever": "x", "qos:iops": "1", "multiattach": "<is> False"}),
    spec(extra_specs={"provisioning:type": "thick"}),
    spec(extra_specs={"capabilities:nested:level": ">= 2"}),
])
def test_acceptances(request_spec: RequestSpec) -> None:
    assert choose([pool("a", nested={"level": 3})], request_spec).pool is not None


def test_filters_run_in_configured_order_and_can_be_left_out() -> None:
    pools = [pool("a", volume_backend_name="x", free_capacity_gb=1)]
    wanted = spec(50, extra_specs={"volume_backend_name": "y"})
    assert choose(pools, wanted).rejected_by == "CapacityFilter"  # default order: AZ, capacity, capabilities
    only_caps = SchedulerSettings(filters=("CapabilitiesFilter", "CapacityFilter"))
    assert choose(pools, wanted, only_caps).rejected_by == "CapabilitiesFilter"
    no_capacity = SchedulerSettings(filters=("AvailabilityZoneFilter",))
    assert choose(pools, spec(50), no_capacity).pool is not None
    # The mandatory filters run whatever the configuration says.
    nothing = SchedulerSettings(filters=())
    assert choose(pools, spec(required_backend="elsewhere@b"), nothing).rejected_by == "RequiredBackendFilter"


def test_type_zones_choose_among_backends() -> None:
    pools = [pool("a", availability_zone="az1"), pool("b", availability_zone="az2")]
    assert choose(pools, spec(extra_specs={"RESKEY:availability_zones": "az2,az3"})).pool is pools[1]
    assert choose(pools, spec(availability_zone="az1")).pool is pools[0]


# --- weighers --------------------------------------------------------------------------------------
def test_capacity_weigher_spreads_by_default_and_stacks_when_negative() -> None:
    small, large = pool("small", free_capacity_gb=30), pool("large", free_capacity_gb=80)
    assert choose([small, large], spec()).pool is large
    stacking = SchedulerSettings(capacity_weight_multiplier=-1.0)
    assert choose([small, large], spec(), stacking).pool is small
    # Placements since the report steer the next choice.
    store = BackendStateStore()
    store.consume(large, 60)
    assert choose([small, large], spec()).pool is small


def test_spreading_across_a_backend_name_shared_by_two_backends() -> None:
    store = BackendStateStore()
    thin = {"thin_provisioning_support": True, "max_over_subscription_ratio": 20.0, "total_capacity_gb": 100,
            "free_capacity_gb": 100, "volume_backend_name": "fast", "availability_zone": "nova"}
    store.update("node@fast1", {"pools": [{"pool_name": "ssd1", **thin}]})
    store.update("node@fast2", {"pools": [{"pool_name": "ssd2", **thin}]})
    store.update("node@big", {"pools": [{"pool_name": "hdd", **thin, "volume_backend_name": "big",
                                         "total_capacity_gb": 10000}]})
    placed = []
    for index in range(6):
        decision = choose(store.fresh_pools(), spec(1, extra_specs={"volume_backend_name": "fast"}))
        assert decision.pool is not None
        store.consume(decision.pool, 1, f"v{index}")
        placed.append(decision.pool.service_host)
    assert placed.count("node@fast1") == placed.count("node@fast2") == 3


def test_infinite_capacity_is_the_least_wanted() -> None:
    known, unknown = pool("known", free_capacity_gb=5), pool("unknown", free_capacity_gb="unknown")
    assert choose([unknown, known], spec()).pool is known
    assert choose([unknown, known], spec(), SchedulerSettings(capacity_weight_multiplier=-1.0)).pool is known
    assert choose([unknown], spec(10 ** 6)).pool is unknown  # passes any size


def test_allocated_capacity_and_volume_number_weighers() -> None:
    busy = pool("busy", allocated_capacity_gb=50, total_volumes=9)
    quiet = pool("quiet", allocated_capacity_gb=10, total_volumes=1, free_capacity_gb=20)
    by_allocated = SchedulerSettings(weighers=("AllocatedCapacityWeigher",))
    by_count = SchedulerSettings(weighers=("VolumeNumberWeigher",))
    assert choose([busy, quiet], spec(), by_allocated).pool is quiet
    assert choose([busy, quiet], spec(), by_count).pool is quiet
    assert choose([busy, quiet], spec()).pool is busy  # default: most free space
    quiet.consume(10)
    quiet.volumes_placed += 10  # placements count as volumes until the next report
    assert choose([busy, quiet], spec(), by_count).pool is busy
    assert choose([busy, quiet], spec(), SchedulerSettings(allocated_capacity_weight_multiplier=1.0,
                                                           weighers=("AllocatedCapacityWeigher",))).pool is busy


def test_weights_are_normalised_and_summed() -> None:
    # a: most free (capacity 1 × 1) but most volumes (1 × −1): total 0. b: least free and fewest
    # volumes: 0 + 0. c: free 0.5 × 1, volumes 0.2 × −1: total 0.3, the winner.
    a = pool("a", free_capacity_gb=100, total_volumes=10)
    b = pool("b", free_capacity_gb=0.0, total_volumes=0)
    c = pool("c", free_capacity_gb=50, total_volumes=2)
    settings = SchedulerSettings(weighers=("CapacityWeigher", "VolumeNumberWeigher"))
    scheduler = FilterScheduler(settings)
    scores = scheduler.scores([a, b, c], spec(0))
    assert scores == pytest.approx([0.0, 0.0, 0.5 - 0.2])
    assert scheduler.choose([a, b, c], spec(0)).pool is c
    # A weigher whose values are all equal adds nothing; a zero multiplier switches it off.
    assert FilterScheduler(SchedulerSettings(weighers=("VolumeNumberWeigher",))).scores(
        [pool("x"), pool("y")], spec()) == [-0.0, -0.0]
    assert FilterScheduler(SchedulerSettings(capacity_weight_multiplier=0.0)).scores([a, b], spec()) is None


def test_ties_prefer_fewer_placements() -> None:
    a, b = pool("a"), pool("b")
    a.volumes_placed = 3
    assert choose([a, b], spec(0)).pool is b
    assert choose([pool("x"), pool("y")], spec()).pool.pool_name == "x"  # then the first


# --- the pool table --------------------------------------------------------------------------------
def test_pools_inherit_backend_keys_and_legacy_reports_are_one_pool() -> None:
    report = {"volume_backend_name": "rbd", "replication_enabled": True, "multiattach": True,
              "pools": [{"pool_name": "a", "multiattach": False}, {"pool_name": "b"}]}
    a, b = pools_of_report("node@rbd", report, 0.0)
    assert (a.capabilities["replication_enabled"], a.capabilities["multiattach"]) == (True, False)
    assert b.capabilities["multiattach"] is True and "pools" not in b.capabilities
    (legacy,) = pools_of_report("node@rbd", {"volume_backend_name": "RBD", "free_capacity_gb": "infinite"}, 0.0)
    assert legacy.address == "node@rbd#RBD" and legacy.capacity_unbounded


def test_store_replaces_pools_and_ages_them() -> None:
    store = BackendStateStore(max_age=60)
    store.update("a@x", {"pools": [{"pool_name": "p1"}, {"pool_name": "p2"}]}, now=1000)
    store.update("b@y", {"pools": [{"pool_name": "p1"}]}, now=1000)
    assert sorted(p.address for p in store.fresh_pools(now=1000)) == ["a@x#p1", "a@x#p2", "b@y#p1"]
    assert [p.address for p in store.fresh_pools({"b@y"}, now=1000)] == ["b@y#p1"]
    store.update("a@x", {"pools": [{"pool_name": "p3"}]}, now=1030)
    assert sorted(p.address for p in store.all_pools()) == ["a@x#p3", "b@y#p1"]
    assert [p.address for p in store.fresh_pools(now=1070)] == ["a@x#p3"]  # b@y is 70 s old
    assert store.fresh_pools(now=2000) == [] and store.capabilities("b@y") == {"pools": [{"pool_name": "p1"}]}


REPORT = {"pools": [{"pool_name": "p", "total_capacity_gb": 10, "free_capacity_gb": 10, "provisioned_capacity_gb": 0,
                     "thin_provisioning_support": True, "max_over_subscription_ratio": 1.0}]}


def _reported(provisioned: float) -> dict[str, Any]:
    return {"pools": [{**REPORT["pools"][0], "provisioned_capacity_gb": provisioned}]}


def test_placements_stay_counted_until_a_report_counts_them() -> None:
    store = BackendStateStore()
    store.update("n@b", REPORT, now=0)
    (state,) = store.fresh_pools(now=0)
    store.consume(state, 4, "v1")
    store.consume(state, 3, "v2")
    # A report made while both creates run counts neither: they stay consumed.
    store.update("n@b", _reported(0), now=1)
    (state,) = store.fresh_pools(now=1)
    assert state.provisioned_gb == 7 and sorted(store.pending("n@b")) == ["v1", "v2"]
    # v1 ended long before the next report: that report counts it. v2 ended just now: kept once more.
    store.update("n@b", _reported(4), now=2, finished={"v1": 5.0, "v2": 0.1})
    (state,) = store.fresh_pools(now=2)
    assert state.provisioned_gb == 7 and store.pending("n@b") == ["v2"]
    store.update("n@b", _reported(7), now=3)
    (state,) = store.fresh_pools(now=3)
    assert state.provisioned_gb == 7 and store.pending("n@b") == []


def test_release_gives_back_what_a_failed_create_consumed() -> None:
    store = BackendStateStore()
    store.update("n@b", REPORT, now=0)
    (state,) = store.fresh_pools(now=0)
    store.consume(state, 6, "v1")
    store.update("n@b", _reported(0), now=1)  # still pending on the new pool state
    assert store.release("v1") is not None and store.release("v1") is None
    (state,) = store.fresh_pools(now=1)
    assert state.provisioned_gb == 0 and state.volumes_placed == 0


# --- get_pools filters -----------------------------------------------------------------------------
VIEWS = [{"name": "n@fast#ssd", "capabilities": {"volume_backend_name": "fast", "thin_provisioning_support": True,
                                                 "max_over_subscription_ratio": 20.0, "total_capacity_gb": 10,
                                                 "free_capacity_gb": 10, "tier": "gold", "iops": 5000}},
         {"name": "n@big#hdd", "capabilities": {"volume_backend_name": "big", "thin_provisioning_support": True,
                                                "max_over_subscription_ratio": 20.0, "total_capacity_gb": 10,
                                                "free_capacity_gb": 10, "tier": "bronze", "iops": 100}}]


@pytest.mark.parametrize("kwargs,names", [
    ({}, ["n@fast#ssd", "n@big#hdd"]),
    ({"name": "n@big#hdd"}, ["n@big#hdd"]),
    ({"capabilities": {"tier": "gold"}}, ["n@fast#ssd"]),
    ({"capabilities": {"iops": "100"}}, ["n@big#hdd"]),
    ({"capabilities": {"thin_provisioning_support": "true"}}, ["n@fast#ssd", "n@big#hdd"]),
    ({"type_specs": {"iops": ">= 1000"}}, ["n@fast#ssd"]),
    ({"type_specs": {"volume_backend_name": "big"}}, ["n@big#hdd"]),
    ({"type_specs": {"provisioning:type": "thick"}}, []),
    ({"type_specs": {}}, ["n@fast#ssd", "n@big#hdd"]),
])
def test_get_pools_filters(kwargs: dict[str, Any], names: list[str]) -> None:
    assert [p["name"] for p in filter_pools(VIEWS, SchedulerSettings(), **kwargs)] == names


@pytest.mark.parametrize("capability,value,expected", [
    (True, "True", True), (True, "false", False), (5000, "5000", True), ("gold", "gold", True),
    (None, "None", False), (1.5, "1.5", True),
])
def test_equal_after_convert(capability: Any, value: str, expected: bool) -> None:
    assert equal_after_convert(capability, value) is expected


# --- options -----------------------------------------------------------------------------------------
def test_scheduler_options_use_cinder_names(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text("[DEFAULT]\nscheduler_default_filters = CapacityFilter\n"
                    "scheduler_default_weighers = CapacityWeigher,VolumeNumberWeigher\n"
                    "capacity_weight_multiplier = -2\nvolume_number_multiplier = -0.5\n"
                    "scheduler_max_attempts = 5\nbackend_stats_polling_interval = 20\nmessage_ttl = 60\n")
    settings = load_settings(build_config(config_files=[str(conf)]), driver_options, state_path=str(tmp_path))
    assert settings.scheduler == SchedulerSettings(
        filters=("CapacityFilter",), weighers=("CapacityWeigher", "VolumeNumberWeigher"),
        capacity_weight_multiplier=-2.0, volume_number_multiplier=-0.5, max_attempts=5, pool_max_age=60.0,
        message_ttl=60)


@pytest.mark.parametrize("line,option", [
    ("scheduler_default_filters = CapacityFilter,JsonFilter", "scheduler_default_filters"),
    ("scheduler_default_weighers = GoodnessWeigher", "scheduler_default_weighers"),
    ("scheduler_max_attempts = 0", "scheduler_max_attempts"),
])
def test_bad_scheduler_options_stop_the_start(tmp_path: Path, line: str, option: str) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(f"[DEFAULT]\n{line}\n")
    with pytest.raises(ConfigError, match=option):
        load_settings(build_config(config_files=[str(conf)]), driver_options, state_path=str(tmp_path))


def test_the_reason_names_the_filter_that_removed_the_matching_pools() -> None:
    """Default order is capacity before capabilities: a full pool of the right backend must not read
    as 'no backend offers the capabilities' only."""
    full = pool("full", volume_backend_name="big", free_capacity_gb=2)
    roomy = pool("roomy", volume_backend_name="fast")
    decision = choose([full, roomy], spec(5, extra_specs={"volume_backend_name": "big"}))
    assert decision.rejected_by == "CapabilitiesFilter"
    assert decision.reason is not None and decision.reason.endswith(
        "; CapacityFilter removed the ones it accepts: no backend has 5 GiB of capacity left for this volume")
    nowhere = choose([full, roomy], spec(1, extra_specs={"volume_backend_name": "none"}))
    assert nowhere.reason is not None and "removed the ones" not in nowhere.reason


def test_the_names_config_accepts_are_the_registered_classes() -> None:
    """config checks scheduler_default_filters/_weighers against its name tables (it imports no scheduler
    code); the registry maps the same names to classes."""
    assert sorted(options.SCHEDULER_FILTER_NAMES) == sorted(FILTERS)
    assert sorted(options.SCHEDULER_WEIGHER_NAMES) == sorted(WEIGHERS)
