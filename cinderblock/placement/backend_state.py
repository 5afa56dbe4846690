"""The scheduler's host manager: per-pool state from capability reports, plus what it handed out since.

A report replaces the backend's pools. Every placement is consumed from the chosen pool at once and
kept consumed until reports count it (see BackendStateStore), so a burst of creates cannot overfill
a pool that looked roomy in the last report; likewise the room a delete frees is given back as soon as
its volume service says so, not with its next report. Pools of a backend that has not reported for
`max_age` seconds are left out.
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cinderblock.model.specs import parse_bool_word
from cinderblock.placement import capacity
from cinderblock.placement.capacity import FAILS

# Not a capability of the pool itself: stays at backend level.
_BACKEND_ONLY = ("pools",)


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return parse_bool_word(value) is True
    return bool(value)


@dataclass(slots=True, eq=False)
class PoolState:
    """One pool as the scheduler sees it. Numbers are parsed once per report; the derived
    `free_*` values are recomputed on every consume so filters and weighers only read attributes."""

    service_host: str  # host@backend
    pool_name: str
    capabilities: dict[str, Any]
    reported_at: float
    consumed_gb: float = 0.0  # placed since the report
    volumes_placed: int = 0
    # Parsed from the capabilities (see __post_init__).
    address: str = field(init=False)
    availability_zone: Any = field(init=False)
    total_reported: float | None = field(init=False)
    free_reported: float | None = field(init=False)
    provisioned_reported: float = field(init=False)
    allocated_reported: float = field(init=False)
    reserved_percentage: float = field(init=False)
    ratio_setting: Any = field(init=False)
    thin_support: bool = field(init=False)
    thick_support: bool = field(init=False)
    volumes_reported: int = field(init=False)
    # virtual free GiB for a volume that asks for thin / thick / nothing in particular.
    free_thin: float = field(init=False)
    free_thick: float = field(init=False)
    free_default: float = field(init=False)

    def __post_init__(self) -> None:
        caps = self.capabilities
        self.address = f"{self.service_host}#{self.pool_name}"
        self.availability_zone = caps.get("availability_zone")
        self.total_reported = capacity.parse_gb(caps.get("total_capacity_gb"))
        self.free_reported = capacity.parse_gb(caps.get("free_capacity_gb"))
        allocated = capacity.parse_gb(caps.get("allocated_capacity_gb"))
        self.allocated_reported = allocated if allocated is not None and allocated != capacity.UNLIMITED else 0.0
        provisioned = capacity.parse_gb(caps.get("provisioned_capacity_gb"))
        # Cinder: provisioned defaults to allocated.
        self.provisioned_reported = (provisioned if provisioned is not None and provisioned != capacity.UNLIMITED
                                     else self.allocated_reported)
        self.reserved_percentage = capacity.parse_gb(caps.get("reserved_percentage")) or 0.0
        self.ratio_setting = caps.get("max_over_subscription_ratio", 1.0)
        self.thin_support = _flag(caps.get("thin_provisioning_support", False))
        self.thick_support = _flag(caps.get("thick_provisioning_support", False))
        volumes = capacity.parse_gb(caps.get("total_volumes"))
        self.volumes_reported = int(volumes) if volumes is not None and volumes != capacity.UNLIMITED else 0
        self.refresh()

    # --- derived values ----------------------------------------------------------------------
    @property
    def free_gb(self) -> float | None:
        free = self.free_reported
        return free if free is None or free == capacity.UNLIMITED else free - self.consumed_gb

    @property
    def total_gb(self) -> float | None:
        return self.total_reported

    @property
    def provisioned_gb(self) -> float:
        return self.provisioned_reported + self.consumed_gb

    @property
    def allocated_gb(self) -> float:
        return self.allocated_reported + self.consumed_gb

    @property
    def total_volumes(self) -> int:
        return self.volumes_reported + self.volumes_placed

    @property
    def capacity_unbounded(self) -> bool:
        """Driver reports 'infinite'/'unknown' capacity (weighed apart)."""
        return self.free_default == capacity.UNLIMITED

    def over_subscription_ratio(self) -> float | None:
        total, free = self.total_reported, self.free_gb
        if total is None or free is None:
            return None
        return capacity.effective_ratio(self.ratio_setting, self.thin_support, total, free, self.provisioned_gb)

    def virtual_free_gb(self, thin: bool) -> float:
        """The shared formula with this pool's numbers (see placement/capacity.py)."""
        ratio = self.over_subscription_ratio()  # None (invalid) rules the pool out for any volume
        if ratio is not None and not thin:
            ratio = 1.0
        return capacity.virtual_free(self.total_reported, self.free_gb, self.provisioned_gb,
                                     self.reserved_percentage, ratio, thin)

    def refresh(self) -> None:
        thin = self.virtual_free_gb(True) if self.thin_support else FAILS
        thick = self.virtual_free_gb(False) if self.thick_support else FAILS
        self.free_thin, self.free_thick = thin, thick
        # A type without provisioning:type is thin where the pool can do thin (Cinder).
        self.free_default = thin if self.thin_support else self.virtual_free_gb(False)

    def consume(self, size_gb: float, volumes: int = 1) -> None:
        """Count a change the last report does not: a placement (+), or what a delete freed (−)."""
        self.consumed_gb += size_gb
        self.volumes_placed += volumes
        self.refresh()


