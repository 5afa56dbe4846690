"""A filter keeps the pools that can take a request. Filters work on the whole candidate list at
once (one comprehension per filter): per-pool method calls cost more than the checks themselves."""
from __future__ import annotations

import abc
from typing import ClassVar

from cinderblock.config.settings import SchedulerSettings
from cinderblock.model.records import RequestSpec
from cinderblock.placement.backend_state import PoolState


class PoolFilter(abc.ABC):
    name: ClassVar[str]

    def __init__(self, settings: SchedulerSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    def filter_all(self, pools: list[PoolState], spec: RequestSpec) -> list[PoolState]:
        """The pools that pass (the input list itself when the request asks nothing of this filter)."""

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return bool(self.filter_all([pool], spec))

    def explain(self, pools: list[PoolState], spec: RequestSpec) -> str:
        """Why none of `pools` passed, in words a user may read (no backend names or their numbers)."""
        return "no pool passed"
