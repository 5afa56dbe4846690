"""AvailabilityZoneFilter: the pool's zone is the one asked for, and one of the type's zones."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.filters.base import PoolFilter
from cinderblock.placement.request import type_zones


class AvailabilityZoneFilter(PoolFilter):
    name = "AvailabilityZoneFilter"

    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        zone, zones = spec.availability_zone, type_zones(spec.extra_specs)
        if zone is not None:
            if zones and zone not in zones:
                return []
            return [pool for pool in pools if pool.availability_zone == zone]
        if zones:
            allowed = frozenset(zones)
            return [pool for pool in pools if pool.availability_zone in allowed]
        return pools

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        zones = type_zones(spec.extra_specs)
        if spec.availability_zone is not None:
            if zones and spec.availability_zone not in zones:
                return (f"availability zone {spec.availability_zone} is not one of the volume "
                        f"type's zones ({', '.join(zones)})")
            return f"no backend is in availability zone {spec.availability_zone}"
        return f"no backend is in the volume type's availability zones ({', '.join(zones)})"
