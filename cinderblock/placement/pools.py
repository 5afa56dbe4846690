"""Questions about reported pools outside a placement: get_pools filters (API 3.28/3.35) and the
capacity check of operations bound to an existing pool (extend)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cinderblock.config.settings import SchedulerSettings
from cinderblock.model.records import BackendAddress, RequestSpec
from cinderblock.model.specs import parse_bool_word
from cinderblock.placement import capacity
from cinderblock.placement.backend_state import PoolState, pools_of_report
from cinderblock.placement.filter_scheduler import FilterScheduler
from cinderblock.placement.request import provisioning



def _state(view: Mapping[str, Any]) -> PoolState:
    address = BackendAddress.parse(str(view["name"]))
    return PoolState(address.service_host, address.pool or "", dict(view.get("capabilities") or {}), 0.0)


def equal_after_convert(capability: Any, value: str) -> bool:
    """A get_pools capability filter: query strings compare in the capability's own type (Cinder)."""
    if capability is None or isinstance(capability, str):
        return capability == value
    if isinstance(capability, bool):
        return capability == (parse_bool_word(value) is True)
    return str(capability) == value


def filter_pools(pools: list[dict[str, Any]], settings: SchedulerSettings, name: str | None = None,
                 type_specs: Mapping[str, str] | None = None,
                 capabilities: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """get_pools views kept by `name`, a volume type's extra specs (the configured filters, size 0),
    and capability key=value pairs."""
    if name:
        pools = [pool for pool in pools if pool["name"] == name]
    for key, value in (capabilities or {}).items():
        pools = [pool for pool in pools if equal_after_convert((pool.get("capabilities") or {}).get(key), value)]
    if type_specs is not None and pools:
        spec = RequestSpec(volume_id="", size_gb=0, project_id="", extra_specs=dict(type_specs))
        kept = FilterScheduler(settings).filter([_state(pool) for pool in pools], spec)
        if not isinstance(kept, list):
            return []
        names = {state.address for state in kept}
        pools = [pool for pool in pools if pool["name"] in names]
    return pools


def room_in_pool(backend_capabilities: Mapping[str, Any], host: str, size_gb: int,
                 extra_specs: Mapping[str, str]) -> float | None:
    """Virtual free GiB of the pool `host` (host@backend#pool) names, for a volume of a type with
    `extra_specs`, from its backend's last report; None when the report does not list the pool."""
    address = BackendAddress.parse(host)
    for pool in pools_of_report(address.service_host, dict(backend_capabilities), 0.0):
        if address.pool in (None, pool.pool_name):
            mode = provisioning(RequestSpec(volume_id="", size_gb=size_gb, project_id="",
                                            extra_specs=dict(extra_specs)))
            free = pool.free_thin if mode == "thin" else pool.free_thick if mode == "thick" else pool.free_default
            return free
    return None


def has_room(free_gb: float | None, size_gb: int) -> bool:
    return free_gb is None or capacity.fits(free_gb, size_gb)
