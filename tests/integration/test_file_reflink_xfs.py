"""FileDriver on real filesystems: reflink on an XFS loop mount, sparse copies on the plain disk.

Needs root (loop devices, mount) and xfsprogs; missing tools make these tests fail, not skip.
"""
from __future__ import annotations

import fcntl
import logging
import os
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import DriverOptions, SnapshotRef, VolumeRef
from cinderblock.volume.drivers.file import copy
from cinderblock.volume.drivers.file.driver import TMP_PREFIX, FileDriver

pytestmark = pytest.mark.root

GiB = 1024**3
MiB = 1024**2
FS_IOC_FIEMAP = 0xC020660B
FIEMAP_EXTENT_SHARED = 0x2000
DRIVER_LOGGER = "cinderblock.volume.drivers.file"


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def extent_flags(path: Path) -> list[int]:
    """fe_flags of every extent of path (FS_IOC_FIEMAP), to see shared (reflinked) extents."""
    count = 64
    header = struct.pack("=QQIIII", 0, 2**64 - 1, 1, 0, count, 0)  # FIEMAP_FLAG_SYNC
    buf = bytearray(header + bytes(56 * count))
    with open(path, "rb") as f:
        fcntl.ioctl(f.fileno(), FS_IOC_FIEMAP, buf)
    mapped = struct.unpack_from("=I", buf, 20)[0]
    return [struct.unpack_from("=I", buf, 32 + 56 * i + 40)[0] for i in range(mapped)]


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


def pattern(seed: int, size: int) -> bytes:
    return bytes((seed + i) % 251 for i in range(size))


def write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def make_driver(pool_dir: Path, state: Path) -> FileDriver:
    driver = FileDriver("file1", DriverOptions({"file_pool_paths": [f"p:{pool_dir}"]}), str(state))
    driver.do_setup()
    driver.check_for_setup_error()
    return driver


def vref(size_gb: int) -> VolumeRef:
    return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool="p")


def sref(volume: VolumeRef) -> SnapshotRef:
    return SnapshotRef(id=str(uuid.uuid4()), volume=volume, size_gb=volume.size_gb)


@pytest.fixture(scope="module")
def xfs_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("xfs")
    image, mnt = base / "xfs.img", base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(1 * GiB)
    run("mkfs.xfs", "-q", "-m", "reflink=1", str(image))
    device = run("losetup", "--find", "--show", str(image)).strip()
    try:
        run("mount", device, str(mnt))
    except BaseException:
        run("losetup", "-d", device)
        raise
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)
        # The kernel may already have auto-cleared it; detach whatever still backs our image.
        for line in run("losetup", "-j", str(image)).splitlines():
            subprocess.run(["losetup", "-d", line.split(":", 1)[0]], check=False)


# -- XFS with reflink ----------------------------------------------------------------------------

def test_xfs_pool_reports_reflink(xfs_mount: Path, tmp_path: Path) -> None:
    driver = make_driver(xfs_mount / "pool-stats", tmp_path)
    (pool,) = driver.get_stats().pools
    assert pool.capabilities["reflink"] is True
    assert 0.5 < pool.total_capacity_gb < 1.0  # the 1 GiB image, minus XFS metadata


def test_clone_file_reflinks_on_xfs(xfs_mount: Path) -> None:
    src, dst = xfs_mount / "cf-src", xfs_mount / "cf-dst"
    src.write_bytes(pattern(1, 4 * MiB))
    seen: list[int] = []
    assert copy.clone_file(str(src), str(dst), seen.append) == "reflink"
    assert seen == [100]
    assert dst.read_bytes() == src.read_bytes()
    assert all(flags & FIEMAP_EXTENT_SHARED for flags in extent_flags(dst))


def test_snapshot_clone_and_restore_use_reflink(
    xfs_mount: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    driver = make_driver(xfs_mount / "pool-a", tmp_path)
    volume = vref(1)
    path = Path(driver.create_volume(volume).provider_location or "")
    old_head, old_mid = pattern(7, 4 * MiB), pattern(9, 4 * MiB)
    write_at(path, 0, old_head)
    write_at(path, 512 * MiB, old_mid)

    with caplog.at_level(logging.INFO, logger=DRIVER_LOGGER):
        snap = sref(volume)
        snap_path = Path(driver.create_snapshot(snap).provider_location or "")
    assert "by reflink" in caplog.text
    assert extent_flags(snap_path) and all(f & FIEMAP_EXTENT_SHARED for f in extent_flags(snap_path))
    free_before = driver.get_stats().pools[0].free_capacity_gb

    write_at(path, 0, pattern(3, 4 * MiB))  # copy-on-write: the snapshot keeps the old bytes
    assert read_at(snap_path, 0, 4 * MiB) == old_head

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=DRIVER_LOGGER):
        restored = vref(2)  # larger than the snapshot (and than the whole filesystem: thin)
        restored_path = Path(driver.create_volume_from_snapshot(restored, snap).provider_location or "")
        clone = vref(1)
        clone_path = Path(driver.create_cloned_volume(clone, volume).provider_location or "")
    assert caplog.text.count("by reflink") == 2
    assert os.path.getsize(restored_path) == 2 * GiB
    assert read_at(restored_path, 0, 4 * MiB) == old_head
    assert read_at(restored_path, 512 * MiB, 4 * MiB) == old_mid
    assert read_at(restored_path, 2 * GiB - MiB, MiB) == bytes(MiB)
    assert read_at(clone_path, 0, 4 * MiB) == pattern(3, 4 * MiB)
    assert read_at(clone_path, 512 * MiB, 4 * MiB) == old_mid
    # Three more full copies of 8 MiB of data would show; shared extents cost (almost) nothing.
    assert driver.get_stats().pools[0].free_capacity_gb >= free_before - 0.01

    driver.revert_to_snapshot(volume, snap)
    assert read_at(path, 0, 4 * MiB) == old_head
    for ref in (volume, restored, clone):
        driver.delete_volume(ref)
    driver.delete_snapshot(snap)
    assert not any((xfs_mount / "pool-a").iterdir())


