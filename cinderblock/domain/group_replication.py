"""Replication of one group (API 3.38, Cinder's "Tiramisu"): enable, disable, fail over, list targets.

The group's type must ask for group replication and every volume type of the group for replication.
Each action claims the group and its members by compare-and-swap on `replication_status` (the group's
`status` stays as it is, as in Cinder) with the declared operations of model/group_transitions.py and
model/transitions.py, so two racing actions cannot both proceed; the volume manager
of the group's backend then runs the driver and writes the outcome (volume/workflows/group_replication.py).
"""
from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.domain.replication import reported_targets
from cinderblock.domain.common import DomainDeps, claim_and_cast
from cinderblock.domain.groups import get_group, group_service_host, members
from cinderblock.domain.services import assert_not_frozen
from cinderblock.model import group_transitions as gtr
from cinderblock.model import transitions as t
from cinderblock.model.errors import InvalidInput, InvalidState
from cinderblock.model.group_states import GroupStatus
from cinderblock.model.machine import Operation
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import spec_is_true
from cinderblock.model.states import ReplicationStatus as R
from cinderblock.model.states import VolumeStatus

GROUP_REPLICATION_SPECS = ("group_replication_enabled", "consistent_group_replication_enabled")
# What failover_replication calls the primary (failback); the driver contract's PRIMARY_BACKEND_ID.
PRIMARY = "default"
ATTACHABLE = (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE)


def is_replicated_group(group: tables.Group) -> bool:
    specs = group.group_type.specs() if group.group_type is not None else {}
    return any(spec_is_true(specs, key) for key in GROUP_REPLICATION_SPECS)


def check_type(session: Session, group: tables.Group) -> None:
    """Cinder's group/api.py _check_type: a replication group type, and replicated volume types only."""
    if not is_replicated_group(group):
        raise InvalidInput(f"Invalid group type: Group {group.id} is not a replication group type: its group "
                           f"type needs group_replication_enabled or consistent_group_replication_enabled "
                           f"set to '<is> True'.")
    for type_id in group.volume_type_ids():
        vtype = session.get(tables.VolumeType, type_id)
        specs = vtype.specs() if vtype is not None else {}
        if not spec_is_true(specs, "replication_enabled"):
            raise InvalidInput(f"Invalid volume type: Volume type {type_id} does not have 'replication_enabled' "
                               f"spec key set to '<is> True'.")


def _states(values: Collection[str]) -> str:
    return " or ".join(sorted(str(v) for v in values))


@dataclass(frozen=True)
class _Action:
    """One of the three changing actions: the group's and its members' declared operations (the
    states they start from, the transient one they claim) and the statuses the rows must have."""

    verb: str
    group: Operation
    volume: Operation
    group_statuses: tuple[str, ...]
    volume_statuses: tuple[str, ...] | None
    # Not refused while the backend is frozen: failing over is what a frozen backend is for.
    frozen_check: bool = True


ENABLE = _Action("enable replication", gtr.GROUP_ENABLE_REPLICATION, t.VOLUME_ENABLE_REPLICATION,
                 (GroupStatus.AVAILABLE,), ATTACHABLE)
DISABLE = _Action("disable replication", gtr.GROUP_DISABLE_REPLICATION, t.VOLUME_DISABLE_REPLICATION,
                  (GroupStatus.AVAILABLE, GroupStatus.ERROR), None)
FAILOVER = _Action("fail over replication", gtr.GROUP_FAILOVER_REPLICATION, t.VOLUME_FAILOVER_REPLICATION,
                   (GroupStatus.AVAILABLE,), ATTACHABLE, frozen_check=False)
# What a claim returns: the group's id, its service host, and every claimed row's replication status
# before (id → status): what an undo restores, and what a failover the driver refuses restores.
Claimed = tuple[str, str, dict[str, str]]


