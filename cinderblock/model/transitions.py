"""The declared state machines of volumes, snapshots and attachments: every legal status change.

`db/transition.py` is the only writer of these columns; it refuses what is not declared here (and a
test hook, tests/conftest.py, fails any status written another way). Groups, group snapshots and the
services' replication are declared in model/group_transitions.py. An Operation (model/machine.py) is a
request's lifecycle: the domain claims `transient`, the volume service's workflow moves it to
`success` (None: the status it had before, kept in `previous_status`) or `failure`, and a cast that
could not be sent is undone.
"""
from __future__ import annotations

from cinderblock.model.machine import KEEP, Machine, states_of
from cinderblock.model.states import AttachStatus as A
from cinderblock.model.states import MigrationStatus as M
from cinderblock.model.states import ReplicationStatus as R
from cinderblock.model.states import SnapshotStatus as S
from cinderblock.model.states import VolumeStatus as V
from cinderblock.model.states import VOLUME_RESET_STATUSES

VOLUMES = Machine("volume", {
    "status": states_of(V),
    "attach_status": states_of(A),
    "migration_status": states_of(M, extra=[None]),
    "replication_status": states_of(R),
})
SNAPSHOTS = Machine("snapshot", {"status": states_of(S)})
ATTACHMENTS = Machine("attachment", {"attach_status": states_of(A)})

ALL_VOLUME_STATES = frozenset(str(s) for s in V)
DELETABLE_VOLUME_STATES = {V.AVAILABLE, V.ERROR, V.ERROR_RESTORING, V.ERROR_EXTENDING, V.ERROR_MANAGING}
# Volume statuses a snapshot may be taken from (in-use needs force or 3.66).
SNAPSHOT_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})
# Volume statuses a clone may be made from.
CLONE_SOURCE_STATES = frozenset({V.AVAILABLE, V.IN_USE})

# --- volumes: the lifecycle of requests ----------------------------------------------------------
# A create inserts the row in `creating` (the replication status follows its type); the driver's
# answer may say whether it replicates.
VOLUME_CREATE = VOLUMES.operation("create", set(), V.CREATING, V.AVAILABLE, V.ERROR,
                                  success_also={"replication_status": states_of(R)})
VOLUME_INSERT = VOLUMES.transition("insert", "status", set(), {V.CREATING},
                                   also={"attach_status": {A.DETACHED}, "replication_status": {R.ENABLED, R.DISABLED}})
# A volume service takes a create for its pool (host set), or lets it go back to the scheduler; a
# scheduler's sweeper takes an unplaced one to send it again. The status stays `creating`.
VOLUME_PLACE = VOLUMES.transition("place", "status", {V.CREATING}, None)
VOLUME_DELETE = VOLUMES.operation("delete", DELETABLE_VOLUME_STATES, V.DELETING, None, V.ERROR_DELETING)
# force-delete ignores the status but never races another delete.
VOLUME_FORCE_DELETE = VOLUMES.operation("force_delete", ALL_VOLUME_STATES - {V.DELETING}, V.DELETING, None,
                                        V.ERROR_DELETING)
# A group's delete takes its members from whatever they are; a member that fails goes to error.
VOLUME_GROUP_DELETE = VOLUMES.operation("group_delete", ALL_VOLUME_STATES, V.DELETING, None, V.ERROR)
VOLUME_EXTEND = VOLUMES.operation("extend", {V.AVAILABLE}, V.EXTENDING, None, V.ERROR_EXTENDING)
# The workflow and recovery finish either kind of extend with this one (its success covers both).
VOLUME_EXTEND_IN_USE = VOLUMES.operation("extend_in_use", {V.AVAILABLE, V.IN_USE}, V.EXTENDING, None,
                                         V.ERROR_EXTENDING)
VOLUME_REVERT = VOLUMES.operation("revert", {V.AVAILABLE}, V.REVERTING, V.AVAILABLE, V.ERROR)

