"""RequiredBackendFilter: operations bound to a backend (clone, create from snapshot) stay on it."""
from __future__ import annotations

from cinderblock.model.records import BackendAddress, RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.filters.base import PoolFilter


class RequiredBackendFilter(PoolFilter):
    name = "RequiredBackendFilter"

    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        if spec.required_backend is None:
            return pools
        host = BackendAddress.parse(spec.required_backend).service_host
        return [pool for pool in pools if pool.service_host == host]

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        return "the backend holding the source of this volume cannot take it (disabled, down, or full)"
