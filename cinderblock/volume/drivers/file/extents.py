"""Chunk-level change detection for the file driver's replication.

A volume is cut in CHUNK-sized chunks. Each chunk holding data has a digest (SHA-256 cut to 128
bits: with the CPU's SHA extensions it hashes about twice as fast as blake2b here, 1.6 vs 0.8 GB/s);
chunks that are holes or read as zeros have none, so a mostly-sparse volume costs nothing to
describe. Data chunks are found with SEEK_DATA/SEEK_HOLE, so holes are never read.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
from collections.abc import Iterator

from cinderblock.volume.drivers.file.copy import data_extents

CHUNK = 1024 * 1024
_ZERO = bytes(CHUNK)

# fallocate(2) mode bits (linux/falloc.h)
_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)


def digest(data: bytes) -> str | None:
    """The chunk's digest, or None when it holds only zeros (same as a hole)."""
    if (len(data) == CHUNK and data == _ZERO) or (len(data) != CHUNK and not data.strip(b"\0")):
        return None
    return hashlib.sha256(data).hexdigest()[:32]


def chunk_count(size: int) -> int:
    return (size + CHUNK - 1) // CHUNK


def data_chunks(fd: int, size: int) -> Iterator[int]:
    """Indexes of the chunks below size that hold at least one data extent, ascending."""
    last = -1
    for offset, length in data_extents(fd, size):
        first = max(offset // CHUNK, last + 1)
        end = (offset + length - 1) // CHUNK
        for index in range(first, end + 1):
            yield index
        last = max(last, end)


def read_chunk(fd: int, index: int, size: int) -> bytes:
    offset = index * CHUNK
    length = min(CHUNK, size - offset)
    data = os.pread(fd, length, offset)
    if len(data) < length:  # the file shrank under us: what is missing reads as zeros
        data += bytes(length - len(data))
    return data


def write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def punch_hole(fd: int, offset: int, length: int) -> None:
    """Make [offset, offset+length) a hole (reads as zeros); writes zeros where punching is refused."""
    if length <= 0:
        return
    if _libc.fallocate(fd, _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE, offset, length) == 0:
        return
    err = ctypes.get_errno()
    if err not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
        raise OSError(err, os.strerror(err))
    write_all(fd, bytes(length), offset)
