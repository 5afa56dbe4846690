"""The one table of legal status transitions.

A domain service claims `transient` with a compare-and-swap from one of `from_states`; the volume
manager's workflow then moves the resource to `success` (None: back to the status it had before,
kept in `previous_status`) or to `failure`. Nothing else writes a status.
"""
from __future__ import annotations

from dataclasses import dataclass

from cinderblock.model.group_states import GroupSnapshotStatus as GS
from cinderblock.model.group_states import GroupStatus as G
from cinderblock.model.states import SnapshotStatus as S
from cinderblock.model.states import VolumeStatus as V


@dataclass(frozen=True)
class Transition:
    name: str
    from_states: frozenset[str]
    transient: str
    success: str | None
    failure: str

    def describe_from(self) -> str:
        return " or ".join(sorted(self.from_states))


def _t(name: str, frm: set[str], transient: str, success: str | None, failure: str) -> Transition:
    return Transition(name, frozenset(frm), transient, success, failure)


DELETABLE_VOLUME_STATES = {V.AVAILABLE, V.ERROR, V.ERROR_RESTORING, V.ERROR_EXTENDING, V.ERROR_MANAGING}

VOLUME_CREATE = _t("create", set(), V.CREATING, V.AVAILABLE, V.ERROR)
VOLUME_DELETE = _t("delete", DELETABLE_VOLUME_STATES, V.DELETING, None, V.ERROR_DELETING)
# force-delete ignores the status but never races another delete.
VOLUME_FORCE_DELETE = _t(
    "force_delete",
    {s.value for s in V} - {V.DELETING},
    V.DELETING,
    None,
    V.ERROR_DELETING,
)
VOLUME_EXTEND = _t("extend", {V.AVAILABLE}, V.EXTENDING, None, V.ERROR_EXTENDING)
VOLUME_EXTEND_IN_USE = _t("extend", {V.AVAILABLE, V.IN_USE}, V.EXTENDING, None, V.ERROR_EXTENDING)
VOLUME_REVERT = _t("revert", {V.AVAILABLE}, V.REVERTING, V.AVAILABLE, V.ERROR)
VOLUME_RESERVE = _t("reserve", {V.AVAILABLE}, V.ATTACHING, None, V.AVAILABLE)
VOLUME_BEGIN_DETACH = _t("begin_detaching", {V.IN_USE}, V.DETACHING, None, V.IN_USE)

SNAPSHOT_CREATE = _t("create", set(), S.CREATING, S.AVAILABLE, S.ERROR)
SNAPSHOT_DELETE = _t("delete", {S.AVAILABLE, S.ERROR}, S.DELETING, None, S.ERROR_DELETING)
# As Cinder, force-delete takes a snapshot in any status, `deleting` too (one an admin reset there, or a
# delete that stalled): the delete workflow holds the snapshot's lock and skips a row already gone.
SNAPSHOT_FORCE_DELETE = _t("force_delete", {s.value for s in S} - {S.DELETED}, S.DELETING, None, S.ERROR_DELETING)
SNAPSHOT_RESTORE = _t("revert", {S.AVAILABLE}, S.RESTORING, S.AVAILABLE, S.AVAILABLE)
# os-update_snapshot_status (Nova's assisted snapshots report their own progress): from a snapshot's
# status, the statuses its owner may report.
SNAPSHOT_REPORTED_STATUS: dict[str, frozenset[str]] = {
    S.CREATING: frozenset({S.CREATING, S.AVAILABLE, S.ERROR}),
    S.DELETING: frozenset({S.DELETING, S.ERROR_DELETING}),
}

# Groups and group snapshots (domain/groups.py, domain/group_snapshots.py claim; volume/workflows/groups.py
# and volume/recovery.py settle). A group holds no storage of its own: its outcome follows its members'.
GROUP_CREATE = _t("create", set(), G.CREATING, G.AVAILABLE, G.ERROR)
GROUP_UPDATE = _t("update", {G.AVAILABLE}, G.UPDATING, G.AVAILABLE, G.ERROR)
GROUP_DELETE = _t("delete", {G.AVAILABLE, G.ERROR}, G.DELETING, None, G.ERROR)
GROUP_SNAPSHOT_CREATE = _t("create", set(), GS.CREATING, GS.AVAILABLE, GS.ERROR)
GROUP_SNAPSHOT_DELETE = _t("delete", {GS.AVAILABLE, GS.ERROR}, GS.DELETING, None, GS.ERROR_DELETING)

# A create the scheduler has not placed (no host yet) that nothing will place any more: its message
# died with a process. One rule, used by the embedded start-up, the scheduler's sweeper and the
# scheduler's "no valid backend" (db/settle.py applies it).
UNPLACED_CREATE = {"status": V.CREATING, "host": None}
UNPLACED_GROUP_CREATE = {"status": G.CREATING, "host": None}

# Volume statuses a snapshot may be taken from (in-use needs force or 3.66).
SNAPSHOT_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})
# Volume statuses a clone may be made from.
CLONE_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})