class GroupReplicationService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    def _run(self, context: RequestContext, group_id: str, action: _Action, cast: Callable[[Claimed], object],
             allow_attached: bool = True, check: Callable[[tables.Group], None] | None = None) -> None:
        claim_and_cast(self.db, lambda session: _claim(session, context, group_id, action, allow_attached, check),
                       cast, lambda session, claimed: _undo(session, action, claimed))

    # --- actions -------------------------------------------------------------------------
    def enable(self, context: RequestContext, group_id: str) -> None:
        self._run(context, group_id, ENABLE,
                  lambda claimed: self.deps.volumes.enable_replication(context, claimed[1], claimed[0]))

    def disable(self, context: RequestContext, group_id: str) -> None:
        self._run(context, group_id, DISABLE,
                  lambda claimed: self.deps.volumes.disable_replication(context, claimed[1], claimed[0]))

    def failover(self, context: RequestContext, group_id: str, allow_attached_volume: bool,
                 secondary_backend_id: str | None) -> None:
        def nothing_to_fail_back(group: tables.Group) -> None:
            if secondary_backend_id == PRIMARY and group.replication_status != R.FAILED_OVER:
                raise InvalidState(f"Invalid group: Group {group.id} is not failed over: there is nothing to fail "
                                   f"back to '{PRIMARY}'.")

        self._run(context, group_id, FAILOVER,
                  lambda claimed: self.deps.volumes.failover_replication(
                      context, claimed[1], claimed[0], secondary_backend_id, allow_attached_volume, claimed[2]),
                  allow_attached=allow_attached_volume, check=nothing_to_fail_back)

    def targets(self, context: RequestContext, group_id: str) -> list[dict[str, str]]:
        """The backend's configured targets as it last reported them; only their ids (Cinder shows admins
        every replication_device key, secrets included: not here)."""
        with self.db.read() as session:
            group = get_group(session, context, group_id)
            check_type(session, group)
            if group.host is None:
                return []
            ids = reported_targets(session, group_service_host(group))
        return [{"backend_id": ident} for ident in ids]


def _claim(session: Session, context: RequestContext, group_id: str, action: _Action, allow_attached: bool,
           check: Callable[[tables.Group], None] | None) -> Claimed:
    """Checks, then the group and its members → the action's transient replication status."""
    group = get_group(session, context, group_id)
    check_type(session, group)
    verb, group_from, volume_from = action.verb, action.group.from_states, action.volume.from_states
    if group.status not in action.group_statuses:
        raise InvalidState(f"Invalid group: Group {group.id} status must be {_states(action.group_statuses)} to "
                           f"{verb}, but current status is: {group.status}.")
    if group.replication_status not in group_from:
        raise InvalidState(f"Invalid group: Group {group.id} replication status must be {_states(group_from)} to "
                           f"{verb}, but current replication status is: {group.replication_status}.")
    if group.host is None:
        raise InvalidState(f"Invalid group: Group {group.id} has not been placed on a backend yet.")
    if action.frozen_check:
        assert_not_frozen(session, group.host)
    if check is not None:
        check(group)
    volumes = members(session, group.id)
    for volume in volumes:
        if action.volume_statuses is not None and volume.status not in action.volume_statuses:
            raise InvalidState(f"Invalid volume: Volume {volume.id} status must be {_states(action.volume_statuses)} "
                               f"to {verb}, but current status is: {volume.status}.")
        if volume.status == VolumeStatus.IN_USE and not allow_attached:
            raise InvalidInput(f"Invalid volume: Volume {volume.id} is attached but allow_attached_volume "
                               f"flag is False.")
        if volume.replication_status not in volume_from:
            raise InvalidState(f"Invalid volume: Volume {volume.id} replication status must be "
                               f"{_states(volume_from)} to {verb}, but current replication status "
                               f"is: {volume.replication_status}.")
    previous = {group.id: group.replication_status}
    if not state.move(session, action.group.claim, group.id,
                      expect={"status": group.status, "replication_status": group.replication_status}):
        raise InvalidState(f"Invalid group: Group {group.id} changed while its replication was being "
                           f"changed (another request won).")
    for volume in volumes:
        if not state.move(session, action.volume.claim, volume.id,
                          expect={"group_id": group.id, "status": volume.status,
                                  "replication_status": volume.replication_status}):
            raise InvalidState(f"Invalid volume: Volume {volume.id} changed while the replication of "
                               f"group {group.id} was being changed.")
        previous[volume.id] = volume.replication_status
    return group.id, group_service_host(group), previous


def _undo(session: Session, action: _Action, claimed: Claimed) -> None:
    """The cast could not be sent: every claimed row back to what it was."""
    group_id, _, previous = claimed
    for ident, status in previous.items():
        operation = action.group if ident == group_id else action.volume
        state.move(session, operation.undo, ident, to=status)
