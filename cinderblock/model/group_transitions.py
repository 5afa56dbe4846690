"""The declared state machines of groups, group snapshots and the services' replication.

Groups and group snapshots hold no storage of their own: the domain claims (domain/groups.py,
domain/group_snapshots.py, domain/group_replication.py), the scheduler places a new group, and the
volume service of the group's backend (volume/workflows/groups.py, group_replication.py, recovery.py)
moves them on by their members' outcomes. A volume service's own replication (os-services failover):

    enabled | failed-over | failover-error --(API)--> failing-over
    failing-over --driver switched--> failed-over (target) | enabled (failback)
    failing-over --InvalidReplicationTarget, or the cast never left--> what it was
    failing-over --any other driver error, or a restart mid-way--> failover-error
"""
from __future__ import annotations

from cinderblock.model.group_states import GROUP_RESET_STATUSES, GROUP_SNAPSHOT_RESET_STATUSES
from cinderblock.model.group_states import GroupSnapshotStatus as GS
from cinderblock.model.group_states import GroupStatus as G
from cinderblock.model.machine import Machine, states_of
from cinderblock.model.states import ReplicationStatus as R

GROUPS = Machine("group", {"status": states_of(G), "replication_status": states_of(R)})
GROUP_SNAPSHOTS = Machine("group_snapshot", {"status": states_of(GS)})
# A service's active backend is a name (a replication target's backend_id), not an enumerable state.
SERVICES = Machine("service", {"replication_status": states_of(R), "active_backend_id": None})

# --- groups --------------------------------------------------------------------------------------
GROUP_CREATE = GROUPS.operation("create", set(), G.CREATING, G.AVAILABLE, G.ERROR)
GROUP_INSERT = GROUPS.transition("insert", "status", set(), {G.CREATING}, also={"replication_status": {R.DISABLED}})
# The scheduler records the chosen host; the status stays `creating`.
GROUP_PLACE = GROUPS.transition("place", "status", {G.CREATING}, None)
GROUP_UPDATE = GROUPS.operation("update", {G.AVAILABLE}, G.UPDATING, G.AVAILABLE, G.ERROR)
# Cinder: a name/description-only update makes the group available whatever it was.
GROUP_RENAME = GROUPS.transition("rename", "status", None, {G.AVAILABLE})
# With delete_volumes any settled group; without, available or error only (the domain checks which).
GROUP_DELETE = GROUPS.operation("delete", {G.AVAILABLE, G.IN_USE, G.ERROR, G.ERROR_DELETING}, G.DELETING, None,
                                G.ERROR)
GROUP_RESET = GROUPS.transition("reset", "status", None, GROUP_RESET_STATUSES)

# --- groups: replication (API 3.38; the group's status stays, but for failures → error) ---------
GROUP_ENABLE_REPLICATION = GROUPS.operation("enable_replication", {R.DISABLED, R.ENABLED}, R.ENABLING, R.ENABLED,
                                            R.ERROR, column="replication_status", failure_also={"status": {G.ERROR}})
GROUP_DISABLE_REPLICATION = GROUPS.operation("disable_replication", {R.ENABLED, R.ERROR}, R.DISABLING, R.DISABLED,
                                             R.ERROR, column="replication_status",
                                             failure_also={"status": {G.ERROR}})
# Success: enabled (served by the primary again) or failed-over, the caller says which.
GROUP_FAILOVER_REPLICATION = GROUPS.operation("failover_replication", {R.ENABLED, R.FAILED_OVER}, R.FAILING_OVER,
                                              None, R.ERROR, column="replication_status",
                                              failure_also={"status": {G.ERROR}})
GROUP_REPLICATION_INTERRUPTED = GROUPS.transition(
    "replication_interrupted", "replication_status", {R.ENABLING, R.DISABLING, R.FAILING_OVER}, {R.ERROR},
    also={"status": {G.ERROR}})
# A backend failover moves its replicated groups with it (their members did).
GROUP_BACKEND_FAILOVER = GROUPS.transition("backend_failover", "replication_status", {R.ENABLED, R.FAILED_OVER},
                                           {R.ENABLED, R.FAILED_OVER})

# --- group snapshots -----------------------------------------------------------------------------
GROUP_SNAPSHOT_CREATE = GROUP_SNAPSHOTS.operation("create", set(), GS.CREATING, GS.AVAILABLE, GS.ERROR)
GROUP_SNAPSHOT_INSERT = GROUP_SNAPSHOTS.transition("insert", "status", set(), {GS.CREATING})
GROUP_SNAPSHOT_DELETE = GROUP_SNAPSHOTS.operation("delete", {GS.AVAILABLE, GS.ERROR}, GS.DELETING, None,
                                                  GS.ERROR_DELETING)
# Recovery: a create (or an admin's `updating`) cut off ends by what its member snapshots are.
GROUP_SNAPSHOT_SETTLE = GROUP_SNAPSHOTS.transition("settle", "status", {GS.CREATING, GS.UPDATING},
                                                   {GS.AVAILABLE, GS.ERROR})
GROUP_SNAPSHOT_RESET = GROUP_SNAPSHOTS.transition("reset", "status", None, GROUP_SNAPSHOT_RESET_STATUSES)

# --- services: replication of the whole backend --------------------------------------------------
# Cinder accepts enabled and failed-over; failover-error too here, so an admin can retry after a
# driver error or an interrupted failover (the driver reverted, the row names what serves).
SERVICE_FAILOVER_FROM = frozenset({R.ENABLED, R.FAILED_OVER, R.FAILOVER_ERROR})
SERVICE_FAILOVER = SERVICES.transition("failover", "replication_status", SERVICE_FAILOVER_FROM, {R.FAILING_OVER})
# Nothing changed (the cast never left, or the driver refused the target): what it was.
SERVICE_FAILOVER_UNDONE = SERVICES.transition("failover_undone", "replication_status", {R.FAILING_OVER},
                                              SERVICE_FAILOVER_FROM)
SERVICE_FAILED_OVER = SERVICES.transition("failed_over", "replication_status", {R.FAILING_OVER},
                                          {R.FAILED_OVER, R.ENABLED}, also={"active_backend_id": None})
SERVICE_FAILOVER_ERROR = SERVICES.transition("failover_error", "replication_status", {R.FAILING_OVER},
                                             {R.FAILOVER_ERROR})
# At start: enabled when the driver has replication targets, disabled when not (a settled state kept).
SERVICE_REPLICATION_SETTLE = SERVICES.transition(
    "settle", "replication_status",
    states_of(R) - {R.FAILING_OVER, R.FAILED_OVER, R.FAILOVER_ERROR}, {R.ENABLED, R.DISABLED})
# `cinderblock db reset-active-backend` (the service is stopped, frozen and disabled).
SERVICE_RESET_ACTIVE_BACKEND = SERVICES.transition("reset_active_backend", "replication_status", None,
                                                   {R.ENABLED, R.DISABLED}, also={"active_backend_id": None})

# A group create the scheduler has not placed yet (no host).
UNPLACED_GROUP_CREATE = {"status": G.CREATING, "host": None}
