"""One behavioural suite every VolumeDriver must pass (parametrised in conftest.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    BackendStats,
    ConnectionInfo,
    Connector,
    DriverOptions,
    PoolStats,
    SnapshotRef,
    VolumeRef,
)
from cinderblock.volume.drivers.fake import FakeDriver

if TYPE_CHECKING:  # the fixture's class; conftest is not imported at runtime
    from pathlib import Path

    from tests.contract.conftest import Harness

GiB = 1024**3
CONNECTOR = Connector({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:test", "ip": "127.0.0.1"})

OLD = b"old-bytes:" + bytes(range(256)) * 4
NEW = b"NEW-BYTES!" + bytes(reversed(range(256))) * 4
TAIL = 1 * GiB - 4096  # near the end of a 1 GiB volume


def _pool(stats: BackendStats, name: str) -> PoolStats:
    return next(p for p in stats.pools if p.name == name)


def test_stats_are_sane(harness: Harness) -> None:
    stats = harness.driver.get_stats()
    assert stats.volume_backend_name
    assert stats.vendor_name and stats.driver_version and stats.storage_protocol
    assert harness.pool in [p.name for p in stats.pools]
    for pool in stats.pools:
        assert pool.total_capacity_gb > 0
        assert 0 <= pool.free_capacity_gb <= pool.total_capacity_gb
        assert pool.reserved_percentage == 5
        assert pool.max_over_subscription_ratio == 20.0
        assert pool.thin_provisioning_support is True
    before = _pool(stats, harness.pool).provisioned_capacity_gb
    harness.create(3)
    after = _pool(harness.driver.get_stats(), harness.pool).provisioned_capacity_gb
    assert after == pytest.approx(before + 3)


def test_create_exists_and_reads_zeros(harness: Harness) -> None:
    volume = harness.volume_ref(1)
    assert not harness.driver.volume_exists(volume)
    volume = harness.apply(volume, harness.driver.create_volume(volume))
    assert volume.provider_location
    assert harness.driver.volume_exists(volume)
    assert harness.size(volume) == 1 * GiB
    assert harness.read(volume, 0, 4096) == bytes(4096)
    assert harness.read(volume, TAIL, 4096) == bytes(4096)


def test_create_twice_fails(harness: Harness) -> None:
    volume = harness.create(1)
    with pytest.raises(DriverError):
        harness.driver.create_volume(volume)


def test_unknown_pool_fails(harness: Harness) -> None:
    with pytest.raises(DriverError):
        harness.driver.create_volume(harness.volume_ref(1, pool="no-such-pool"))


def test_write_then_read(harness: Harness) -> None:
    volume = harness.create(1)
    harness.write(volume, 0, OLD)
    harness.write(volume, TAIL, NEW)
    assert harness.read(volume, 0, len(OLD)) == OLD
    assert harness.read(volume, TAIL, len(NEW)) == NEW


def test_snapshot_keeps_old_bytes_after_overwrite(harness: Harness) -> None:
    volume = harness.create(1)
    harness.write(volume, 0, OLD)
    seen: list[int] = []
    snap = harness.snapshot_ref(volume)
    snap = harness.apply(snap, harness.driver.create_snapshot(snap, seen.append))
    assert seen and seen[-1] == 100 and seen == sorted(seen)
    harness.write(volume, 0, NEW)
    assert harness.read(volume, 0, len(NEW)) == NEW
    assert harness.read_snapshot(snap, 0, len(OLD)) == OLD


@pytest.mark.parametrize("size_gb", [1, 2])
def test_create_from_snapshot_has_snapshot_bytes(harness: Harness, size_gb: int) -> None:
    source = harness.create(1)
    harness.write(source, 0, OLD)
    harness.write(source, TAIL, OLD)
    snap = harness.snapshot(source)
    harness.write(source, 0, NEW)
    seen: list[int] = []
    volume = harness.volume_ref(size_gb)
    volume = harness.apply(volume, harness.driver.create_volume_from_snapshot(volume, snap, seen.append))
    assert seen[-1] == 100
    assert harness.driver.volume_exists(volume)
    assert harness.size(volume) == size_gb * GiB
    assert harness.read(volume, 0, len(OLD)) == OLD
    assert harness.read(volume, TAIL, len(OLD)) == OLD
    if size_gb > 1:
        assert harness.read(volume, 1 * GiB, 4096) == bytes(4096)
        assert harness.read(volume, size_gb * GiB - 4096, 4096) == bytes(4096)
    # independent of the snapshot and the source
    harness.write(volume, 0, NEW)
    assert harness.read_snapshot(snap, 0, len(OLD)) == OLD


def test_create_from_snapshot_smaller_fails(harness: Harness) -> None:
    source = harness.create(2)
    snap = harness.snapshot(source)
    volume = harness.volume_ref(1)
    with pytest.raises(DriverError):
        harness.driver.create_volume_from_snapshot(volume, snap)
    assert not harness.driver.volume_exists(volume)


@pytest.mark.parametrize("size_gb", [1, 3])
def test_clone_has_source_bytes(harness: Harness, size_gb: int) -> None:
    source = harness.create(1)
    harness.write(source, 0, OLD)
    harness.write(source, TAIL, NEW)
    seen: list[int] = []
    clone = harness.volume_ref(size_gb)
    clone = harness.apply(clone, harness.driver.create_cloned_volume(clone, source, seen.append))
    assert seen[-1] == 100
    assert harness.size(clone) == size_gb * GiB
    assert harness.read(clone, 0, len(OLD)) == OLD
    assert harness.read(clone, TAIL, len(NEW)) == NEW
    # writes to either side stay on that side
    harness.write(clone, 0, NEW)
    assert harness.read(source, 0, len(OLD)) == OLD
    harness.write(source, TAIL, OLD)
    assert harness.read(clone, TAIL, len(NEW)) == NEW


def test_extend_keeps_data_and_grows(harness: Harness) -> None:
    volume = harness.create(1)
    harness.write(volume, TAIL, OLD)
    harness.driver.extend_volume(volume, 2)
    assert harness.size(volume) == 2 * GiB
    assert harness.read(volume, TAIL, len(OLD)) == OLD
    assert harness.read(volume, 2 * GiB - 4096, 4096) == bytes(4096)
    harness.write(volume, 2 * GiB - len(NEW), NEW)
    assert harness.read(volume, 2 * GiB - len(NEW), len(NEW)) == NEW
    with pytest.raises(DriverError):
        harness.driver.extend_volume(volume, 1)  # never shrinks


def test_revert_restores_snapshot_bytes(harness: Harness) -> None:
    volume = harness.create(1)
    harness.write(volume, 0, OLD)
    snap = harness.snapshot(volume)
    harness.write(volume, 0, NEW)
    harness.write(volume, TAIL, NEW)
    harness.driver.revert_to_snapshot(volume, snap)
    assert harness.read(volume, 0, len(OLD)) == OLD
    assert harness.read(volume, TAIL, len(NEW)) == bytes(len(NEW))
    # the snapshot itself is still there and intact
    assert harness.read_snapshot(snap, 0, len(OLD)) == OLD


def test_revert_after_extend_keeps_size(harness: Harness) -> None:
    volume = harness.create(1)
    harness.write(volume, 0, OLD)
    snap = harness.snapshot(volume)
    harness.driver.extend_volume(volume, 2)
    harness.write(volume, 0, NEW)
    harness.driver.revert_to_snapshot(volume, snap)
    assert harness.size(volume) == 2 * GiB
    assert harness.read(volume, 0, len(OLD)) == OLD


def test_delete_is_idempotent(harness: Harness) -> None:
    volume = harness.create(1)
    snap = harness.snapshot(volume)
    harness.driver.delete_snapshot(snap)
    harness.driver.delete_snapshot(snap)
    harness.driver.delete_volume(volume)
    assert not harness.driver.volume_exists(volume)
    harness.driver.delete_volume(volume)
    never = harness.volume_ref(1)
    harness.driver.delete_volume(never)
    harness.driver.delete_snapshot(SnapshotRef(id="00000000-0000-0000-0000-000000000000", volume=never, size_gb=1))


def test_volume_survives_deleting_its_snapshot_and_source(harness: Harness) -> None:
    source = harness.create(1)
    harness.write(source, 0, OLD)
    snap = harness.snapshot(source)
    clone = harness.volume_ref(1)
    clone = harness.apply(clone, harness.driver.create_volume_from_snapshot(clone, snap))
    harness.driver.delete_snapshot(snap)
    harness.driver.delete_volume(source)
    assert harness.read(clone, 0, len(OLD)) == OLD


def test_operations_on_missing_volume_fail(harness: Harness) -> None:
    ghost = harness.volume_ref(1)
    with pytest.raises(DriverError):
        harness.driver.extend_volume(ghost, 2)
    with pytest.raises(DriverError):
        harness.driver.create_snapshot(harness.snapshot_ref(ghost))
    with pytest.raises(DriverError):
        harness.driver.create_cloned_volume(harness.volume_ref(1), ghost)


def test_export_lifecycle(harness: Harness) -> None:
    volume = harness.create(1)
    volume = harness.apply(volume, harness.driver.create_export(volume, CONNECTOR))
    volume = harness.apply(volume, harness.driver.create_export(volume, CONNECTOR))  # idempotent
    info = harness.driver.initialize_connection(volume, CONNECTOR)
    assert isinstance(info, ConnectionInfo)
    assert info.driver_volume_type
    assert set(info.to_dict()) == {"driver_volume_type", "data"}
    harness.driver.terminate_connection(volume, CONNECTOR)
    harness.driver.terminate_connection(volume, None)
    harness.driver.remove_export(volume)
    assert not harness.driver.export_exists(volume)
    harness.driver.remove_export(volume)  # none left is not an error
    other = Connector({"host": "compute-2"})
    harness.apply(volume, harness.driver.create_export(volume, other))
    harness.driver.delete_volume(volume)
    assert not harness.driver.export_exists(volume)


# -- fake-only helpers the manager's tests rely on ------------------------------------------------

def test_fake_fail_next_fails_once() -> None:
    driver = FakeDriver("fake1", DriverOptions({}), "/nonexistent")
    volume = VolumeRef(id="v1", size_gb=1)
    driver.fail_next("create_volume")
    with pytest.raises(DriverError, match="injected failure in create_volume"):
        driver.create_volume(volume)
    assert not driver.volume_exists(volume)
    driver.create_volume(volume)
    driver.fail_next("extend_volume", RuntimeError("boom"), times=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            driver.extend_volume(volume, 2)
    driver.extend_volume(volume, 2)
    assert driver.size_bytes("v1") == 2 * GiB
    assert [c for c in driver.calls if c[0] == "extend_volume"] == [("extend_volume", "v1")] * 3
    with pytest.raises(ValueError):
        driver.fail_next("no_such_method")


def test_fake_store_survives_restart_when_asked(tmp_path: Path) -> None:
    options = DriverOptions({"fake_keep_across_restarts": True})
    try:
        first = FakeDriver("fake1", options, str(tmp_path))
        first.create_volume(VolumeRef(id="v1", size_gb=1))
        first.write("v1", 10, b"kept")
        second = FakeDriver("fake1", options, str(tmp_path))
        assert second.read("v1", 10, 4) == b"kept"
        assert not FakeDriver("fake1", DriverOptions({}), str(tmp_path)).volume_exists(VolumeRef(id="v1", size_gb=1))
    finally:
        FakeDriver.forget_all()


def test_list_storage_names_what_exists(harness: Harness) -> None:
    """Recovery's view of the storage: complete volumes (with sizes), snapshots; deletes show."""
    listing = harness.driver.list_storage()
    assert dict(listing.volumes) == {} and listing.snapshots == frozenset()
    volume = harness.create(2)
    snap = harness.snapshot(volume)
    listing = harness.driver.list_storage()
    assert dict(listing.volumes) == {volume.id: 2 * GiB} and listing.snapshots == {snap.id}
    # Removal by id alone, as recovery does it for storage that has no row.
    harness.driver.delete_snapshot(SnapshotRef(id=snap.id, volume=VolumeRef(id="", size_gb=0), size_gb=0))
    harness.driver.delete_volume(VolumeRef(id=volume.id, size_gb=0))
    listing = harness.driver.list_storage()
    assert dict(listing.volumes) == {} and listing.snapshots == frozenset()
