"""Capacity math: ONE formula for CapacityFilter and CapacityWeigher (Cinder's Zed
`calculate_capacity_factors`, reference §5.3).

    T total, F free, P provisioned, r = reserved_percentage / 100, R = max_over_subscription_ratio
    reserved = floor(T·r)        avail_total = T − reserved
    thin:   virtual_free = avail_total·R − P
    thick:  virtual_free = min(F, avail_total − P)

`virtual_free` answers "how many GiB may still be placed here". A pool fails a request of S GiB
when virtual_free < S; the weigher ranks pools by the same number, so the two cannot disagree.
Special values: FAILS (−inf) means the pool can take nothing (free unknown to the driver, T ≤ 0,
an invalid ratio, unsupported provisioning); UNLIMITED (+inf) means the driver reports
'infinite'/'unknown' capacity, which passes every size and is weighed apart (see CapacityWeigher).
"""
from __future__ import annotations

import math
from typing import Any

FAILS = -math.inf
UNLIMITED = math.inf
AUTO_RATIO_WHEN_EMPTY = 20.0  # Cinder: auto ratio while nothing is provisioned yet
_UNBOUNDED_WORDS = ("infinite", "unknown")


def parse_gb(value: Any) -> float | None:
    """A reported capacity → GiB; +inf for 'infinite'/'unknown'; None when absent or junk."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lower() in _UNBOUNDED_WORDS:
        return UNLIMITED
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def auto_ratio(total: float, free: float, provisioned: float) -> float:
    """max_over_subscription_ratio = auto (Queens+): 1 + P / (T − F + 1), or 20 while P is 0."""
    if provisioned <= 0:
        return AUTO_RATIO_WHEN_EMPTY
    return 1.0 + provisioned / (total - free + 1.0)


def effective_ratio(setting: Any, thin_support: bool, total: float, free: float, provisioned: float) -> float | None:
    """R for this pool: 1 for pools that cannot over-subscribe; None when the setting is invalid."""
    if not thin_support:
        return 1.0
    if isinstance(setting, str) and setting.strip().lower() == "auto":
        return auto_ratio(total, free, provisioned)
    try:
        ratio = float(setting)
    except (TypeError, ValueError):
        return None
    return ratio if ratio >= 1.0 else None  # Cinder filters thin-capable pools with R < 1 out


def virtual_free(total: float | None, free: float | None, provisioned: float, reserved_percentage: float,
                 ratio: float | None, thin: bool) -> float:
    """GiB that may still be placed in a pool (the one formula; see the module docstring)."""
    if free is None:
        return FAILS
    if free == UNLIMITED:
        return UNLIMITED
    if total is None:
        return FAILS
    if total == UNLIMITED:
        return UNLIMITED if reserved_percentage == 0 else FAILS
    if total <= 0 or ratio is None:
        return FAILS
    avail_total = total - math.floor(total * reserved_percentage / 100.0)
    if thin:
        return avail_total * ratio - provisioned
    return min(free, avail_total - provisioned)


def fits(free_gb: float, size_gb: float) -> bool:
    """The CapacityFilter test on a virtual_free value. Size 0 (a pool listing by type) needs only
    a pool that can take something."""
    if size_gb <= 0:
        return free_gb != FAILS
    return free_gb >= size_gb
