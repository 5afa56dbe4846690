"""The consistent group snapshot contract (SupportsConsistentGroupSnapshot), over fake, file and RBD.

What it promises: the driver declares the capability and reports `consistent_group_snapshot_enabled`;
a group snapshot of volumes written concurrently holds one instant of all of them (writers are held,
not failed, and go on afterwards); it is all or nothing (a member that cannot be snapshotted leaves no
snapshot behind and the group can be snapshotted again); its member snapshots are ordinary snapshots
afterwards (listed, restorable, deletable).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    SnapshotRef,
    SupportsConsistentGroupSnapshot,
    VolumeRef,
)
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.drivers.file.driver import FileDriver
from tests.contract.writers import SequenceWriter, decode, encode, one_instant

if TYPE_CHECKING:
    from tests.contract.conftest import Harness

# The plain fake takes group snapshots one by one (the manager's fallback): its consistent variant here.
pytestmark = pytest.mark.parametrize("harness", ["fake-consistent", "file", "rbd"], indirect=True)

MiB = 1024**2
AT_SEQ = 5 * MiB
OLD = b"before-the-group-snapshot:" + bytes(range(256)) * 4


def capable(harness: Harness) -> SupportsConsistentGroupSnapshot:
    driver = harness.driver
    assert isinstance(driver, SupportsConsistentGroupSnapshot), (
        f"{type(driver).__name__} does not implement SupportsConsistentGroupSnapshot")
    return driver


def members(harness: Harness, count: int) -> list[VolumeRef]:
    group_id = str(uuid.uuid4())
    out = []
    for _ in range(count):
        ref = harness.volume_ref(1, group_id=group_id)
        out.append(harness.apply(ref, harness.driver.create_volume(ref)))
    return out


def take(harness: Harness, volumes: Sequence[VolumeRef]) -> list[SnapshotRef]:
    snaps = [harness.snapshot_ref(v) for v in volumes]
    result = capable(harness).create_group_snapshot(snaps)
    assert len(result.updates) == len(snaps) and result.write_pause_ms >= 0, result
    return [harness.apply(s, u) for s, u in zip(snaps, result.updates, strict=True)]


def restored_seq(harness: Harness, snapshot: SnapshotRef) -> int:
    """The number the member snapshot holds, read from a volume created from it (as a user would)."""
    volume = harness.volume_ref(1)
    volume = harness.apply(volume, harness.driver.create_volume_from_snapshot(volume, snapshot))
    return decode(harness.read(volume, AT_SEQ, 8))


@contextlib.contextmanager
def sequence_writes(harness: Harness, volumes: Sequence[VolumeRef]) -> Iterator[Callable[[int, int], None]]:
    """How a consumer writes the members concurrently: long-lived handles on the data path."""
    driver: Any = harness.driver
    if isinstance(driver, FakeDriver):
        yield lambda index, n: driver.write(volumes[index].id, AT_SEQ, encode(n))
    elif isinstance(driver, FileDriver):
        from tests.contract.conftest import _device_path

        fds = [os.open(_device_path(harness, v), os.O_WRONLY) for v in volumes]

        def write_file(index: int, n: int) -> None:
            fcntl.flock(fds[index], fcntl.LOCK_SH)  # the local consumers' side of the write barrier
            try:
                os.pwrite(fds[index], encode(n), AT_SEQ)
            finally:
                fcntl.flock(fds[index], fcntl.LOCK_UN)

        try:
            yield write_file
        finally:
            for fd in fds:
                os.close(fd)
    else:  # RBD: a client of its own, like a hypervisor's
        import rbd

        from cinderblock.volume.drivers.rbd.connection import ClusterClient

        client = ClusterClient(driver.sites.primary)
        images = [rbd.Image(client.ioctx(), v.name) for v in volumes]
        try:
            yield lambda index, n: images[index].write(encode(n), AT_SEQ)
        finally:
            for image in images:
                image.close()
            client.close()


def test_declares_consistent_group_snapshots(harness: Harness) -> None:
    capable(harness)
    stats = harness.driver.get_stats()
    reported = [dict(stats.capabilities, **p.capabilities).get("consistent_group_snapshot_enabled")
                for p in stats.pools]
    assert all(value is True for value in reported), reported


def test_group_snapshot_under_concurrent_writes_holds_one_instant(harness: Harness) -> None:
    capable(harness)
    volumes = members(harness, 3)
    taken: list[list[SnapshotRef]] = []
    with sequence_writes(harness, volumes) as write, SequenceWriter(len(volumes), write) as writer:
        for _ in range(3):
            writer.wait_past(writer.done + 50)
            taken.append(take(harness, volumes))
            writer.wait_past(writer.done)  # held, not failed: the writer goes on
    assert not writer.errors, writer.errors
    seen = [[restored_seq(harness, s) for s in snaps] for snaps in taken]
    for values in seen:
        assert values[0] > 0 and one_instant(values), f"member snapshots are not one instant: {seen}"


def test_group_snapshot_members_are_ordinary_snapshots(harness: Harness) -> None:
    capable(harness)
    volumes = members(harness, 2)
    for volume in volumes:
        harness.write(volume, 0, OLD)
    snaps = take(harness, volumes)
    for volume in volumes:
        harness.write(volume, 0, bytes(len(OLD)))
    assert {s.id for s in snaps} <= harness.driver.list_storage().snapshots
    for snap in snaps:
        restored = harness.volume_ref(1)
        restored = harness.apply(restored, harness.driver.create_volume_from_snapshot(restored, snap))
        assert harness.read(restored, 0, len(OLD)) == OLD
    for snap in snaps:
        harness.driver.delete_snapshot(snap)
    assert not {s.id for s in snaps} & harness.driver.list_storage().snapshots
    for volume in volumes:
        assert harness.read(volume, 0, len(OLD)) == bytes(len(OLD))


def test_group_snapshot_is_all_or_nothing(harness: Harness) -> None:
    capable(harness)
    volumes = members(harness, 2)
    ghost = harness.volume_ref(1, group_id=volumes[0].group_id)  # never created
    for volume in volumes:
        harness.write(volume, 0, OLD)
    before = harness.driver.list_storage().snapshots
    with pytest.raises(DriverError):
        capable(harness).create_group_snapshot([harness.snapshot_ref(v) for v in [*volumes, ghost]])
    assert harness.driver.list_storage().snapshots == before
    for volume in volumes:  # untouched, and the group can be snapshotted again
        assert harness.read(volume, 0, len(OLD)) == OLD
    snaps = take(harness, volumes)
    assert {s.id for s in snaps} <= harness.driver.list_storage().snapshots
