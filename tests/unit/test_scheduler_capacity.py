"""Capacity math (scheduler/capacity.py, the one formula of CapacityFilter and CapacityWeigher):
thin vs thick, over-subscription including `auto`, reserved share, unknown capacity, placements
between reports, and the filter and the weigher agreeing on every pool."""
from __future__ import annotations

import math
import random
import time
from typing import Any

import pytest

from cinderblock.config.settings import SchedulerSettings
from cinderblock.model.records import RequestSpec
from cinderblock.scheduler import capacity
from cinderblock.scheduler.backend_state import BackendStateStore, PoolState
from cinderblock.scheduler.capacity import FAILS, UNLIMITED
from cinderblock.scheduler.filter_scheduler import FilterScheduler
from cinderblock.scheduler.filters.capacity import CapacityFilter
from cinderblock.scheduler.weighers.capacity import CapacityWeigher, virtual_free

THICK = {"thin_provisioning_support": False, "thick_provisioning_support": True}
THIN = {"thin_provisioning_support": True, "thick_provisioning_support": False}
BOTH = {"thin_provisioning_support": True, "thick_provisioning_support": True}


def pool(name: str = "p", host: str = "node@local", **caps: Any) -> PoolState:
    capabilities = {"pool_name": name, "total_capacity_gb": 100, "free_capacity_gb": 100,
                    "provisioned_capacity_gb": 0, "reserved_percentage": 0, "max_over_subscription_ratio": 1.0,
                    "volume_backend_name": "local", "availability_zone": "nova", **THICK, **caps}
    return PoolState(host, name, capabilities, time.monotonic())


def spec(size: int = 1, provisioning: str | None = None) -> RequestSpec:
    specs = {"provisioning:type": provisioning} if provisioning else {}
    return RequestSpec(volume_id="v", size_gb=size, project_id="p", extra_specs=specs)


AUTO_80_60 = 1 + 80 / (100 - 60 + 1)


@pytest.mark.parametrize("caps,expected", [
    # thick: min(F, T − floor(T·r) − P)
    ({}, 100.0),
    ({"free_capacity_gb": 50, "provisioned_capacity_gb": 50}, 50.0),
    ({"free_capacity_gb": 50, "reserved_percentage": 10}, 50.0),  # F is the tighter bound
    ({"free_capacity_gb": 95, "reserved_percentage": 10, "provisioned_capacity_gb": 5}, 85.0),
    ({"free_capacity_gb": 100, "provisioned_capacity_gb": 100}, 0.0),
    ({"total_capacity_gb": 99.5, "reserved_percentage": 10, "free_capacity_gb": 99.5}, 99.5 - 9),  # floor
    # provisioned defaults to allocated when the driver does not report it
    ({"provisioned_capacity_gb": None, "allocated_capacity_gb": 30}, 70.0),
    # thin: (T − floor(T·r))·R − P; free space does not enter
    ({**THIN, "max_over_subscription_ratio": 2.0, "free_capacity_gb": 50, "provisioned_capacity_gb": 150}, 50.0),
    ({**THIN, "max_over_subscription_ratio": 2.0, "free_capacity_gb": 50, "provisioned_capacity_gb": 150,
      "reserved_percentage": 10}, 30.0),
    ({**THIN, "max_over_subscription_ratio": 20.0, "free_capacity_gb": 10}, 2000.0),
    ({**THIN, "max_over_subscription_ratio": "20.0", "provisioned_capacity_gb": 2100}, -100.0),
    ({**THIN, "max_over_subscription_ratio": 1.0, "provisioned_capacity_gb": 30, "reserved_percentage": 50}, 20.0),
    # auto: 1 + P/(T − F + 1); 20 while nothing is provisioned
    ({**THIN, "max_over_subscription_ratio": "auto", "free_capacity_gb": 60, "provisioned_capacity_gb": 80},
     100 * AUTO_80_60 - 80),
    ({**THIN, "max_over_subscription_ratio": "auto", "free_capacity_gb": 100}, 2000.0),
    # an explicit ratio below 1 (or junk) rules a thin-capable pool out
    ({**THIN, "max_over_subscription_ratio": 0.5}, FAILS),
    ({**THIN, "max_over_subscription_ratio": "junk"}, FAILS),
    # unknown / infinite / missing / zero capacity
    ({"free_capacity_gb": "unknown"}, UNLIMITED),
    ({"free_capacity_gb": "infinite", "total_capacity_gb": "infinite"}, UNLIMITED),
    ({"total_capacity_gb": "infinite"}, UNLIMITED),
    ({"total_capacity_gb": "unknown", "reserved_percentage": 5}, FAILS),  # a reserve of nothing known
    ({"free_capacity_gb": None}, FAILS),
    ({"free_capacity_gb": "lots"}, FAILS),
    ({"total_capacity_gb": None}, FAILS),
    ({"total_capacity_gb": 0, "free_capacity_gb": 0}, FAILS),
])
def test_virtual_free(caps: dict[str, Any], expected: float) -> None:
    assert pool(**caps).free_default == pytest.approx(expected)


