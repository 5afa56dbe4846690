"""The one table of legal status transitions.

A domain service claims `transient` with a compare-and-swap from one of `from_states`; the volume
manager's workflow then moves the resource to `success` (None: back to the status it had before,
kept in `previous_status`) or to `failure`. Nothing else writes a status.
"""
from __future__ import annotations

from dataclasses import dataclass

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

# Volume statuses a snapshot may be taken from (in-use needs force or 3.66).
SNAPSHOT_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})
# Volume statuses a clone may be made from.
CLONE_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})
