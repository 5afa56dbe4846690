"""Filter, weigh, choose: a pure function of the pool states and one request.

The filters configured in `scheduler_default_filters` run in order after the mandatory ones; the
first that leaves no candidate is named in the decision (and so in the user's message). The
weighers of `scheduler_default_weighers` then rank what is left; ties go to the pool with fewer
placements since its last report, then to the first in order.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cinderblock.config.settings import SchedulerSettings
from cinderblock.model.records import RequestSpec
from cinderblock.scheduler.backend_state import PoolState
from cinderblock.scheduler.filters.base import PoolFilter
from cinderblock.scheduler.registry import FILTERS, MANDATORY_FILTERS, WEIGHERS
from cinderblock.scheduler.weighers.base import PoolWeigher


@dataclass(frozen=True)
class Decision:
    pool: PoolState | None
    # The filter that removed the last candidates, and why in a user's words (when pool is None).
    rejected_by: str | None = None
    reason: str | None = None


class FilterScheduler:
    def __init__(self, settings: SchedulerSettings | None = None) -> None:
        self.settings = settings or SchedulerSettings()
        names = [*MANDATORY_FILTERS, *(n for n in self.settings.filters if n not in MANDATORY_FILTERS)]
        self.filters: list[PoolFilter] = [FILTERS[name](self.settings) for name in dict.fromkeys(names)]
        self.weighers: list[PoolWeigher] = [WEIGHERS[name](self.settings)
                                            for name in dict.fromkeys(self.settings.weighers)]

    def filter(self, pools: Sequence[PoolState], spec: RequestSpec) -> Decision | list[PoolState]:
        """The pools every filter keeps, or the Decision naming the filter that left none."""
        candidates = list(pools)
        if not candidates:
            return Decision(None, None, "no enabled volume service that is up has reported its capabilities")
        for index, pool_filter in enumerate(self.filters):
            remaining = pool_filter.filter_all(candidates, spec)
            if not remaining:
                why = pool_filter.explain(candidates, spec)
                reason = f"{pool_filter.name} removed the last candidates: {why}{self._earlier(index, pools, spec)}"
                return Decision(None, pool_filter.name, reason)
            candidates = remaining
        return candidates

    def _earlier(self, index: int, pools: Sequence[PoolState], spec: RequestSpec) -> str:
        """When the pools the last filter accepts were removed before it, say by which filter: with
        the default order (capacity before capabilities) a full pool would otherwise read as
        'no backend offers the capabilities'. Runs on failures only."""
        accepted = self.filters[index].filter_all(list(pools), spec)
        for earlier in self.filters[:index] if accepted else ():
            kept = earlier.filter_all(accepted, spec)
            if not kept:
                return f"; {earlier.name} removed the ones it accepts: {earlier.explain(accepted, spec)}"
            accepted = kept
        return ""

    def choose(self, pools: Sequence[PoolState], spec: RequestSpec) -> Decision:
        candidates = self.filter(pools, spec)
        if isinstance(candidates, Decision):
            return candidates
        return Decision(self.best(candidates, spec))

    def best(self, candidates: list[PoolState], spec: RequestSpec) -> PoolState:
        if len(candidates) == 1:
            return candidates[0]
        scores = self.scores(candidates, spec)
        if scores is None:
            return min(candidates, key=_placed)
        top = max(scores)
        ties = [pool for pool, score in zip(candidates, scores, strict=True) if score == top]
        return ties[0] if len(ties) == 1 else min(ties, key=_placed)

    def scores(self, candidates: list[PoolState], spec: RequestSpec) -> list[float] | None:
        """Σ multiplier × normalised weight per pool; None when no weigher counts."""
        active = [weigher for weigher in self.weighers if weigher.multiplier != 0]
        if not active:
            return None
        if len(active) == 1:
            # Normalising is monotonic: with one weigher, multiplier × raw orders the pools the same.
            weigher = active[0]
            raw = weigher.raw_weights(candidates, spec)
            return raw if weigher.multiplier > 0 else [-value for value in raw]
        totals = [0.0] * len(candidates)
        for weigher in active:
            raw = weigher.raw_weights(candidates, spec)
            low, high = min(raw), max(raw)
            if high == low:
                continue  # all equal: every normalised weight is 0
            scale = weigher.multiplier / (high - low)
            totals = [total + (value - low) * scale for total, value in zip(totals, raw, strict=True)]
        return totals


def _placed(pool: PoolState) -> int:
    return pool.volumes_placed


def choose(pools: Sequence[PoolState], spec: RequestSpec, settings: SchedulerSettings | None = None) -> Decision:
    """One decision with the default (or given) configuration."""
    return FilterScheduler(settings).choose(pools, spec)
