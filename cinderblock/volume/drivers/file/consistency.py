"""Consistent group snapshots for the file driver: hold writes, clone every member, release.

The write barrier, per member volume, for the time the clones take:
- iSCSI (tgt): the member's target is set offline (`tgtadm --op update --mode target --tid N
  --name state -v offline`) and back to `ready`; initiators see the target busy and retry.
- local paths: an exclusive flock(2) on the volume file. fsfreeze does not work on loop/regular
  files, so local consumers that want consistent group snapshots take a shared flock around each
  write (`fcntl.flock(fd, LOCK_SH)`); the barrier's LOCK_EX waits for writes in flight and holds new
  ones. Writers that do not take the lock are not held (documented limitation of local paths).
Only the clones (reflinks on XFS/btrfs: metadata only) run inside the barrier; fsync and the rename
to the final names happen after it is released. The pause is measured and returned.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    GroupSnapshotResult,
    ModelUpdate,
    ProgressCallback,
    SnapshotRef,
    SupportsConsistentGroupSnapshot,
    no_progress,
)
from cinderblock.volume.drivers.file import copy

LOG = logging.getLogger(__name__)
# How long the barrier waits for in-flight local writes to finish before giving up.
LOCK_TIMEOUT = 10.0


@contextlib.contextmanager
def write_barrier(paths: Sequence[Path], target: Any, volume_ids: Sequence[str]) -> Iterator[list[float]]:
    """Hold new writes to every path (and its tgt target) until the block ends.

    Yields a one-element list that receives the pause in milliseconds when the block ends."""
    pause: list[float] = [0.0]
    held: list[int] = []
    offline: list[int] = []
    tids = _tids(target, volume_ids)
    try:
        # Sorted order: two barriers over overlapping sets can never deadlock.
        order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
        started = time.monotonic()
        for index in order:
            tid = tids.get(volume_ids[index])
            if tid is not None:
                target._run("--op", "update", "--mode", "target", "--tid", str(tid), "--name", "state", "-v", "offline")
                offline.append(tid)
            fd = os.open(paths[index], os.O_RDONLY)
            held.append(fd)
            _lock_exclusive(fd, paths[index])
        yield pause
    finally:
        for fd in held:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        for tid in offline:
            try:
                target._run("--op", "update", "--mode", "target", "--tid", str(tid), "--name", "state", "-v", "ready")
            except DriverError as error:  # never leave a target offline silently
                LOG.error("could not bring tgt target %d back online: %s", tid, error)
        if held or offline:
            pause[0] = (time.monotonic() - started) * 1000


def _lock_exclusive(fd: int, path: Path, timeout: float = LOCK_TIMEOUT) -> None:
    """LOCK_EX, but never wait forever on a consumer that keeps its shared lock."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise DriverError(f"writes to {path} could not be held within {timeout:.0f} s "
                                  f"(a consumer keeps its flock)") from None
            time.sleep(0.0002)


def _tids(target: Any, volume_ids: Sequence[str]) -> dict[str, int]:
    """tid of each member's tgt target (only for the tgt helper; exports that exist)."""
    if getattr(target, "protocol", "local") != "iSCSI" or not hasattr(target, "_targets"):
        return {}
    targets = target._targets()
    found = {}
    for volume_id in volume_ids:
        match = target._find(volume_id, targets)
        if match is not None:
            found[volume_id] = match.tid
    return found


class FileGroupSnapshots(SupportsConsistentGroupSnapshot):
    """Mixed into FileDriver (uses its volume_path, target and temp-file naming)."""

    def create_group_snapshot(self, snapshots: Sequence[SnapshotRef],
                              progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        from cinderblock.volume.drivers.file.driver import TMP_PREFIX

        driver: Any = self
        sources = [driver._existing(driver.volume_path(s.volume), "volume") for s in snapshots]
        finals = [src.parent / s.name for src, s in zip(sources, snapshots)]
        temps = [final.with_name(f"{TMP_PREFIX}{final.name}.{uuid.uuid4().hex[:8]}") for final in finals]
        for final in finals:
            if final.exists():
                raise DriverError(f"{final} already exists")
        published: list[Path] = []
        try:
            with write_barrier(sources, driver.target, [s.volume.id for s in snapshots]) as pause:
                for src, tmp in zip(sources, temps):
                    copy.clone_file(str(src), str(tmp), progress)
            for tmp, final in zip(temps, finals):  # durability after the writes resumed
                os.chmod(tmp, 0o600)
                copy.fsync_path(str(tmp))
                os.replace(tmp, final)
                published.append(final)
            for directory in {final.parent for final in finals}:
                copy.fsync_path(str(directory))
        except OSError as error:
            self._undo(temps + published)
            raise DriverError(f"group snapshot of {len(snapshots)} volume(s): {error.strerror or error}") from error
        except BaseException:
            self._undo(temps + published)
            raise
        LOG.info("group snapshot of %d volume(s): writes held %.1f ms", len(snapshots), pause[0])
        return GroupSnapshotResult(updates=tuple(ModelUpdate(provider_location=str(f)) for f in finals),
                                   write_pause_ms=round(pause[0], 3))

    @staticmethod
    def _undo(paths: Sequence[Path]) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
