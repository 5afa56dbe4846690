"""Group and group snapshot statuses, and what a group's type means."""
from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from cinderblock.model.specs import spec_is_true

CG_GROUP_TYPE = "default_cgsnapshot_type"
CONSISTENT_SNAPSHOT_SPEC = "consistent_group_snapshot_enabled"


class GroupStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    UPDATING = "updating"
    IN_USE = "in-use"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"


class GroupSnapshotStatus(StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    DELETING = "deleting"
    ERROR = "error"
    ERROR_DELETING = "error_deleting"
    UPDATING = "updating"
    DELETED = "deleted"


# group reset_status validates against the group-snapshot enum (Cinder does; `in-use` is refused).
GROUP_RESET_STATUSES = frozenset({"error", "available", "creating", "deleting", "updating", "error_deleting"})
GROUP_SNAPSHOT_RESET_STATUSES = GROUP_RESET_STATUSES


def wants_consistent_snapshot(group_specs: Mapping[str, str]) -> bool:
    """Cinder's is_group_a_cg_snapshot_type: the spec says `<is> True` (read as in model/specs.py)."""
    return spec_is_true(group_specs, CONSISTENT_SNAPSHOT_SPEC)
