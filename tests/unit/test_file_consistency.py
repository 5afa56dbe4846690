"""The write barrier and consistent group snapshots (drivers/file/consistency.py) on their own, on
real files; the export side through the public Target API (targets/base.py), with a recording
target standing in for tgt."""
from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import Connector, DriverOptions, SnapshotRef, VolumeRef
from cinderblock.volume.drivers.file.consistency import GroupSnapshots, WriteBarrier
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout, parse_pools
from cinderblock.volume.drivers.file.storage import TMP_PREFIX, VolumeStorage
from cinderblock.volume.targets.base import UnavailableTarget, WriteHold, make_target, parse_chap
from cinderblock.volume.targets.local import LocalTarget


class RecordingHold(WriteHold):
    def __init__(self, log: list[str], volume_ids: Sequence[str]) -> None:
        self._log = log
        self._ids = set(volume_ids)
        self._held: list[str] = []

    def hold(self, volume_id: str) -> None:
        if volume_id in self._ids:
            self._log.append(f"offline {volume_id}")
            self._held.append(volume_id)

    def release(self) -> None:
        self._log.extend(f"ready {v}" for v in self._held)
        self._held = []

    @property
    def held(self) -> bool:
        return bool(self._held)


class RecordingTarget(LocalTarget):
    """A target holding an export for every volume id in `exported` (what tgt does, in a list)."""

    def __init__(self, exported: Sequence[str]) -> None:
        super().__init__({})
        self.exported = list(exported)
        self.log: list[str] = []

    def write_hold(self, volume_ids: Sequence[str]) -> WriteHold:
        return RecordingHold(self.log, [v for v in volume_ids if v in self.exported])


def volume_files(tmp_path: Path, count: int) -> list[Path]:
    paths = []
    for index in range(count):
        path = tmp_path / f"volume-v{index}"
        path.write_bytes(bytes([index + 1]) * 4096)
        paths.append(path)
    return paths


def shared_lock_blocked(path: Path) -> bool:
    """A local consumer's write: a shared flock on its own open file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_barrier_holds_local_writers_and_exports_then_releases(tmp_path: Path) -> None:
    paths = volume_files(tmp_path, 2)
    target = RecordingTarget(exported=["v1"])
    with WriteBarrier(target).hold(paths, ["v0", "v1"]) as pause:
        assert all(shared_lock_blocked(p) for p in paths)
        assert target.log == ["offline v1"]
    assert not any(shared_lock_blocked(p) for p in paths)
    assert target.log == ["offline v1", "ready v1"] and pause[0] > 0


def test_barrier_gives_up_on_a_writer_that_keeps_its_lock(tmp_path: Path) -> None:
    (path,) = volume_files(tmp_path, 1)
    target = RecordingTarget(exported=["v0"])
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        with pytest.raises(DriverError, match="could not be held"), \
                WriteBarrier(target, lock_timeout=0.05).hold([path], ["v0"]):
            pass
    finally:
        os.close(fd)
    assert target.log == ["offline v0", "ready v0"]  # never left offline


def group(tmp_path: Path, target: RecordingTarget) -> tuple[VolumeStorage, GroupSnapshots]:
    layout = SiteLayout(parse_pools([f"p:{tmp_path / 'p'}"], str(tmp_path)))
    storage = VolumeStorage(layout, lambda _id, _data: PRIMARY)
    storage.prepare()
    return storage, GroupSnapshots(storage, WriteBarrier(target))


def test_group_snapshot_clones_every_member_at_one_instant(tmp_path: Path) -> None:
    target = RecordingTarget(exported=["a", "b"])
    storage, snapshots = group(tmp_path, target)
    volumes = [VolumeRef(id=i, size_gb=1, pool="p") for i in ("a", "b")]
    for volume in volumes:
        path = storage.create_volume(volume)
        with open(path, "r+b") as f:
            f.write(volume.id.encode() * 10)
    refs = [SnapshotRef(id=f"s-{v.id}", volume=v, size_gb=1) for v in volumes]
    result = snapshots.create(refs)
    assert [u.provider_location for u in result.updates] == [str(tmp_path / "p" / f"snapshot-s-{i}") for i in "ab"]
    heads = []
    for update in result.updates:
        with open(str(update.provider_location), "rb") as f:
            heads.append(f.read(10))
    assert heads == [b"a" * 10, b"b" * 10]
    assert sorted(target.log) == ["offline a", "offline b", "ready a", "ready b"]
    assert result.write_pause_ms >= 0


def test_group_snapshot_is_all_or_nothing(tmp_path: Path) -> None:
    storage, snapshots = group(tmp_path, RecordingTarget(exported=[]))
    volumes = [VolumeRef(id=i, size_gb=1, pool="p") for i in ("a", "b")]
    for volume in volumes:
        storage.create_volume(volume)
    (tmp_path / "p" / "snapshot-s-b").write_bytes(b"taken before")
    with pytest.raises(DriverError, match="already exists"):
        snapshots.create([SnapshotRef(id=f"s-{v.id}", volume=v, size_gb=1) for v in volumes])
    with pytest.raises(DriverError, match="does not exist"):
        snapshots.create([SnapshotRef(id="s-a", volume=volumes[0], size_gb=1),
                          SnapshotRef(id="s-c", volume=VolumeRef(id="c", size_gb=1, pool="p"), size_gb=1)])
    names = sorted(p.name for p in (tmp_path / "p").iterdir())
    assert names == ["snapshot-s-b", "volume-a", "volume-b"]
    assert not any(n.startswith(TMP_PREFIX) for n in names)


# -- targets -------------------------------------------------------------------------------------

def test_local_target_is_the_path() -> None:
    target = make_target("local", {})
    info = target.initialize_connection("v", "/srv/volume-v", None, Connector({"host": "h"}))
    assert info.to_dict() == {"driver_volume_type": "local", "data": {"device_path": "/srv/volume-v"}}
    assert target.ensure_export("v", "/srv/volume-v", 1) is None and not target.export_exists("v")
    hold = target.write_hold(["v"])
    hold.hold("v")
    assert not hold.held
    hold.release()


def test_an_unknown_helper_fails_on_use() -> None:
    with pytest.raises(DriverError, match="unsupported target_helper"):
        make_target("lio", {})
    error = DriverError("unsupported target_helper 'lio'")
    target = UnavailableTarget(DriverOptions({}), error)
    for call in (lambda: target.protocol, target.check_for_setup_error, target.list_exports,
                 lambda: target.write_hold(["v"]), lambda: target.remove_export("v")):
        with pytest.raises(DriverError) as raised:
            call()
        assert raised.value is error


def test_chap_format() -> None:
    assert parse_chap("CHAP user secret") == ("user", "secret") and parse_chap(None) is None
    with pytest.raises(DriverError, match="unsupported provider_auth"):
        parse_chap("KERBEROS x y")
