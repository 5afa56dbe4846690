"""Driver-neutral harness for the driver contract suite.

`harness` is parametrised over every driver; reading and writing volume bytes goes through the
way a consumer would reach them (the file driver's `local` connection info) or, for the fake,
through its in-memory store.
"""
from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from cinderblock.volume.driver import (
    Connector,
    DriverOptions,
    ModelUpdate,
    SnapshotRef,
    VolumeDriver,
    VolumeRef,
)
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.drivers.fake_consistent import ConsistentFakeDriver
from cinderblock.volume.drivers.file.driver import FileDriver
from tests.contract.replicas import Replicas, make_replicas

GiB = 1024**3
R = TypeVar("R", VolumeRef, SnapshotRef)
CONNECTOR = Connector({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:test", "ip": "127.0.0.1"})


class Harness:
    """One driver plus what a test needs to create refs and look at bytes."""

    def __init__(self, driver: VolumeDriver, pool: str,
                 read: Callable[[Harness, VolumeRef, int, int], bytes],
                 write: Callable[[Harness, VolumeRef, int, bytes], None],
                 size: Callable[[Harness, VolumeRef], int],
                 read_snapshot: Callable[[Harness, SnapshotRef, int, int], bytes]) -> None:
        self.driver = driver
        self.pool = pool
        self._read, self._write, self._size, self._read_snapshot = read, write, size, read_snapshot

    # refs, as the manager would build them (with what the driver returned persisted)
    def volume_ref(self, size_gb: int = 1, **kw: Any) -> VolumeRef:
        kw.setdefault("pool", self.pool)
        return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, **kw)

    def snapshot_ref(self, volume: VolumeRef) -> SnapshotRef:
        return SnapshotRef(id=str(uuid.uuid4()), volume=volume, size_gb=volume.size_gb)

    @staticmethod
    def apply(ref: R, update: ModelUpdate) -> R:
        changes = {k: v for k, v in dataclasses.asdict(update).items() if v is not None}
        return dataclasses.replace(ref, **changes)

    def create(self, size_gb: int = 1) -> VolumeRef:
        volume = self.volume_ref(size_gb)
        return self.apply(volume, self.driver.create_volume(volume))

    def snapshot(self, volume: VolumeRef) -> SnapshotRef:
        snap = self.snapshot_ref(volume)
        return self.apply(snap, self.driver.create_snapshot(snap))

    # bytes
    def read(self, volume: VolumeRef, offset: int, length: int) -> bytes:
        return self._read(self, volume, offset, length)

    def write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        self._write(self, volume, offset, data)

    def size(self, volume: VolumeRef) -> int:
        return self._size(self, volume)

    def read_snapshot(self, snapshot: SnapshotRef, offset: int, length: int) -> bytes:
        return self._read_snapshot(self, snapshot, offset, length)


# -- file driver: bytes through the local connection's device_path ----------------------------

def _device_path(h: Harness, volume: VolumeRef) -> str:
    update = h.driver.create_export(volume, CONNECTOR)
    volume = Harness.apply(volume, update)
    info = h.driver.initialize_connection(volume, CONNECTOR)
    assert info.driver_volume_type == "local"
    return str(info.data["device_path"])


def _file_read(h: Harness, volume: VolumeRef, offset: int, length: int) -> bytes:
    with open(_device_path(h, volume), "rb") as f:
        f.seek(offset)
        return f.read(length)


def _file_write(h: Harness, volume: VolumeRef, offset: int, data: bytes) -> None:
    path = _device_path(h, volume)
    assert offset + len(data) <= os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def _file_size(h: Harness, volume: VolumeRef) -> int:
    return os.path.getsize(_device_path(h, volume))


def _file_read_snapshot(h: Harness, snapshot: SnapshotRef, offset: int, length: int) -> bytes:
    assert snapshot.provider_location, "the file driver reports the snapshot's path"
    with open(snapshot.provider_location, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _file_driver(tmp_path: Any) -> Harness:
    options = DriverOptions({
        "file_pool_paths": ["pool-a:vols-a", str(tmp_path / "vols-b")],
        "volume_backend_name": "file-backend",
        "reserved_percentage": 5,
        "max_over_subscription_ratio": "20.0",
        "target_helper": "local",
    })
    driver = FileDriver("file1", options, str(tmp_path / "state"))
    return Harness(driver, "pool-a", _file_read, _file_write, _file_size, _file_read_snapshot)


# -- fake driver: bytes through its store -------------------------------------------------------

def _fake_driver(tmp_path: Any, driver_class: type[FakeDriver] = FakeDriver) -> Harness:
    options = DriverOptions({"fake_capacity_gb": 500, "reserved_percentage": 5,
                             "max_over_subscription_ratio": "20.0"})
    driver = driver_class("fake1", options, str(tmp_path / "state"))
    return Harness(
        driver, "fake",
        read=lambda h, v, o, n: driver.read(v.id, o, n),
        write=lambda h, v, o, d: driver.write(v.id, o, d),
        size=lambda h, v: driver.size_bytes(v.id),
        read_snapshot=lambda h, s, o, n: driver.read_snapshot(s.id, o, n),
    )


# -- rbd driver: bytes through librbd on a real cluster (tests/ceph_support.py) ------------------

CONTRACT_POOL = "contract"


def _rbd_image(h: Harness, name: str, snapshot: str | None = None) -> Any:
    import rbd

    return rbd.Image(h.driver.sites.ioctx(), name, snapshot=snapshot)  # type: ignore[attr-defined]


def _rbd_read(h: Harness, volume: VolumeRef, offset: int, length: int) -> bytes:
    with _rbd_image(h, volume.name) as image:
        return bytes(image.read(offset, length))


def _rbd_write(h: Harness, volume: VolumeRef, offset: int, data: bytes) -> None:
    with _rbd_image(h, volume.name) as image:
        assert offset + len(data) <= image.size()
        image.write(data, offset)
        image.flush()


def _rbd_size(h: Harness, volume: VolumeRef) -> int:
    with _rbd_image(h, volume.name) as image:
        return int(image.size())


def _rbd_read_snapshot(h: Harness, snapshot: SnapshotRef, offset: int, length: int) -> bytes:
    with _rbd_image(h, snapshot.volume.name, snapshot.name) as image:
        return bytes(image.read(offset, length))


def _rbd_driver(tmp_path: Any, request: pytest.FixtureRequest) -> Harness:
    from cinderblock.volume.drivers.rbd.driver import RBDDriver
    from tests.ceph_support import ceph_pair

    pair = ceph_pair(request)
    if CONTRACT_POOL not in pair.a.ceph("osd", "pool", "ls"):
        pair.a.ceph("osd", "pool", "create", CONTRACT_POOL, "8", "8")
        pair.a.rbd("pool", "init", CONTRACT_POOL)
    options = pair.options(pool=CONTRACT_POOL)
    driver = RBDDriver("rbd1", DriverOptions(options), str(tmp_path / "state"))
    return Harness(driver, CONTRACT_POOL, _rbd_read, _rbd_write, _rbd_size, _rbd_read_snapshot)


def _rbd_cleanup(h: Harness) -> None:
    """Remove what the test left in the contract pool, so the next test starts from an empty pool."""
    import rbd  # type: ignore[import-not-found,unused-ignore]

    driver: Any = h.driver
    for name in rbd.RBD().list(driver.sites.ioctx()):
        driver.storage.remove_image(name)
    driver.stop()


FACTORIES: dict[str, Callable[..., Harness]] = {
    "fake": _fake_driver, "file": _file_driver, "rbd": _rbd_driver,
    # The fake declaring consistent group snapshots (the plain one exercises the manager's fallback);
    # a module picks it with `@pytest.mark.parametrize("harness", [...], indirect=True)`.
    "fake-consistent": lambda tmp_path: _fake_driver(tmp_path, ConsistentFakeDriver),
}
DRIVERS = ("fake", "file", "rbd")


@pytest.fixture(params=DRIVERS)
def harness(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Harness]:
    if request.param == "rbd":
        h = _rbd_driver(tmp_path, request)
    else:
        h = FACTORIES[request.param](tmp_path)
    h.driver.do_setup()
    h.driver.check_for_setup_error()
    yield h
    if request.param == "rbd":
        _rbd_cleanup(h)


# -- replication: one driver with one replication target (replicas.py) ---------------------------

REPLICATING = ("fake", "file", "rbd")


@pytest.fixture(params=REPLICATING)
def replicas(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Replicas]:
    harness = make_replicas(request.param, tmp_path, request)
    yield harness
    harness.close()
