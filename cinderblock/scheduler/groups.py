"""Group placement: a backend that can hold every volume type of the group and meets the group type.

Cinder filters and weighs per volume type and intersects at backend level (host@backend); it never
matches the group type's specs against capabilities (see the reference, §6.2). Here they are matched
explicitly with the same extra-spec grammar. Capacity does not constrain placement (size 0).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cinderblock.db import transition as state
from cinderblock.model import group_transitions as gtr
from cinderblock.db.engine import Database
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import RequestContext, RequestSpec
from cinderblock.rpc.clients import VolumeClient
from cinderblock.placement import extra_specs as grammar
from cinderblock.placement.backend_state import PoolState
from cinderblock.placement.filter_scheduler import choose

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupDecision:
    pool: PoolState | None
    why: str = ""


def group_spec_filter(pool: PoolState, group_specs: Mapping[str, str]) -> bool:
    """Every capability the group type names holds on the pool (a key not reported fails)."""
    return grammar.satisfies(pool.capabilities, group_specs) is None


def choose_group(pools: Iterable[PoolState], type_specs: list[dict[str, str]], group_specs: Mapping[str, str],
                 availability_zone: str | None) -> GroupDecision:
    candidates = list(pools)
    if not candidates:
        return GroupDecision(None, "no enabled volume service that is up has reported its capabilities")
    backends: set[str] | None = None
    per_type: list[list[PoolState]] = []
    for index, specs in enumerate(type_specs):
        spec = RequestSpec(volume_id="", size_gb=0, project_id="", extra_specs=dict(specs),
                           availability_zone=availability_zone)
        passing = [pool for pool in candidates if choose([pool], spec).pool is not None]
        per_type.append(passing)
        hosts = {pool.service_host for pool in passing}
        backends = hosts if backends is None else backends & hosts
        if not backends:
            return GroupDecision(None, f"no backend supports volume type #{index + 1} together with the others")
    assert backends is not None
    # The group type's specs at pool level, then the first type's best pool among what is left.
    fitting = [pool for pool in per_type[0] if pool.service_host in backends and group_spec_filter(pool, group_specs)]
    if not fitting:
        wanted = ", ".join(f"{k}={v}" for k, v in grammar.capability_requirements(group_specs).items())
        return GroupDecision(None, f"no backend supporting every volume type reports the group type's "
                                   f"capabilities ({wanted})")
    # The scheduler's own weigher picks among them (as for a volume of the first type).
    first = RequestSpec(volume_id="", size_gb=0, project_id="", extra_specs=dict(type_specs[0]),
                        availability_zone=availability_zone)
    best = choose(fitting, first).pool
    return GroupDecision(best)


def place_group(db: Database, volumes: VolumeClient, pools: list[PoolState], context: dict[str, Any],
                group_id: str, type_specs: list[dict[str, str]], group_specs: dict[str, str],
                availability_zone: str | None) -> None:
    """The scheduler's create_group: choose, record the host, hand the group to that backend."""
    decision = choose_group(pools, type_specs, group_specs, availability_zone)
    if decision.pool is None:
        _fail(db, group_id, f"No valid backend was found for group {group_id}: {decision.why}.")
        return
    pool = decision.pool
    with db.write() as session:
        if not state.move(session, gtr.GROUP_PLACE, group_id, expect=gtr.UNPLACED_GROUP_CREATE,
                          values={"host": pool.address}):
            LOG.info("group %s is no longer waiting to be placed; skipped", group_id)
            return
    try:
        volumes.create_group(RequestContext.from_wire(context), pool.service_host, group_id)
    except ServiceUnavailable as error:
        _fail(db, group_id, f"{pool.service_host} could not be reached: {error.message}", placed=True)


def _fail(db: Database, group_id: str, reason: str, placed: bool = False) -> None:
    LOG.warning(reason)
    with db.write() as session:
        state.move(session, gtr.GROUP_CREATE.fail, group_id, values={"error_reason": reason})
