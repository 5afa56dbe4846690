"""What a RequestSpec asks of a pool, read from its volume type's extra specs."""
from __future__ import annotations

from cinderblock.model.records import RequestSpec

PROVISIONING_KEY = "provisioning:type"
ZONES_KEY = "RESKEY:availability_zones"


def provisioning(spec: RequestSpec) -> str | None:
    """'thin', 'thick', or None when the type does not say (thin where the pool can)."""
    value = spec.extra_specs.get(PROVISIONING_KEY)
    if value is None:
        return None
    value = value.strip().lower()
    return value if value in ("thin", "thick") else None


def type_zones(extra_specs: dict[str, str]) -> tuple[str, ...]:
    """The zones a type restricts its volumes to (`RESKEY:availability_zones = az1, az2`)."""
    value = extra_specs.get(ZONES_KEY) or ""
    return tuple(zone.strip() for zone in value.split(",") if zone.strip())
