"""Replication of one group (API 3.38, Cinder's "Tiramisu"): enable, disable, fail over, list targets.

The group's type must ask for group replication and every volume type of the group for replication.
Each action claims the group and its members by compare-and-swap on `replication_status` (the group's
`status` stays as it is, as in Cinder), so two racing actions cannot both proceed; the volume manager
of the group's backend then runs the driver and writes the outcome (volume/workflows/group_replication.py).
"""
from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy.orm import Session

from cinderblock.db import group_tables as gt
from cinderblock.db import tables
from cinderblock.db.cas import compare_and_swap
from cinderblock.domain.replication import reported_targets
from cinderblock.domain.common import DomainDeps
from cinderblock.domain.groups import get_group, group_service_host, members
from cinderblock.domain.services import assert_not_frozen
from cinderblock.model.errors import InvalidInput, InvalidState, ServiceUnavailable
from cinderblock.model.group_states import GroupStatus
from cinderblock.model.records import RequestContext
from cinderblock.model.specs import spec_is_true
from cinderblock.model.states import ReplicationStatus as R
from cinderblock.model.states import VolumeStatus

GROUP_REPLICATION_SPECS = ("group_replication_enabled", "consistent_group_replication_enabled")
# What failover_replication calls the primary (failback); the driver contract's PRIMARY_BACKEND_ID.
PRIMARY = "default"
ATTACHABLE = (VolumeStatus.AVAILABLE, VolumeStatus.IN_USE)


def is_replicated_group(group: gt.Group) -> bool:
    specs = group.group_type.specs() if group.group_type is not None else {}
    return any(spec_is_true(specs, key) for key in GROUP_REPLICATION_SPECS)


def check_type(session: Session, group: gt.Group) -> None:
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
    return " or ".join(str(v) for v in values)


class GroupReplicationService:
    def __init__(self, deps: DomainDeps) -> None:
        self.deps = deps
        self.db = deps.db

    # --- the claim shared by the three changing actions ----------------------------------
    def _claim(self, context: RequestContext, group_id: str, action: str, group_statuses: Collection[str],
               group_from: Collection[str], volume_from: Collection[str], transient: str,
               volume_statuses: Collection[str] | None = None, allow_attached: bool = True,
               frozen_check: bool = True, extra_check: Any = None) -> tuple[str, str, dict[str, str]]:
        """Checks, then group and members → `transient`. Returns the group's id, its service host and
        every claimed row's previous replication status (id → status): what to restore if the cast
        cannot be sent, and what a failover the driver refuses restores."""
        with self.db.write() as session:
            group = get_group(session, context, group_id)
            check_type(session, group)
            if group.status not in group_statuses:
                raise InvalidState(f"Invalid group: Group {group.id} status must be {_states(group_statuses)} to "
                                   f"{action}, but current status is: {group.status}.")
            if group.replication_status not in group_from:
                raise InvalidState(f"Invalid group: Group {group.id} replication status must be "
                                   f"{_states(group_from)} to {action}, but current replication status is: "
                                   f"{group.replication_status}.")
            if group.host is None:
                raise InvalidState(f"Invalid group: Group {group.id} has not been placed on a backend yet.")
            if frozen_check:
                assert_not_frozen(session, group.host)
            if extra_check is not None:
                extra_check(group)
            volumes = members(session, group.id)
            for volume in volumes:
                if volume_statuses is not None and volume.status not in volume_statuses:
                    raise InvalidState(f"Invalid volume: Volume {volume.id} status must be "
                                       f"{_states(volume_statuses)} to {action}, but current status is: "
                                       f"{volume.status}.")
                if volume.status == VolumeStatus.IN_USE and not allow_attached:
                    raise InvalidInput(f"Invalid volume: Volume {volume.id} is attached but allow_attached_volume "
                                       f"flag is False.")
                if volume.replication_status not in volume_from:
                    raise InvalidState(f"Invalid volume: Volume {volume.id} replication status must be "
                                       f"{_states(volume_from)} to {action}, but current replication status "
                                       f"is: {volume.replication_status}.")
            previous = {group.id: group.replication_status}
            if not compare_and_swap(session, gt.Group, group.id,
                                    {"status": group.status, "replication_status": group.replication_status},
                                    {"replication_status": transient}):
                raise InvalidState(f"Invalid group: Group {group.id} changed while its replication was being "
                                   f"changed (another request won).")
            for volume in volumes:
                if not compare_and_swap(session, tables.Volume, volume.id,
                                        {"group_id": group.id, "status": volume.status,
                                         "replication_status": volume.replication_status},
                                        {"replication_status": transient}):
                    raise InvalidState(f"Invalid volume: Volume {volume.id} changed while the replication of "
                                       f"group {group.id} was being changed.")
                previous[volume.id] = volume.replication_status
            return group.id, group_service_host(group), previous

    def _undo(self, group_id: str, transient: str, previous: dict[str, str]) -> None:
        """The cast could not be sent: every claimed row back to what it was."""
        with self.db.write() as session:
            for ident, status in previous.items():
                table = gt.Group if ident == group_id else tables.Volume
                compare_and_swap(session, table, ident, {"replication_status": transient},
                                 {"replication_status": status})

    # --- actions -------------------------------------------------------------------------
    def enable(self, context: RequestContext, group_id: str) -> None:
        group_id, host, previous = self._claim(context, group_id, "enable replication", (GroupStatus.AVAILABLE,),
                                     (R.DISABLED, R.ENABLED), (R.DISABLED, R.ENABLED), R.ENABLING,
                                     volume_statuses=ATTACHABLE)
        try:
            self.deps.volumes.enable_replication(context, host, group_id)
        except ServiceUnavailable:
            self._undo(group_id, R.ENABLING, previous)
            raise

    def disable(self, context: RequestContext, group_id: str) -> None:
        # Members whose failover failed (failover-error) may be disabled too: it is their way out.
        group_id, host, previous = self._claim(context, group_id, "disable replication",
                                     (GroupStatus.AVAILABLE, GroupStatus.ERROR), (R.ENABLED, R.ERROR),
                                     (R.ENABLED, R.ERROR, R.FAILOVER_ERROR), R.DISABLING)
        try:
            self.deps.volumes.disable_replication(context, host, group_id)
        except ServiceUnavailable:
            self._undo(group_id, R.DISABLING, previous)
            raise

    def failover(self, context: RequestContext, group_id: str, allow_attached_volume: bool,
                 secondary_backend_id: str | None) -> None:
        def nothing_to_fail_back(group: gt.Group) -> None:
            if secondary_backend_id == PRIMARY and group.replication_status != R.FAILED_OVER:
                raise InvalidState(f"Invalid group: Group {group.id} is not failed over: there is nothing to fail "
                                   f"back to '{PRIMARY}'.")

        # Not refused while the backend is frozen: failing over is what a frozen backend is for.
        group_id, host, previous = self._claim(context, group_id, "fail over replication", (GroupStatus.AVAILABLE,),
                                     (R.ENABLED, R.FAILED_OVER), (R.ENABLED, R.FAILED_OVER), R.FAILING_OVER,
                                     volume_statuses=ATTACHABLE, allow_attached=allow_attached_volume,
                                     frozen_check=False, extra_check=nothing_to_fail_back)
        try:
            self.deps.volumes.failover_replication(context, host, group_id, secondary_backend_id,
                                                   allow_attached_volume, previous)
        except ServiceUnavailable:
            self._undo(group_id, R.FAILING_OVER, previous)
            raise

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
