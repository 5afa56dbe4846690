"""IgnoreAttemptedHostsFilter: a retry never goes back to a pool whose driver already failed it."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.filters.base import PoolFilter


class IgnoreAttemptedHostsFilter(PoolFilter):
    name = "IgnoreAttemptedHostsFilter"

    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        if not spec.attempted:
            return pools
        attempted = frozenset(spec.attempted)
        return [pool for pool in pools if pool.address not in attempted]

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        tried = len(spec.attempted)
        return (f"creating the volume failed on the {tried} backend(s) tried and no other "
                f"backend can take it")