# --- volumes: attach and detach ------------------------------------------------------------------
# os-reserve: available, or in-use for a multiattach volume (a further condition the domain adds).
VOLUME_RESERVE = VOLUMES.transition("reserve", "status", {V.AVAILABLE, V.IN_USE}, {V.ATTACHING})
# os-unreserve, and a terminate_connection of a reservation that never attached.
VOLUME_UNRESERVE = VOLUMES.transition("unreserve", "status", {V.ATTACHING}, {V.IN_USE, V.AVAILABLE})
VOLUME_ATTACH = VOLUMES.transition("attach", "status", {V.ATTACHING, V.AVAILABLE, V.RESERVED, V.IN_USE},
                                   {V.IN_USE}, also={"attach_status": {A.ATTACHED}})
VOLUME_BEGIN_DETACH = VOLUMES.transition("begin_detaching", "status", {V.IN_USE}, {V.DETACHING})
VOLUME_ROLL_DETACHING = VOLUMES.transition("roll_detaching", "status", {V.DETACHING}, {V.IN_USE})
VOLUME_DETACH = VOLUMES.transition("detach", "status", {V.IN_USE, V.DETACHING}, {V.IN_USE, V.AVAILABLE},
                                   also={"attach_status": {A.DETACHED}})

# --- volumes: guards (the row must be in these states; its status is not changed) ---------------
# A snapshot (or group snapshot) of the volume is being taken: a racing delete either sees the
# snapshot or this write sees its `deleting`.
VOLUME_HOLD_FOR_SNAPSHOT = VOLUMES.transition("hold_for_snapshot", "status", SNAPSHOT_SOURCE_STATES, None)
VOLUME_JOIN_GROUP = VOLUMES.transition("join_group", "status", {V.AVAILABLE, V.IN_USE}, None)
VOLUME_LEAVE_GROUP = VOLUMES.transition("leave_group", "status", None, None)
VOLUME_JOIN_FAILED = VOLUMES.transition("join_group_failed", "status", None, {V.ERROR})

# --- volumes: admin and recovery -----------------------------------------------------------------
VOLUME_RESET = VOLUMES.transition("reset", "status", None, {*VOLUME_RESET_STATUSES, KEEP}, also={
    "attach_status": {A.ATTACHED, A.DETACHED}, "migration_status": states_of(M, extra=[None])})
# A settled status whose storage is gone (recovery) says so.
VOLUME_STORAGE_LOST = VOLUMES.transition("storage_lost", "status", {V.AVAILABLE, V.IN_USE, V.RESERVED}, {V.ERROR})
# An attach or detach cut off by a restart: in-use while attachments remain, else available.
VOLUME_SETTLE_ATTACH = VOLUMES.transition("settle_attach", "status", {V.ATTACHING, V.DETACHING},
                                          {V.IN_USE, V.AVAILABLE})

# --- volumes: replication of the whole backend (volume/workflows/failover.py) -------------------
VOLUME_FAILED_OVER = VOLUMES.transition("backend_failed_over", "replication_status", None,
                                        {R.FAILED_OVER, R.ENABLED})
# A replicated volume the driver could not move, or a volume that does not replicate: error, with its
# status before in previous_status.
VOLUME_FAILOVER_ERROR = VOLUMES.transition("backend_failover_error", "replication_status", None,
                                           {R.FAILOVER_ERROR, R.NOT_CAPABLE}, also={"status": {V.ERROR}})
# Failback: a volume that does not replicate, still on the primary, gets its status back.
VOLUME_FAILBACK = VOLUMES.transition("backend_failback", "status", {V.ERROR}, ALL_VOLUME_STATES,
                                     also={"replication_status": {R.DISABLED}})

# --- volumes: replication of their group (API 3.38; the group's side in group_transitions.py) ---
VOLUME_ENABLE_REPLICATION = VOLUMES.operation("enable_replication", {R.DISABLED, R.ENABLED}, R.ENABLING,
                                              R.ENABLED, R.ERROR, column="replication_status")
# Members whose failover failed (failover-error) may be disabled too: it is their way out.
VOLUME_DISABLE_REPLICATION = VOLUMES.operation("disable_replication", {R.ENABLED, R.ERROR, R.FAILOVER_ERROR},
                                               R.DISABLING, R.DISABLED, R.ERROR, column="replication_status")
# Success: back to enabled (served by the primary) or failed-over, the caller says which.
VOLUME_FAILOVER_REPLICATION = VOLUMES.operation("failover_replication", {R.ENABLED, R.FAILED_OVER},
                                                R.FAILING_OVER, None, R.ERROR, column="replication_status")
