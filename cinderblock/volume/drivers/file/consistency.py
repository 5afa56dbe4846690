"""Consistent group snapshots for the file driver: hold writes, clone every member, release.

The write barrier, per member volume, for the time the clones take:
- the export: held by the target helper (`Target.write_hold`; tgt sets the member's target offline
  and back to `ready`, initiators see the target busy and retry);
- local paths: an exclusive flock(2) on the volume file. fsfreeze does not work on loop/regular
  files, so local consumers that want consistent group snapshots take a shared flock around each
  write (`fcntl.flock(fd, LOCK_SH)`); the barrier's LOCK_EX waits for writes in flight and holds new
  ones. Writers that do not take the lock are not held (documented limitation of local paths).
Only the clones (reflinks on XFS/btrfs: metadata only) run inside the barrier; fsync and the rename
to the final names happen after it is released. The pause is measured and returned. Replication
takes its point-in-time images under the same barrier.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    GroupSnapshotResult,
    ModelUpdate,
    ProgressCallback,
    SnapshotRef,
    no_progress,
)
from cinderblock.volume.drivers.file import copy
from cinderblock.volume.drivers.file.storage import VolumeStorage, temp_name
from cinderblock.volume.targets.base import Target

LOG = logging.getLogger(__name__)
# How long the barrier waits for in-flight local writes to finish before giving up.
LOCK_TIMEOUT = 10.0


class WriteBarrier:
    """Holds new writes to a set of volume files and their exports."""

    def __init__(self, target: Target, lock_timeout: float = LOCK_TIMEOUT) -> None:
        self._target = target
        self._lock_timeout = lock_timeout

    @contextlib.contextmanager
    def hold(self, paths: Sequence[Path], volume_ids: Sequence[str]) -> Iterator[list[float]]:
        """Hold new writes to every path (and its export) until the block ends.

        Yields a one-element list that receives the pause in milliseconds when the block ends."""
        pause: list[float] = [0.0]
        held: list[int] = []
        exports = None
        started = time.monotonic()
        try:
            exports = self._target.write_hold(volume_ids)
            # Sorted order: two barriers over overlapping sets can never deadlock.
            order = sorted(range(len(paths)), key=lambda i: str(paths[i]))
            started = time.monotonic()
            for index in order:
                exports.hold(volume_ids[index])
                fd = os.open(paths[index], os.O_RDONLY)
                held.append(fd)
                _lock_exclusive(fd, paths[index], self._lock_timeout)
            yield pause
        finally:
            for fd in held:
                with contextlib.suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            any_export = exports is not None and exports.held
            if exports is not None:
                exports.release()
            if held or any_export:
                pause[0] = (time.monotonic() - started) * 1000


def _lock_exclusive(fd: int, path: Path, timeout: float) -> None:
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


class GroupSnapshots:
    """SupportsConsistentGroupSnapshot for files: every member cloned under one barrier."""

    def __init__(self, storage: VolumeStorage, barrier: WriteBarrier) -> None:
        self._storage = storage
        self._barrier = barrier

    def create(self, snapshots: Sequence[SnapshotRef], progress: ProgressCallback = no_progress) -> GroupSnapshotResult:
        sources = [self._storage.existing_volume(s.volume) for s in snapshots]
        finals = [src.parent / s.name for src, s in zip(sources, snapshots, strict=True)]
        temps = [temp_name(final) for final in finals]
        for final in finals:
            if final.exists():
                raise DriverError(f"{final} already exists")
        published: list[Path] = []
        try:
            with self._barrier.hold(sources, [s.volume.id for s in snapshots]) as pause:
                for src, tmp in zip(sources, temps, strict=True):
                    copy.clone_file(str(src), str(tmp), progress)
            for tmp, final in zip(temps, finals, strict=True):  # durability after the writes resumed
                os.chmod(tmp, 0o600)
                copy.fsync_path(str(tmp))
                os.replace(tmp, final)
                published.append(final)
            for directory in {final.parent for final in finals}:
                copy.fsync_path(str(directory))
        except OSError as error:
            _remove(temps + published)
            raise DriverError(f"group snapshot of {len(snapshots)} volume(s): {error.strerror or error}") from error
        except BaseException:
            _remove(temps + published)
            raise
        LOG.info("group snapshot of %d volume(s): writes held %.1f ms", len(snapshots), pause[0])
        return GroupSnapshotResult(updates=tuple(ModelUpdate(provider_location=str(f)) for f in finals),
                                   write_pause_ms=round(pause[0], 3))


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
