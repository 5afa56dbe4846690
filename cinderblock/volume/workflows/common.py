"""What every workflow shares: its dependencies, record conversion, and the outcome writers.

A workflow claims nothing (the domain did, by compare-and-swap); it runs the driver and then moves
the resource from the transient state to the operation's success or failure state (its declared
`succeed` and `fail` transitions, db/transition.py), again by compare-and-swap on the transient state,
so a reset-state in between wins over a stale outcome.

Storage work on one resource runs under `deps.locks` (cinderblock.coordination): `volume-<id>` or
`snapshot-<id>`, held across hosts when coordination is configured. Order, to never deadlock: a
volume's lock before its snapshots' locks, and never two volumes' locks at once.

The outcome writers retry while the database is unreachable (`retry_db`): storage work that was
done is never forgotten because the database blinked.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cinderblock.config.settings import BackendSettings
from cinderblock.coordination import LocalLocks
from cinderblock.db import tables
from cinderblock.db import transition as state
from cinderblock.db.engine import Database
from cinderblock.model.errors import DatabaseUnavailable
from cinderblock.model.machine import Operation
from cinderblock.volume.driver import ModelUpdate, SnapshotRef, VolumeDriver, VolumeRef

LOG = logging.getLogger(__name__)
R = TypeVar("R")
# How long a workflow keeps retrying a database step before giving up; None: until it answers. Work
# taken from the broker was acknowledged when read, so giving up would drop it: casts wait forever
# (the periodic sweep, volume/recovery.py, settles what a stopped process still left behind).
DB_RETRY_SECONDS: float | None = None


def retry_db(action: Callable[[], R], what: str, budget: float | None = DB_RETRY_SECONDS) -> R:
    """action(), run again with backoff while the database is unreachable, for up to budget seconds
    (None: until it is reachable). Each run must be safe to repeat: a commit whose answer was lost
    may have happened."""
    deadline, delay = (math.inf if budget is None else time.monotonic() + budget), 0.2
    while True:
        try:
            return action()
        except DatabaseUnavailable:
            if time.monotonic() + delay > deadline:
                raise
            LOG.warning("%s: the database is unreachable; retrying in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 3.0)


@dataclass
class WorkflowDeps:
    db: Database
    driver: VolumeDriver
    backend: BackendSettings
    # Asks for a fresh capability report soon (capacity changed).
    stats_changed: Callable[[], None]
    # (volume id, pool, GiB, when the delete's storage work began): the schedulers get the room back now.
    capacity_freed: Callable[[str, str | None, float, float], None]
    locks: LocalLocks = field(default_factory=LocalLocks)


def volume_lock(volume_id: str) -> str:
    return f"volume-{volume_id}"


def snapshot_lock(snapshot_id: str) -> str:
    return f"snapshot-{snapshot_id}"


def volume_ref(volume: tables.Volume) -> VolumeRef:
    pool = volume.host.partition("#")[2] or None if volume.host else None
    specs = volume.volume_type.specs() if volume.volume_type is not None else {}
    return VolumeRef(id=volume.id, size_gb=volume.size, pool=pool, provider_location=volume.provider_location,
                     provider_auth=volume.provider_auth, extra_specs=specs,
                     replication_driver_data=volume.replication_driver_data, group_id=volume.group_id)


def snapshot_ref(snapshot: tables.Snapshot, volume: tables.Volume) -> SnapshotRef:
    return SnapshotRef(id=snapshot.id, volume=volume_ref(volume), size_gb=snapshot.volume_size,
                       provider_location=snapshot.provider_location)


def model_values(update: ModelUpdate | None) -> dict[str, Any]:
    if update is None:
        return {}
    return {key: value for key, value in update.__dict__.items() if value is not None}


def succeed(db: Database, ident: str, operation: Operation, previous: str | None,
            values: dict[str, Any] | None = None) -> bool:
    """transient → success (or back to `previous` when the operation restores it)."""
    status = operation.success or previous

    def write() -> bool:
        with db.write() as session:
            return state.move(session, operation.succeed, ident, to=status,
                              values={"error_reason": None, **(values or {})})

    won = retry_db(write, f"{operation.name} of {operation.resource} {ident}")
    if not won:
        LOG.warning("%s %s left %s before %s finished; outcome not written",
                    operation.resource, ident, operation.transient, operation.name)
    return won


def fail(db: Database, ident: str, operation: Operation, error: BaseException,
         values: dict[str, Any] | None = None) -> None:
    """transient → failure, with the reason kept for admins and logged in full."""
    LOG.error("%s of %s %s failed: %s", operation.name, operation.resource, ident, error,
              exc_info=(type(error), error, error.__traceback__))
    reason = f"{type(error).__name__}: {error}"[:1000]

    def write() -> bool:
        with db.write() as session:
            return state.move(session, operation.fail, ident, values={"error_reason": reason, **(values or {})})

    retry_db(write, f"{operation.name} of {operation.resource} {ident}")
