"""VolumeNumberWeigher: rank by volumes in the pool (the driver's `total_volumes` + placed since).
Multiplier `volume_number_multiplier`, −1.0 by default: the pool with the fewest volumes wins."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.weighers.base import PoolWeigher


class VolumeNumberWeigher(PoolWeigher):
    name = "VolumeNumberWeigher"

    @property
    def multiplier(self) -> float:
        return self.settings.volume_number_multiplier

    def raw_weights(self, pools: list[PoolState], spec: RequestSpec) -> list[float]:
        return [float(pool.volumes_reported + pool.volumes_placed) for pool in pools]
