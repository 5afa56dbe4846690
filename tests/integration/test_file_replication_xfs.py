"""FileDriver replication on XFS with reflink: point-in-time images and staged copies are reflinks.

The pool and target site-b live on one XFS loop mount (reflink images of the volume, reflinked
staging of the copy); site-c lives on the plain disk (no reflink: the redo-log path). Needs root.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinderblock.volume.driver import Connector, DriverOptions, ModelUpdate, VolumeRef
from cinderblock.volume.drivers.file import replica_store as store
from cinderblock.volume.drivers.file.driver import FileDriver
from cinderblock.volume.drivers.file.replication import InjectedFault
from tests.integration.test_file_reflink_xfs import xfs_mount  # noqa: F401 -- the loop-mount fixture

pytestmark = pytest.mark.root

MiB = 1024**2
GiB = 1024**3
REPLICATED = {"replication_enabled": "<is> True"}
CONNECTOR = Connector({"host": "compute-1"})
FIELDS = {f.name for f in dataclasses.fields(VolumeRef)}


def pattern(seed: int, size: int = MiB) -> bytes:
    return bytes((seed * 13 + i) % 251 for i in range(256)) * (size // 256)


@pytest.fixture
def driver(xfs_mount: Path, tmp_path: Path) -> Iterator[FileDriver]:  # noqa: F811
    base = xfs_mount / uuid.uuid4().hex[:8]
    options = DriverOptions({
        "file_pool_paths": [f"p:{base / 'pool'}"], "target_helper": "local", "replication_interval": 3600,
        "replication_device": [f"backend_id:site-b, path:{base / 'site-b'}",
                               f"backend_id:site-c, path:{tmp_path / 'site-c'}"]})
    d = FileDriver("xfs-repl", options, str(tmp_path / "state"))
    d.do_setup()
    d.check_for_setup_error()
    d.test_base = base  # type: ignore[attr-defined]
    d.test_c = tmp_path / "site-c"  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)


def create(d: FileDriver) -> VolumeRef:
    ref = VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="p", extra_specs=REPLICATED)
    update = d.create_volume(ref)
    assert update.replication_status == "enabled"
    return apply(ref, update)


def apply(ref: VolumeRef, update: ModelUpdate) -> VolumeRef:
    return dataclasses.replace(ref, **{k: v for k, v in dataclasses.asdict(update).items()
                                       if v is not None and k in FIELDS})


def write(path: Path | str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path: Path | str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def test_reflink_images_and_staging_replicate_deltas(driver: FileDriver) -> None:
    base: Path = driver.test_base  # type: ignore[attr-defined]
    assert driver.replicator.site_reflinks("site-b", "p") is True
    assert driver.replicator.site_reflinks("site-c", "p") is False
    assert driver.storage.reflink["p"] is True
    volume = create(driver)
    path = base / "pool" / volume.name
    for i in range(16):
        write(path, i * MiB, pattern(i))
    assert driver.replicate_now()[volume.id] == {"site-b": 16 * MiB, "site-c": 16 * MiB}
    write(path, 7 * MiB, pattern(70))
    free_before = os.statvfs(base).f_bavail * os.statvfs(base).f_frsize
    assert driver.replicate_now()[volume.id] == {"site-b": MiB, "site-c": MiB}
    used = free_before - os.statvfs(base).f_bavail * os.statvfs(base).f_frsize
    assert used < 4 * MiB, "the new copy shares the unchanged extents of the previous one (reflink)"
    expected = b"".join(pattern(70) if i == 7 else pattern(i) for i in range(16))
    site_c: Path = driver.test_c  # type: ignore[attr-defined]
    for copy_path in (base / "site-b" / "p" / volume.name, site_c / "p" / volume.name):
        assert read(copy_path, 0, 16 * MiB) == expected
    assert not list((base / "pool" / ".replication").glob(".tmp-image-*"))  # images are dropped


def test_reflink_staging_interrupted_then_lost_primary_fails_over_to_the_complete_copy(driver: FileDriver) -> None:
    base: Path = driver.test_base  # type: ignore[attr-defined]
    volume = create(driver)
    path = base / "pool" / volume.name
    for i in range(4):
        write(path, i * MiB, pattern(i))
    driver.replicate_now()
    for i in range(4):
        write(path, i * MiB, pattern(40 + i))
    driver.inject_fault(after_chunks=2)
    with pytest.raises(InjectedFault):
        driver.replicate_now()
    copy_b = base / "site-b" / "p" / volume.name
    assert read(copy_b, 0, 4 * MiB) == b"".join(pattern(i) for i in range(4))
    (base / "pool").rename(base / "pool.lost")
    result = driver.failover_host([volume], "site-b")
    assert result.volumes[0].ok and (result.volumes[0].data_age_seconds or 0) > 0
    volume = apply(volume, result.volumes[0].update)
    device = driver.initialize_connection(volume, CONNECTOR).data["device_path"]
    assert device == str(copy_b)
    assert read(device, 0, 4 * MiB) == b"".join(pattern(i) for i in range(4))


def test_group_point_in_time_on_xfs(driver: FileDriver) -> None:
    base: Path = driver.test_base  # type: ignore[attr-defined]
    members = [create(driver) for _ in range(4)]
    driver.enable_group_replication("g", members)
    for i, member in enumerate(members):
        write(base / "pool" / member.name, 0, pattern(i))
    driver.replicate_now()
    for directory in (base / "site-b" / "p", driver.test_c / "p"):  # type: ignore[attr-defined]
        points = {(m["gen"], m["taken_at"]) for m in
                  (store.read_manifest(directory, member.id) for member in members) if m}
        assert len(points) == 1
    result = driver.failover_group("g", members, "site-b")
    assert all(r.ok and r.data_age_seconds == 0.0 for r in result.volumes)
