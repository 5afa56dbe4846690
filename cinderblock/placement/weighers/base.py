"""A weigher gives every candidate pool a raw number; the scheduler normalises each weigher's numbers
to [0, 1] (all 0 when they are equal), multiplies them by the weigher's multiplier and adds them up:
the highest total wins (Cinder's OrderedHostWeightHandler)."""
from __future__ import annotations

import abc
from typing import ClassVar

from cinderblock.config.settings import SchedulerSettings
from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState


class PoolWeigher(abc.ABC):
    name: ClassVar[str]

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings

    @property
    @abc.abstractmethod
    def multiplier(self) -> float:
        """Positive: more is better; negative: less is better; 0: this weigher is ignored."""

    @abc.abstractmethod
    def raw_weights(self, pools: list[PoolState], spec: RequestSpec) -> list[float]:
        """One finite number per pool, in the pools' order."""