@pytest.mark.parametrize("caps,mode,expected", [
    (THICK, "thin", FAILS),  # thin asked, pool cannot do thin
    (THIN, "thick", FAILS),  # thick asked, pool cannot do thick
    # a pool doing both: the type decides the math
    ({**BOTH, "max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 150}, "thin", 50.0),
    ({**BOTH, "max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 150}, "thick", -50.0),
    ({**BOTH, "max_over_subscription_ratio": 2.0, "provisioned_capacity_gb": 150}, None, 50.0),
    # a pool reporting neither gets thick math for a type that does not say
    ({"thin_provisioning_support": False, "thick_provisioning_support": False}, None, 100.0),
])
def test_provisioning_type_chooses_the_math(caps: dict[str, Any], mode: str | None, expected: float) -> None:
    state = pool(**caps)
    assert virtual_free([state], spec(provisioning=mode)) == [pytest.approx(expected)]


def test_auto_ratio() -> None:
    assert capacity.auto_ratio(100, 60, 80) == pytest.approx(AUTO_80_60)
    assert capacity.auto_ratio(100, 100, 0) == 20.0
    state = pool(**THIN, max_over_subscription_ratio="auto", free_capacity_gb=60, provisioned_capacity_gb=80)
    assert state.over_subscription_ratio() == pytest.approx(AUTO_80_60)
    assert pool().over_subscription_ratio() == 1.0  # thick pools never over-subscribe


@pytest.mark.parametrize("value,expected", [
    (10, 10.0), ("10.5", 10.5), ("infinite", UNLIMITED), ("Unknown", UNLIMITED), (None, None), ("x", None),
    (True, None), (float("nan"), None),
])
def test_parse_gb(value: Any, expected: float | None) -> None:
    assert capacity.parse_gb(value) == expected


# --- placements between reports -------------------------------------------------------------------
def test_consume_thick_and_thin() -> None:
    thick = pool(free_capacity_gb=50)
    thick.consume(20)
    assert (thick.free_gb, thick.provisioned_gb, thick.allocated_gb, thick.volumes_placed) == (30, 20, 20, 1)
    assert thick.free_default == 30
    thin = pool(**THIN, max_over_subscription_ratio=2.0)
    thin.consume(150)
    assert thin.provisioned_gb == 150 and thin.free_default == pytest.approx(50.0)
    thin.consume(-150, -1)
    assert thin.provisioned_gb == 0 and thin.free_default == 200 and thin.volumes_placed == 0
    unknown = pool(free_capacity_gb="unknown")
    unknown.consume(1000)
    assert unknown.free_default == UNLIMITED


def test_auto_ratio_follows_placements() -> None:
    state = pool(**THIN, max_over_subscription_ratio="auto", free_capacity_gb=60, provisioned_capacity_gb=80)
    state.consume(10)  # P 90, F 50: R = 1 + 90/51
    assert state.free_default == pytest.approx(100 * (1 + 90 / 51) - 90)


def test_a_burst_cannot_overfill_a_pool() -> None:
    """Ten GiB of room, twenty 1-GiB creates before any report: exactly ten are placed."""
    store = BackendStateStore()
    store.update("node@b", {"pools": [{"pool_name": "p", "total_capacity_gb": 10, "free_capacity_gb": 10,
                                       "provisioned_capacity_gb": 0, "thin_provisioning_support": True,
                                       "max_over_subscription_ratio": 1.0}]})
    scheduler = FilterScheduler()
    placed, refused = 0, set()
    for index in range(20):
        decision = scheduler.choose(store.fresh_pools(), spec(1))
        if decision.pool is None:
            refused.add(decision.rejected_by)
            continue
        store.consume(decision.pool, 1, f"v{index}")
        placed += 1
    assert placed == 10 and refused == {"CapacityFilter"}


def _report(store: BackendStateStore, provisioned: float, reported_at: float | None) -> None:
    store.update("node@b", {"pools": [{"pool_name": "p", "total_capacity_gb": 10, "free_capacity_gb": 10,
                                       "provisioned_capacity_gb": provisioned, "thin_provisioning_support": True,
                                       "max_over_subscription_ratio": 1.0}]}, reported_at=reported_at)


def _room(store: BackendStateStore) -> float:
    (state,) = store.fresh_pools()
    return state.free_default


def test_a_delete_gives_its_room_back_before_the_next_report() -> None:
    """A full pool, one 6 GiB delete: the room is there at once, counted once whatever the order in
    which the delete's notice and the backend's reports arrive."""
    store = BackendStateStore()
    _report(store, 10, reported_at=100.0)
    assert _room(store) == 0
    store.freed("node@b", "p", 6, "v1", since=101.0)
    assert _room(store) == 6
    store.freed("node@b", "p", 6, "v1", since=101.0)  # the same notice twice counts once
    assert _room(store) == 6
    _report(store, 10, reported_at=100.5)  # read before the delete began: still without it
    assert _room(store) == 6
    _report(store, 4, reported_at=101.5)  # read after: the report counts it, the notice is spent
    assert _room(store) == 6
    _report(store, 4, reported_at=102.0)
    assert _room(store) == 6
    # A notice behind a report read after its delete began is not counted twice.
    store.freed("node@b", "p", 2, "v2", since=101.8)
    assert _room(store) == 6
    # A delete of a volume whose create no report counted yet undoes the placement.
    (state,) = store.fresh_pools()
    store.consume(state, 3, "v3")
    assert _room(store) == 3
    store.freed("node@b", "p", 3, "v3", since=103.0)
    assert _room(store) == 6
    _report(store, 4, reported_at=103.5)
    assert _room(store) == 6
    store.freed("node@b", "other", 1, "v4", since=104.0)  # a pool the store does not know: left to reports
    assert _room(store) == 6


# --- filter and weigher agree ----------------------------------------------------------------------
def _random_pool(rng: random.Random, index: int) -> PoolState:
    caps: dict[str, Any] = {
        "total_capacity_gb": rng.choice([0, 10, 100, 1000, "infinite", "unknown", None]),
        "free_capacity_gb": rng.choice([0, 5, 50, 500, 999, "unknown", None]),
        "provisioned_capacity_gb": rng.choice([0, 10, 300, 5000]),
        "reserved_percentage": rng.choice([0, 5, 50, 99]),
        "max_over_subscription_ratio": rng.choice([1.0, 1.5, 20.0, "auto", 0.5]),
        "thin_provisioning_support": rng.random() < 0.6, "thick_provisioning_support": rng.random() < 0.6,
    }
    return PoolState(f"node{index}@b", "p", caps, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_filter_and_weigher_agree(seed: int) -> None:
    rng = random.Random(seed)
    pools = [_random_pool(rng, index) for index in range(300)]
    settings = SchedulerSettings(filters=("CapacityFilter",), weighers=("CapacityWeigher",))
    capacity_filter, weigher = CapacityFilter(settings), CapacityWeigher(settings)
    for size in (0, 1, 10, 100, 1000):
        for mode in (None, "thin", "thick"):
            request = spec(size, mode)
            values = virtual_free(pools, request)
            passing = capacity_filter.filter_all(pools, request)
            # The filter keeps exactly the pools whose weighed number fits the request.
            assert [p.address for p in passing] == [p.address for p, v in zip(pools, values, strict=True)
                                                    if capacity.fits(v, size)]
            if not passing:
                continue
            raw = weigher.raw_weights(passing, request)
            kept_values = virtual_free(passing, request)
            # The weigher ranks by the very number the filter tested.
            assert [r for r, v in zip(raw, kept_values, strict=True) if not math.isinf(v)] == [
                v for v in kept_values if not math.isinf(v)]
            chosen = FilterScheduler(settings).choose(pools, request).pool
            assert chosen is not None and raw[passing.index(chosen)] == max(raw)
            # Unknown capacity is the least wanted when spreading: a pool with known room wins.
            if any(not math.isinf(v) for v in kept_values):
                assert not math.isinf(kept_values[passing.index(chosen)])