VOLUME_GROUP_FAILOVER_ERROR = VOLUMES.transition("group_failover_error", "replication_status", {R.FAILING_OVER},
                                                 {R.FAILOVER_ERROR}, also={"status": {V.ERROR}})
VOLUME_REPLICATION_INTERRUPTED = VOLUMES.transition(
    "replication_interrupted", "replication_status", {R.ENABLING, R.DISABLING, R.FAILING_OVER}, {R.ERROR})

# --- snapshots -----------------------------------------------------------------------------------
ALL_SNAPSHOT_STATES = frozenset(str(s) for s in S)
SNAPSHOT_CREATE = SNAPSHOTS.operation("create", set(), S.CREATING, S.AVAILABLE, S.ERROR)
SNAPSHOT_INSERT = SNAPSHOTS.transition("insert", "status", set(), {S.CREATING})
SNAPSHOT_DELETE = SNAPSHOTS.operation("delete", {S.AVAILABLE, S.ERROR}, S.DELETING, None, S.ERROR_DELETING)
# As Cinder, force-delete takes a snapshot in any status, `deleting` too (one an admin reset there, or a
# delete that stalled): the delete workflow holds the snapshot's lock and skips a row already gone.
SNAPSHOT_FORCE_DELETE = SNAPSHOTS.operation("force_delete", ALL_SNAPSHOT_STATES - {S.DELETED}, S.DELETING, None,
                                            S.ERROR_DELETING)
# Deleted with their volume (delete --cascade) or with their group snapshot.
SNAPSHOT_CASCADE_DELETE = SNAPSHOTS.operation("cascade_delete", {S.AVAILABLE, S.ERROR, S.DELETING}, S.DELETING,
                                              None, S.ERROR_DELETING)
SNAPSHOT_GROUP_DELETE = SNAPSHOTS.operation("group_delete", ALL_SNAPSHOT_STATES, S.DELETING, None,
                                            S.ERROR_DELETING)
SNAPSHOT_RESTORE = SNAPSHOTS.operation("revert", {S.AVAILABLE}, S.RESTORING, S.AVAILABLE, S.AVAILABLE)
# os-update_snapshot_status (Nova's assisted snapshots report their own progress).
SNAPSHOT_REPORT_CREATING = SNAPSHOTS.transition("report_creating", "status", {S.CREATING},
                                                {S.CREATING, S.AVAILABLE, S.ERROR})
SNAPSHOT_REPORT_DELETING = SNAPSHOTS.transition("report_deleting", "status", {S.DELETING},
                                                {S.DELETING, S.ERROR_DELETING})
SNAPSHOT_REPORTS = {S.CREATING.value: SNAPSHOT_REPORT_CREATING, S.DELETING.value: SNAPSHOT_REPORT_DELETING}
SNAPSHOT_RESET = SNAPSHOTS.transition("reset", "status", None, ALL_SNAPSHOT_STATES - {S.DELETED})
SNAPSHOT_STORAGE_LOST = SNAPSHOTS.transition("storage_lost", "status", {S.AVAILABLE}, {S.ERROR})
# A backend failover errors the snapshots of a volume it errored or could not keep them for; a
# failback gives them the status they had (previous_status) where the primary still holds them.
SNAPSHOT_FAILOVER_ERROR = SNAPSHOTS.transition("backend_failover_error", "status", ALL_SNAPSHOT_STATES - {S.ERROR},
                                               {S.ERROR})
SNAPSHOT_FAILBACK = SNAPSHOTS.transition("backend_failback", "status", {S.ERROR}, ALL_SNAPSHOT_STATES, restores=True)

# --- attachments (a row per attachment; a detach deletes it) ------------------------------------
ATTACHMENT_INSERT = ATTACHMENTS.transition("insert", "attach_status", set(), {A.ATTACHED})

# A create the scheduler has not placed (no host yet) that nothing will place any more: its message
# died with a process. One rule, used by the embedded start-up, the scheduler's sweeper and the
# scheduler's "no valid backend" (db/transition.fail_unplaced_create applies it).
UNPLACED_CREATE = {"status": V.CREATING, "host": None}
