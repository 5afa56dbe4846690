"""ConsistentFakeDriver: the fake, plus consistent group snapshots (driver alias `fake-consistent`).

The plain fake does not declare SupportsConsistentGroupSnapshot, so that the manager's one-by-one
fallback stays exercised; this variant takes every member's snapshot at one instant, under the
store's lock (the lock every write of the fake takes), like the file and RBD drivers do under their
write barriers.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import ClassVar

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    BackendStats,
    GroupSnapshotResult,
    ModelUpdate,
    ProgressCallback,
    SnapshotRef,
    SupportsConsistentGroupSnapshot,
    no_progress,
)
from cinderblock.volume.drivers.fake import POOL, FakeDriver


class ConsistentFakeDriver(FakeDriver, SupportsConsistentGroupSnapshot):
    CONTRACTS: ClassVar[tuple[type, ...]] = (*FakeDriver.CONTRACTS, SupportsConsistentGroupSnapshot)

    def get_stats(self) -> BackendStats:
        stats = super().get_stats()
        return dataclasses.replace(stats, capabilities={**stats.capabilities,
                                                        "consistent_group_snapshot_enabled": True})

    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        self._enter("create_group_snapshot", snapshots[0].volume.group_id if snapshots else None)
        ids = [s.id for s in snapshots]
        if len(set(ids)) != len(ids):
            raise DriverError(f"group snapshot names a snapshot twice: {ids}")
        with self.store.lock:  # writes wait here: every member is copied at the same instant
            started = time.monotonic()
            taken = [existing for existing in ids if existing in self.store.snapshots]
            if taken:
                raise DriverError(f"fake snapshot(s) {taken} already exist")
            copies = [self._volume(s.volume.id).copy() for s in snapshots]  # raises before anything is kept
            self.store.snapshots.update(zip(ids, copies, strict=True))
            pause_ms = (time.monotonic() - started) * 1000
        progress(100)
        return GroupSnapshotResult(
            updates=tuple(ModelUpdate(provider_location=f"fake://{POOL}/{s.name}") for s in snapshots),
            write_pause_ms=round(pause_ms, 3))
