"""CapacityFilter: the pool has room for the volume (thin or thick math, over-subscription,
reserved share: placement/capacity.py, the formula the CapacityWeigher ranks by)."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.capacity import FAILS
from cinderblock.placement.filters.base import PoolFilter
from cinderblock.placement.request import provisioning


class CapacityFilter(PoolFilter):
    name = "CapacityFilter"

    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        size, mode = spec.size_gb, provisioning(spec)
        # Three spelled-out comprehensions: an attribute read per pool, no call.
        if size <= 0:
            if mode == "thin":
                return [pool for pool in pools if pool.free_thin != FAILS]
            if mode == "thick":
                return [pool for pool in pools if pool.free_thick != FAILS]
            return [pool for pool in pools if pool.free_default != FAILS]
        if mode == "thin":
            return [pool for pool in pools if pool.free_thin >= size]
        if mode == "thick":
            return [pool for pool in pools if pool.free_thick >= size]
        return [pool for pool in pools if pool.free_default >= size]

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        mode = provisioning(spec)
        if mode == "thick" and not any(pool.thick_support for pool in pools):
            return "no backend supports thick provisioning (provisioning:type = thick)"
        if mode == "thin" and not any(pool.thin_support for pool in pools):
            return "no backend supports thin provisioning (provisioning:type = thin)"
        return f"no backend has {spec.size_gb} GiB of capacity left for this volume"
