"""CapacityWeigher: rank by virtual free capacity, the number the CapacityFilter tests
(placement/capacity.py). Multiplier `capacity_weight_multiplier`: 1.0 spreads, negative stacks."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.capacity import FAILS, UNLIMITED
from cinderblock.placement.request import provisioning
from cinderblock.placement.weighers.base import PoolWeigher


def virtual_free(pools: list[PoolState], spec: RequestSpec) -> list[float]:
    mode = provisioning(spec)
    if mode == "thin":
        return [pool.free_thin for pool in pools]
    if mode == "thick":
        return [pool.free_thick for pool in pools]
    return [pool.free_default for pool in pools]


class CapacityWeigher(PoolWeigher):
    name = "CapacityWeigher"

    @property
    def multiplier(self) -> float:
        return self.settings.capacity_weight_multiplier

    def raw_weights(self, pools: list[PoolState], spec: RequestSpec) -> list[float]:
        values = virtual_free(pools, spec)
        if UNLIMITED not in values and FAILS not in values:
            return values
        finite = [value for value in values if value not in (UNLIMITED, FAILS)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
        # Cinder: unknown/infinite capacity is the least wanted either way: −1 when spreading,
        # above every finite value (so last once the negative multiplier applies) when stacking.
        unlimited = min(-1.0, low - 1.0) if self.multiplier > 0 else high + 1.0
        failing = low - 2.0  # only without CapacityFilter: never better than a pool that fits
        return [unlimited if value == UNLIMITED else failing if value == FAILS else value for value in values]
