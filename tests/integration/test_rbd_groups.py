"""Consistent group snapshots on RBD (Ceph RBD groups) against a real cluster.

The group-consistency check of the groups issue, on RBD: a writer keeps writing an increasing number n
to volume A, then the same n to volume B, through its own librbd client. A group snapshot taken while it
runs, restored as new volumes, must read a == b or a == b + 1 (B never ahead, A at most one ahead).
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import DriverOptions, SnapshotRef, SupportsConsistentGroupSnapshot, VolumeRef
from cinderblock.volume.drivers.rbd.connection import ClusterClient, ClusterConfig
from cinderblock.volume.drivers.rbd.driver import RBDDriver
from tests.ceph_support import ceph_pair

POOL = "groups"


@pytest.fixture
def driver(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[RBDDriver]:
    pair = ceph_pair(request)
    if POOL not in pair.a.ceph("osd", "pool", "ls"):
        pair.a.ceph("osd", "pool", "create", POOL, "8", "8")
        pair.a.rbd("pool", "init", POOL)
    drv = RBDDriver("rbd-groups", DriverOptions(pair.options(pool=POOL)), str(tmp_path))
    drv.do_setup()
    yield drv
    import rbd  # type: ignore[import-not-found]

    for name in rbd.RBD().list(drv.sites.ioctx()):
        drv.storage.remove_image(name)
    assert list(rbd.RBD().group_list(drv.sites.ioctx())) == []
    drv.stop()


def volume(group_id: str | None = None) -> VolumeRef:
    return VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool=POOL, group_id=group_id)


def snap(of: VolumeRef) -> SnapshotRef:
    return SnapshotRef(id=str(uuid.uuid4()), volume=of, size_gb=of.size_gb)


def read_seq(drv: RBDDriver, v: VolumeRef) -> int:
    import rbd  # type: ignore[import-not-found]

    with rbd.Image(drv.sites.ioctx(), v.name, read_only=True) as image:
        return int.from_bytes(bytes(image.read(0, 8)), "little")


def test_group_snapshot_is_consistent_under_writes(driver: RBDDriver, request: pytest.FixtureRequest) -> None:
    import rbd  # type: ignore[import-not-found]

    assert isinstance(driver, SupportsConsistentGroupSnapshot)
    assert driver.get_stats().pools[0].capabilities["consistent_group_snapshot_enabled"] is True
    group = str(uuid.uuid4())
    a, b = volume(group), volume(group)
    for v in (a, b):
        driver.create_volume(v)
    pair = ceph_pair(request)
    writer_client = ClusterClient(ClusterConfig("w", pair.a.name, str(pair.a.conf), "admin", None, POOL))
    stop = threading.Event()
    written: list[int] = [0]
    errors: list[BaseException] = []

    def writer() -> None:
        images = [rbd.Image(writer_client.ioctx(), v.name) for v in (a, b)]
        try:
            n = 0
            while not stop.is_set():
                n += 1
                for image in images:
                    image.write(n.to_bytes(8, "little"), 0)
                written[0] = n
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)
        finally:
            for image in images:
                image.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while written[0] < 200:  # the writer is well under way
            pass
        snaps = [snap(a), snap(b)]
        result = driver.create_group_snapshot(snaps)
        after = written[0]
    finally:
        stop.set()
        thread.join()
        writer_client.close()
    assert not errors, errors  # writers pause during the snapshot, they do not fail
    assert len(result.updates) == 2 and result.write_pause_ms >= 0
    assert written[0] > after  # and go on afterwards
    restored = [volume(), volume()]
    for new, member in zip(restored, snaps, strict=True):
        driver.create_volume_from_snapshot(new, member)
    sa, sb = (read_seq(driver, v) for v in restored)
    assert sa > 0 and sa in (sb, sb + 1), (sa, sb)

    listing = driver.list_storage()
    assert {s.id for s in snaps} <= listing.snapshots
    with pytest.raises(DriverError):
        driver.revert_to_snapshot(a, snaps[0])
    # A second group snapshot of the same group reuses its RBD group.
    again = [snap(a), snap(b)]
    driver.create_group_snapshot(again)
    for member in snaps + again:
        driver.delete_snapshot(member)
    assert not ({s.id for s in snaps + again} & driver.list_storage().snapshots)
    for v in (a, b):
        with rbd.Image(driver.sites.ioctx(), v.name, read_only=True) as image:
            assert [s for s in image.list_snaps()] == []


def test_deleting_members_drops_the_group(driver: RBDDriver) -> None:
    import rbd  # type: ignore[import-not-found]

    group = str(uuid.uuid4())
    members = [volume(group), volume(group), volume(group)]
    for v in members:
        driver.create_volume(v)
    snaps = [snap(v) for v in members]
    driver.create_group_snapshot(snaps)
    assert list(rbd.RBD().group_list(driver.sites.ioctx())) == [f"cbgroup-{group}"]
    # Deleting the volumes (snapshot rows gone first, or recovery removing by id) leaves nothing behind.
    driver.delete_snapshot(SnapshotRef(id=snaps[0].id, volume=VolumeRef(id="", size_gb=0), size_gb=0))
    for v in members:
        driver.delete_volume(v)
    assert list(rbd.RBD().group_list(driver.sites.ioctx())) == []
    assert driver.list_storage().snapshots == frozenset()