def pools_of_report(service_host: str, capabilities: dict[str, Any], now: float) -> list[PoolState]:
    """A report → PoolStates. Pools inherit the backend-level keys (replication, multiattach...) they
    do not set themselves; a report without `pools` is one pool named after its backend name."""
    backend = {key: value for key, value in capabilities.items() if key not in _BACKEND_ONLY}
    reported = capabilities.get("pools")
    if not reported:
        reported = [{"pool_name": str(capabilities.get("volume_backend_name") or "pool")}]
    states = []
    for pool in reported:
        merged = {**backend, **pool}
        states.append(PoolState(service_host, str(merged.get("pool_name", "pool")), merged, now))
    return states


@dataclass
class _Backend:
    reported_at: float
    capabilities: dict[str, Any]
    pools: list[PoolState]


@dataclass
class _Placement:
    """A change of a pool that its backend's reports may not count yet."""

    pool: PoolState
    size_gb: float  # negative: freed by a delete
    volumes: int = 1
    # Ended just before a report arrived: that report may not count it yet, the next one does.
    settled: bool = False
    # A delete's: when its storage work began (the volume service's clock). A report whose stats were
    # read after that counts it, or may: the freed room is then left to the report (the safe side).
    freed_since: float | None = None

    def counted_by(self, reported_at: float | None) -> bool:
        return self.freed_since is not None and (reported_at is None or reported_at >= self.freed_since)


# A create that ended this long before a report arrived is counted by it (reports are made when
# asked, at least 0.5 s after a create ends: volume/reporting.py coalesces).
SETTLE_SECONDS = 0.3


class BackendStateStore:
    """Thread-safe table of backends → pools, with a ledger of placements the reports do not count yet.

    A driver counts a volume only once it has made it, and a report may be made while creates run.
    So a placement stays consumed across reports until its create has ended (`finished`, which the
    caller reads from the database when a report arrives): long enough before the report for the
    report to count it, or else until the following report.
    """

    def __init__(self, max_age: float = 180.0) -> None:
        self.max_age = max_age
        self._backends: dict[str, _Backend] = {}
        self._placements: dict[str, _Placement] = {}  # by volume id
        self._reported_at: dict[str, float] = {}  # backend → when its last report's stats were read
        self._lock = threading.Lock()

    def pending(self, service_host: str) -> list[str]:
        """Volume ids placed on the backend that its reports may not count yet."""
        with self._lock:
            return [volume_id for volume_id, placed in self._placements.items()
                    if placed.pool.service_host == service_host and placed.freed_since is None]

    def update(self, service_host: str, capabilities: dict[str, Any], now: float | None = None,
               finished: Mapping[str, float] | None = None, reported_at: float | None = None) -> None:
        """A report replaces the backend's pools. `finished`: pending volume id → seconds since its
        create ended (inf when the volume is gone). `reported_at`: when the backend read the stats it
        reports (None: counts every delete it was told of)."""
        now = time.monotonic() if now is None else now
        finished = finished or {}
        entry = _Backend(now, capabilities, pools_of_report(service_host, capabilities, now))
        by_name = {pool.pool_name: pool for pool in entry.pools}
        with self._lock:
            self._backends[service_host] = entry
            if reported_at is not None:
                self._reported_at[service_host] = reported_at
            for volume_id, placed in list(self._placements.items()):
                if placed.pool.service_host != service_host:
                    continue
                pool = by_name.get(placed.pool.pool_name)
                ended = finished.get(volume_id)
                if (pool is None or placed.settled or placed.counted_by(reported_at)
                        or (ended is not None and ended >= SETTLE_SECONDS)):
                    del self._placements[volume_id]  # counted by this report
                    continue
                placed.settled = ended is not None
                pool.consume(placed.size_gb, placed.volumes)
                placed.pool = pool

    def freed(self, service_host: str, pool_name: str, size_gb: float, volume_id: str, since: float) -> None:
        """A delete gave back `size_gb` of the pool; its storage work began at `since`."""
        with self._lock:
            placed = self._placements.get(volume_id)
            if placed is not None:
                if placed.freed_since is None:  # no report counted its create yet: undo the placement
                    del self._placements[volume_id]
                    placed.pool.consume(-placed.size_gb, -placed.volumes)
                return  # else the same notice again
            entry = self._backends.get(service_host)
            pool = next((p for p in entry.pools if p.pool_name == pool_name), None) if entry else None
            if pool is None or self._reported_at.get(service_host, -math.inf) >= since:
                return  # the backend's first report, or one read after the delete began, counts it
            pool.consume(-size_gb, -1)
            self._placements[volume_id] = _Placement(pool, -size_gb, -1, freed_since=since)

    def fresh_pools(self, services: set[str] | None = None, now: float | None = None) -> list[PoolState]:
        """Pools of backends that reported within max_age (and are in `services`, when given)."""
        limit = (time.monotonic() if now is None else now) - self.max_age
        with self._lock:
            backends = list(self._backends.items())
        pools: list[PoolState] = []
        for host, entry in backends:
            if entry.reported_at >= limit and (services is None or host in services):
                pools.extend(entry.pools)
        return pools

    def all_pools(self) -> list[PoolState]:
        with self._lock:
            return [pool for entry in self._backends.values() for pool in entry.pools]

    def capabilities(self, service_host: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._backends.get(service_host)
        return entry.capabilities if entry is not None else None

    def consume(self, pool: PoolState, size_gb: float, volume_id: str | None = None) -> None:
        with self._lock:
            pool.consume(size_gb)
            if volume_id is not None:
                self._placements[volume_id] = _Placement(pool, size_gb)

    def release(self, volume_id: str) -> PoolState | None:
        """Give back what `volume_id` consumed (its backend gave up on it)."""
        with self._lock:
            placed = self._placements.pop(volume_id, None)
            if placed is None:
                return None
            placed.pool.consume(-placed.size_gb, -placed.volumes)
            return placed.pool
