"""CapabilitiesFilter: every capability the volume type names (`key`, `capabilities:key`, nested
`capabilities:a:b`; `volume_backend_name` too) satisfies its requirement (scheduler/extra_specs.py).
Keys of other scopes (`provisioning:`, `RESKEY:`, `qos:`, vendor scopes) are not capabilities."""
from __future__ import annotations

from typing import Any

from cinderblock.model.records import RequestSpec
from cinderblock.scheduler import extra_specs as grammar
from cinderblock.scheduler.backend_state import PoolState
from cinderblock.scheduler.filters.base import PoolFilter


def _keep(pools: list[PoolState], key: str, test: grammar.Predicate) -> list[PoolState]:
    """Pools whose capability `key` passes `test`. Results are memoised per value within one
    decision: thousands of pools report the same few values (backend names, booleans)."""
    memo: dict[Any, bool] = {}
    default = False if key in grammar.DEFAULT_FALSE else grammar.MISSING
    missing = grammar.MISSING
    nested = ":" in key
    kept: list[PoolState] = []
    append = kept.append
    for pool in pools:
        value = grammar.lookup(pool.capabilities, key) if nested else pool.capabilities.get(key, default)
        if value.__class__ is str:
            result = memo.get(value)
            if result is None:
                result = memo[value] = test(value)
        else:
            result = value is not missing and test(value)
        if result:
            append(pool)
    return kept


class CapabilitiesFilter(PoolFilter):
    name = "CapabilitiesFilter"

    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        for key, requirement in grammar.capability_requirements(spec.extra_specs).items():
            pools = _keep(pools, key, grammar.compile_requirement(requirement))
            if not pools:
                break
        return pools

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        failing = []
        for key, requirement in grammar.capability_requirements(spec.extra_specs).items():
            if not _keep(pools, key, grammar.compile_requirement(requirement)):
                failing.append(key)
        # Key names only: a type's requirements (e.g. volume_backend_name) are admin knowledge.
        keys = ", ".join(failing) or "a combination of them"
        return f"no backend offers the capabilities the volume type asks for ({keys})"