def test_sparse_copy_keeps_holes_on_xfs(xfs_mount: Path) -> None:
    src, dst = xfs_mount / "sp-src", xfs_mount / "sp-dst"
    with open(src, "wb") as f:
        f.truncate(512 * MiB)
    write_at(src, 100 * MiB, pattern(5, MiB))
    copy.sparse_copy(str(src), str(dst))
    assert os.path.getsize(dst) == 512 * MiB
    assert allocated(dst) <= 2 * MiB
    assert read_at(dst, 100 * MiB, MiB) == pattern(5, MiB)


# -- plain disk (ext4/overlay): sparse copies ------------------------------------------------------

def test_plain_disk_takes_sparse_copy_path(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    driver = make_driver(tmp_path / "pool", tmp_path / "state")
    (pool,) = driver.get_stats().pools
    assert pool.capabilities["reflink"] is False, "tmp_path must be on a filesystem without reflink"

    volume = vref(1)
    path = Path(driver.create_volume(volume).provider_location or "")
    assert allocated(path) == 0
    write_at(path, 0, pattern(1, MiB))
    write_at(path, 700 * MiB, pattern(2, MiB))

    seen: list[int] = []
    with caplog.at_level(logging.INFO, logger=DRIVER_LOGGER):
        snap = sref(volume)
        snap_path = Path(driver.create_snapshot(snap, seen.append).provider_location or "")
    assert "by sparse-copy" in caplog.text
    assert "100%" in caplog.text  # progress is logged
    assert seen[0] == 0 and seen[-1] == 100 and seen == sorted(set(seen))
    assert os.path.getsize(snap_path) == 1 * GiB
    assert allocated(snap_path) <= 4 * MiB, "the copy of a mostly-hole file must stay sparse"
    assert read_at(snap_path, 700 * MiB, MiB) == pattern(2, MiB)

    seen.clear()
    big = vref(3)
    big_path = Path(driver.create_volume_from_snapshot(big, snap, seen.append).provider_location or "")
    assert seen[-1] == 100
    assert os.path.getsize(big_path) == 3 * GiB
    assert allocated(big_path) <= 4 * MiB
    assert read_at(big_path, 0, MiB) == pattern(1, MiB)

    write_at(path, 0, pattern(9, MiB))
    driver.revert_to_snapshot(volume, snap)
    assert read_at(path, 0, MiB) == pattern(1, MiB)
    assert allocated(path) <= 4 * MiB


def test_empty_source_reports_full_progress(tmp_path: Path) -> None:
    src, dst = tmp_path / "empty-src", tmp_path / "empty-dst"
    with open(src, "wb") as f:
        f.truncate(GiB)
    seen: list[int] = []
    assert copy.clone_file(str(src), str(dst), seen.append) == "sparse-copy"
    assert seen[-1] == 100 and allocated(dst) == 0 and os.path.getsize(dst) == GiB


def test_failed_copy_leaves_no_file(tmp_path: Path) -> None:
    driver = make_driver(tmp_path / "pool", tmp_path / "state")
    source = vref(1)
    driver.create_volume(source)
    write_at(driver.volume_path(source), 0, pattern(4, MiB))

    def explode(percent: int) -> None:
        if percent > 0:
            raise OSError(5, "injected I/O error")

    clone = vref(1)
    with pytest.raises(DriverError, match="injected I/O error"):
        driver.create_cloned_volume(clone, source, explode)
    assert not driver.volume_exists(clone)
    assert sorted(p.name for p in (tmp_path / "pool").iterdir()) == [source.name]


def test_setup_removes_leftover_temp_files(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / f"{TMP_PREFIX}volume-x.1234abcd").write_bytes(b"half written")
    (pool / "volume-keep").write_bytes(b"")
    make_driver(pool, tmp_path / "state")
    assert sorted(p.name for p in pool.iterdir()) == ["volume-keep"]
