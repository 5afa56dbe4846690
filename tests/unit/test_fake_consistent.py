"""The fake's consistent variant: loaded by its alias, declares consistent group snapshots (the plain
fake does not, so the manager's one-by-one fallback stays exercised), all or nothing."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from cinderblock.config.options import DRIVER_ALIASES
from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import DriverOptions, SnapshotRef, SupportsConsistentGroupSnapshot, VolumeRef
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.drivers.fake_consistent import ConsistentFakeDriver
from cinderblock.volume.loading import load_driver_class


def driver(tmp_path: Path) -> ConsistentFakeDriver:
    fake = ConsistentFakeDriver("fake1", DriverOptions({}), str(tmp_path))
    fake.do_setup()
    return fake


def volumes(fake: FakeDriver, count: int) -> list[VolumeRef]:
    refs = [VolumeRef(id=str(uuid.uuid4()), size_gb=1, group_id="g") for _ in range(count)]
    for ref in refs:
        fake.create_volume(ref)
    return refs


def snapshots(refs: list[VolumeRef]) -> list[SnapshotRef]:
    return [SnapshotRef(id=str(uuid.uuid4()), volume=ref, size_gb=ref.size_gb) for ref in refs]


def test_alias_loads_the_variant_and_only_it_declares_the_capability(tmp_path: Path) -> None:
    assert load_driver_class(DRIVER_ALIASES["fake-consistent"]) is ConsistentFakeDriver
    assert load_driver_class(DRIVER_ALIASES["fake"]) is FakeDriver
    assert not issubclass(FakeDriver, SupportsConsistentGroupSnapshot)
    assert "consistent_group_snapshot_enabled" not in FakeDriver("f", DriverOptions({}), str(tmp_path)).get_stats(
    ).capabilities
    assert driver(tmp_path).get_stats().capabilities["consistent_group_snapshot_enabled"] is True


def test_every_member_holds_the_same_instant(tmp_path: Path) -> None:
    fake = driver(tmp_path)
    refs = volumes(fake, 2)
    for ref in refs:
        fake.write(ref.id, 0, b"one")
    snaps = snapshots(refs)
    result = fake.create_group_snapshot(snaps)
    assert [u.provider_location for u in result.updates] == [f"fake://fake/{s.name}" for s in snaps]
    for ref in refs:
        fake.write(ref.id, 0, b"two")
    assert [fake.read_snapshot(s.id, 0, 3) for s in snaps] == [b"one", b"one"]


def test_all_or_nothing(tmp_path: Path) -> None:
    fake = driver(tmp_path)
    refs = volumes(fake, 2)
    ghost = VolumeRef(id=str(uuid.uuid4()), size_gb=1, group_id="g")
    with pytest.raises(DriverError):
        fake.create_group_snapshot(snapshots([*refs, ghost]))
    assert not fake.list_storage().snapshots
    fake.fail_next("create_group_snapshot")
    with pytest.raises(DriverError):
        fake.create_group_snapshot(snapshots(refs))
    assert not fake.list_storage().snapshots
    with pytest.raises(ValueError):  # the plain fake has no such method to fail
        FakeDriver("f", DriverOptions({}), str(tmp_path)).fail_next("create_group_snapshot")
