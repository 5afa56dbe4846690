"""Group placement: every volume type's filters, intersected per backend, and the group type's specs."""
from __future__ import annotations

from typing import Any

from cinderblock.placement.backend_state import BackendStateStore, PoolState
from cinderblock.scheduler.groups import choose_group

CONSISTENT = {"consistent_group_snapshot_enabled": "<is> True"}


def report(name: str, consistent: bool, zone: str = "nova") -> dict[str, Any]:
    pool = {"pool_name": "p", "total_capacity_gb": 100.0, "free_capacity_gb": 100.0, "reserved_percentage": 0,
            "max_over_subscription_ratio": 1.0, "thin_provisioning_support": True, "volume_backend_name": name,
            "availability_zone": zone, "consistent_group_snapshot_enabled": consistent,
            "consistencygroup_support": consistent}
    return {"volume_backend_name": name, "availability_zone": zone, "pools": [pool]}


def pools(*backends: tuple[str, bool]) -> list[PoolState]:
    store = BackendStateStore()
    for name, consistent in backends:
        store.update(f"node@{name}", report(name, consistent))
    return store.fresh_pools()


def test_every_volume_type_must_fit_the_same_backend() -> None:
    candidates = pools(("a", True), ("b", True))
    types = [{"volume_backend_name": "a"}, {"volume_backend_name": "b"}]
    decision = choose_group(candidates, types, {}, None)
    assert decision.pool is None and "volume type #2" in decision.why
    chosen = choose_group(candidates, [{"volume_backend_name": "b"}, {}], {}, None).pool
    assert chosen is not None and chosen.service_host == "node@b"


def test_group_type_specs_are_matched_against_capabilities() -> None:
    candidates = pools(("plain", False), ("cg", True))
    chosen = choose_group(candidates, [{}, {}], CONSISTENT, None).pool
    assert chosen is not None and chosen.service_host == "node@cg"
    refused = choose_group(pools(("plain", False)), [{}], CONSISTENT, None)
    assert refused.pool is None and "consistent_group_snapshot_enabled" in refused.why
    assert choose_group(candidates, [{}], {"group_replication_enabled": "<is> True"}, None).pool is None
    assert choose_group([], [{}], {}, None).pool is None
