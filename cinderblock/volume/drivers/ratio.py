"""`max_over_subscription_ratio` as every driver reads it (Cinder's option): a number >= 1, or "auto"."""
from __future__ import annotations

from cinderblock.model.errors import DriverError

AUTO_RATIO_DEFAULT = 20.0  # Cinder's: what "auto" reports while nothing is used yet


def ratio_setting(raw_value: object) -> str | float:
    """The option's value: "auto", or a float >= 1.0; DriverError naming the accepted forms otherwise."""
    raw = str(raw_value or AUTO_RATIO_DEFAULT).strip()
    if raw.lower() == "auto":
        return "auto"
    try:
        ratio = float(raw)
    except ValueError:
        raise DriverError(f"max_over_subscription_ratio must be a number or 'auto', not {raw!r}") from None
    if ratio < 1.0:
        raise DriverError(f"max_over_subscription_ratio must be >= 1.0, not {ratio}")
    return ratio
