"""The volume service of one backend: the RPC endpoint that dispatches to one workflow per operation.

Casts (create, delete, extend, snapshots, revert, groups) have no caller waiting: when the database is
away as one arrives, the workflow waits for it (retry_db, for as long as it takes) instead of dropping
the message on the floor; a workflow is therefore safe to run again from the start.
Calls fail at once (the API answers 503).
"""
from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from cinderblock.config.settings import BackendSettings
from cinderblock.coordination import LocalLocks
from cinderblock.db.engine import Database
from cinderblock.model.records import ADMIN_CONTEXT, RequestContext, RequestSpec
from cinderblock.rpc.clients import SchedulerClient
from cinderblock.volume import recovery, reporting
from cinderblock.volume.driver import VolumeDriver
from cinderblock.volume.workflows import attach, create, delete, extend, failover, group_replication, groups, snapshot
from cinderblock.volume.workflows.common import WorkflowDeps, retry_db

LOG = logging.getLogger(__name__)

Context = dict[str, Any]


class VolumeManager:
    """RPC endpoint; every public method is one remote call of rpc.clients.VolumeClient."""

    def __init__(self, backend: BackendSettings, db: Database, driver: VolumeDriver,
                 scheduler: SchedulerClient, stats_interval: float, locks: LocalLocks | None = None) -> None:
        self.backend = backend
        self.driver = driver
        self.scheduler = scheduler
        self.reporter = reporting.StatsReporter(backend, db, driver, scheduler, stats_interval)
        self.deps = WorkflowDeps(db=db, driver=driver, backend=backend, stats_changed=self.reporter.request,
                                 capacity_freed=self.reporter.freed,
                                 locks=locks or LocalLocks())
        self.ready = threading.Event()
        self._busy: Counter[str] = Counter()
        self._busy_lock = threading.Lock()

    def _cast(self, what: str, workflow: Callable[[], None], *resources: str) -> None:
        """Run a cast's workflow; `resources` (ids) count as busy meanwhile, so the periodic sweep
        leaves them alone however long the work takes."""
        with self._busy_lock:
            self._busy.update(resources)
        try:
            retry_db(workflow, f"{what} on {self.backend.service_host}")
        finally:
            with self._busy_lock:
                self._busy.subtract(resources)
                for ident in resources:
                    if self._busy[ident] <= 0:
                        del self._busy[ident]

    def busy(self, ident: str) -> bool:
        with self._busy_lock:
            return ident in self._busy

    def in_progress(self) -> list[str]:
        with self._busy_lock:
            return sorted(self._busy)

    def sweep_stale(self, max_age: float) -> None:
        """The periodic sweep (volume/recovery.py) over this backend."""
        recovery.sweep(self.deps, max_age, self.busy)

    # --- volumes -------------------------------------------------------------------------
    def create_volume(self, context: Context, volume_id: str, pool: str | None,
                      request_spec: dict[str, Any] | None = None) -> None:
        # With the scheduler's spec, a driver failure goes back to the scheduler for another backend.
        spec = RequestSpec.from_wire(request_spec) if request_spec else None
        caller = RequestContext.from_wire(context)

        def reschedule(retry: RequestSpec) -> None:
            self.scheduler.create_volume(caller, retry)

        self._cast(f"create of volume {volume_id}",
                   lambda: create.create_volume(self.deps, volume_id, pool, spec, reschedule if spec else None),
                   volume_id)

    def delete_volume(self, context: Context, volume_id: str) -> None:
        self._cast(f"delete of volume {volume_id}", lambda: delete.delete_volume(self.deps, volume_id), volume_id)

    def extend_volume(self, context: Context, volume_id: str, new_size: int) -> None:
        self._cast(f"extend of volume {volume_id}", lambda: extend.extend_volume(self.deps, volume_id, new_size),
                   volume_id)

    # --- snapshots -----------------------------------------------------------------------
    def create_snapshot(self, context: Context, snapshot_id: str) -> None:
        self._cast(f"create of snapshot {snapshot_id}", lambda: snapshot.create_snapshot(self.deps, snapshot_id),
                   snapshot_id)

    def delete_snapshot(self, context: Context, snapshot_id: str) -> None:
        self._cast(f"delete of snapshot {snapshot_id}", lambda: snapshot.delete_snapshot(self.deps, snapshot_id),
                   snapshot_id)

    def revert_to_snapshot(self, context: Context, volume_id: str, snapshot_id: str) -> None:
        self._cast(f"revert of volume {volume_id}",
                   lambda: snapshot.revert_to_snapshot(self.deps, volume_id, snapshot_id), volume_id, snapshot_id)

    # --- groups (volume/workflows/groups.py) ---------------------------------------------
    def create_group(self, context: Context, group_id: str) -> None:
        self._cast(f"create of group {group_id}", lambda: groups.create_group(self.deps, group_id), group_id)

    def update_group(self, context: Context, group_id: str, add_volumes: list[str],
                     remove_volumes: list[str]) -> None:
        self._cast(f"update of group {group_id}",
                   lambda: groups.update_group(self.deps, group_id, add_volumes, remove_volumes), group_id)

    def delete_group(self, context: Context, group_id: str) -> None:
        self._cast(f"delete of group {group_id}", lambda: groups.delete_group(self.deps, group_id), group_id)

    def create_group_from_src(self, context: Context, group_id: str) -> None:
        self._cast(f"create of group {group_id}", lambda: groups.create_group_from_src(self.deps, group_id),
                   group_id)

    def create_group_snapshot(self, context: Context, group_snapshot_id: str) -> None:
        self._cast(f"create of group snapshot {group_snapshot_id}",
                   lambda: groups.create_group_snapshot(self.deps, group_snapshot_id), group_snapshot_id)

    def delete_group_snapshot(self, context: Context, group_snapshot_id: str) -> None:
        self._cast(f"delete of group snapshot {group_snapshot_id}",
                   lambda: groups.delete_group_snapshot(self.deps, group_snapshot_id), group_snapshot_id)

    # --- replication (volume/workflows/failover.py, group_replication.py) -------------------
    def failover(self, context: Context, secondary_backend_id: str | None) -> None:
        self._cast(f"failover of {self.backend.service_host}",
                   lambda: failover.failover_host(self.deps, secondary_backend_id))

    def freeze_host(self, context: Context) -> None:
        failover.freeze(self.deps)

    def thaw_host(self, context: Context) -> None:
        failover.thaw(self.deps)

    def enable_replication(self, context: Context, group_id: str) -> None:
        self._cast(f"enable replication of group {group_id}",
                   lambda: group_replication.enable_replication(self.deps, group_id))

    def disable_replication(self, context: Context, group_id: str) -> None:
        self._cast(f"disable replication of group {group_id}",
                   lambda: group_replication.disable_replication(self.deps, group_id))

    def failover_replication(self, context: Context, group_id: str, secondary_backend_id: str | None,
                             allow_attached_volume: bool,
                             previous_replication_status: dict[str, str] | None = None) -> None:
        self._cast(f"failover of group {group_id}",
                   lambda: group_replication.failover_replication(self.deps, group_id, secondary_backend_id,
                                                                  allow_attached_volume,
                                                                  previous_replication_status))

    # --- connections ---------------------------------------------------------------------
    def initialize_connection(self, context: Context, volume_id: str, connector: dict[str, Any]) -> dict[str, Any]:
        return attach.initialize_connection(self.deps, volume_id, connector)

    def terminate_connection(self, context: Context, volume_id: str, connector: dict[str, Any] | None) -> None:
        attach.terminate_connection(self.deps, volume_id, connector)

    def attach_volume(self, context: Context, volume_id: str, attachment: dict[str, Any]) -> None:
        attach.attach_volume(self.deps, volume_id, attachment)

    def detach_volume(self, context: Context, volume_id: str, attachment_id: str | None) -> None:
        attach.detach_volume(self.deps, volume_id, attachment_id)

    # --- backend -------------------------------------------------------------------------
    def get_capabilities(self, context: Context) -> dict[str, Any]:
        return self.reporter.capabilities(refresh=True)

    def publish_capabilities(self, context: Context) -> None:
        self.reporter.request()

    def report_now(self) -> None:
        self.reporter.report(ADMIN_CONTEXT)
