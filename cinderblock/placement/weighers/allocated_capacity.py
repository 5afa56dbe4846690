"""AllocatedCapacityWeigher: rank by GiB allocated (reported + placed since the report).
Multiplier `allocated_capacity_weight_multiplier`, −1.0 by default: the least allocated wins."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.weighers.base import PoolWeigher


class AllocatedCapacityWeigher(PoolWeigher):
    name = "AllocatedCapacityWeigher"

    @property
    def multiplier(self) -> float:
        return self.settings.allocated_capacity_weight_multiplier

    def raw_weights(self, pools: list[PoolState], spec: RequestSpec) -> list[float]:
        return [pool.allocated_reported + pool.consumed_gb for pool in pools]
