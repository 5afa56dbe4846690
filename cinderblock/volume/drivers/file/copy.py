"""File copy helpers for the file driver: reflink when the filesystem can, sparse copy otherwise.

Both write into an already chosen destination path; making the result appear atomically under its
final name is the caller's job (the driver writes to a temp name and renames).
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os

from cinderblock.volume.driver import ProgressCallback, no_progress

LOG = logging.getLogger(__name__)

# _IOW(0x94, 9, int): share the source's extents with the destination (XFS reflink=1, btrfs...).
FICLONE = 0x40049409
# Errors meaning "this filesystem (pair) cannot reflink", as opposed to a real I/O failure.
_NO_REFLINK = frozenset({errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.ENOSYS})
# Copy granularity: large enough to be fast, small enough for useful progress reports.
CHUNK = 64 * 1024 * 1024


class _Progress:
    """Forwards whole percentages to the caller once each, and logs every 10% at INFO."""

    def __init__(self, label: str, callback: ProgressCallback) -> None:
        self._label = label
        self._callback = callback
        self._last = -1
        self._last_logged = -10

    def __call__(self, percent: int) -> None:
        percent = max(0, min(100, percent))
        if percent <= self._last:
            return
        self._last = percent
        self._callback(percent)
        if percent >= self._last_logged + 10 or percent == 100:
            self._last_logged = percent - percent % 10
            LOG.info("%s: %d%%", self._label, percent)


def reflink(src: str, dst: str) -> bool:
    """Make dst share src's extents. False (and no dst left behind) when unsupported."""
    created = not os.path.exists(dst)
    with open(src, "rb") as fsrc, open(dst, "wb") as fdst:
        try:
            fcntl.ioctl(fdst.fileno(), FICLONE, fsrc.fileno())
            return True
        except OSError as exc:
            if exc.errno not in _NO_REFLINK:
                raise
            LOG.debug("reflink %s -> %s not possible: %s", src, dst, exc)
    if created:
        os.unlink(dst)
    return False


def data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    """(offset, length) of every data extent of fd below size, found with SEEK_DATA/SEEK_HOLE."""
    extents: list[tuple[int, int]] = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after pos
                break
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        if end > start:
            extents.append((start, end - start))
        pos = end
    return extents


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    """Copy [offset, offset+length) to the same offset; kernel copy first, read/write fallback."""
    done = 0
    while done < length:
        count = length - done
        try:
            copied = os.copy_file_range(src_fd, dst_fd, count, offset + done, offset + done)
        except OSError as exc:
            # Cross-device on old kernels, or filesystems without support: plain copy.
            if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            copied = _copy_rw(src_fd, dst_fd, offset + done, count)
        if copied == 0:  # source shrank under us
            raise OSError(errno.EIO, f"short copy at offset {offset + done}")
        done += copied


def _copy_rw(src_fd: int, dst_fd: int, offset: int, count: int) -> int:
    data = os.pread(src_fd, min(count, 8 * 1024 * 1024), offset)
    view = memoryview(data)
    written = 0
    while written < len(view):
        written += os.pwrite(dst_fd, view[written:], offset + written)
    return len(data)


def sparse_copy(src: str, dst: str, progress: ProgressCallback = no_progress) -> None:
    """Copy src to dst writing only src's data extents, so dst keeps src's holes.

    Progress is the share of data bytes copied (holes cost nothing, so they do not count).
    """
    report = _Progress(f"sparse copy {os.path.basename(src)} -> {os.path.basename(dst)}", progress)
    src_fd = os.open(src, os.O_RDONLY)
    try:
        dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            size = os.fstat(src_fd).st_size
            extents = data_extents(src_fd, size)
            total = sum(length for _, length in extents)
            report(0)
            copied = 0
            for offset, length in extents:
                for chunk_start in range(offset, offset + length, CHUNK):
                    chunk = min(CHUNK, offset + length - chunk_start)
                    _copy_range(src_fd, dst_fd, chunk_start, chunk)
                    copied += chunk
                    report(copied * 100 // total)
            # Trailing holes are not written; set the size explicitly.
            os.ftruncate(dst_fd, size)
            report(100)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)


def clone_file(src: str, dst: str, progress: ProgressCallback = no_progress) -> str:
    """Copy src to dst the cheapest way available. Returns "reflink" or "sparse-copy"."""
    if reflink(src, dst):
        _Progress(f"reflink {os.path.basename(src)} -> {os.path.basename(dst)}", progress)(100)
        return "reflink"
    sparse_copy(src, dst, progress)
    return "sparse-copy"


def fsync_path(path: str) -> None:
    """Flush a file (or directory entry table) to stable storage."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
