"""Driver-neutral harness for the replication contract suites.

`Replicas` is one driver configured with one replication target, plus what a test needs besides the
driver: write and read a volume's bytes where a consumer would (the site that serves it, found
through initialize_connection), read the copy another site holds, run one replication cycle, and
make the target unreachable. Each driver reaches its sites its own way (the fake's store, the file
driver's directories, librbd on the two Ceph clusters of tests/ceph_support.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    Connector,
    DriverOptions,
    ModelUpdate,
    SupportsReplication,
    VolumeDriver,
    VolumeRef,
)
from cinderblock.volume.drivers.fake import FakeDriver
from cinderblock.volume.drivers.file.driver import FileDriver

TARGET = "site-b"
CONNECTOR = Connector({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:test", "ip": "127.0.0.1"})
FIELDS = {f.name for f in dataclasses.fields(VolumeRef)}


def apply(ref: VolumeRef, update: ModelUpdate) -> VolumeRef:
    """What the manager does: persist the update, build the next ref from the row."""
    changes = {k: v for k, v in dataclasses.asdict(update).items() if v is not None and k in FIELDS}
    return dataclasses.replace(ref, **changes)


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Until check() is true; an error counts as not yet (a copy rbd-mirror has not created yet)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            if check():
                return
        except Exception as error:  # noqa: BLE001 -- not there yet
            last = error
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last!r})")
        time.sleep(0.25)


class Replicas:
    """One replicating driver and its sites ("default" and TARGET)."""

    kind = ""
    pool = ""
    # Extra specs of the replicated volume type besides replication_enabled.
    specs: ClassVar[dict[str, str]] = {}
    # Seconds a replication cycle may take to reach the target (asynchronous copies: RBD).
    sync_timeout = 0.0

    def __init__(self, driver: VolumeDriver) -> None:
        assert isinstance(driver, SupportsReplication), f"{type(driver).__name__} does not replicate"
        self.driver = driver
        self.replication: SupportsReplication = driver
        self.volumes: list[VolumeRef] = []
        # volume id -> offset -> the bytes last written there (what every up-to-date copy holds)
        self.written: dict[str, dict[int, bytes]] = {}

    # refs, as the manager builds them for a volume of a replicated type
    def volume_ref(self, size_gb: int = 1, group_id: str | None = None) -> VolumeRef:
        return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool=self.pool, group_id=group_id,
                         extra_specs={"replication_enabled": "<is> True", **self.specs})

    def create(self, size_gb: int = 1, group_id: str | None = None) -> tuple[VolumeRef, ModelUpdate]:
        ref = self.volume_ref(size_gb, group_id)
        update = self.driver.create_volume(ref)
        self.volumes.append(ref)
        return apply(ref, update), update

    def follow(self, volumes: Sequence[VolumeRef], updates: Sequence[ModelUpdate]) -> list[VolumeRef]:
        return [apply(v, u) for v, u in zip(volumes, updates, strict=True)]

    # bytes
    def write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        self._write(volume, offset, data)
        self.written.setdefault(volume.id, {})[offset] = data

    def read(self, volume: VolumeRef, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def read_copy(self, site: str, volume: VolumeRef, offset: int, length: int) -> bytes:
        """The bytes of volume's copy on site (a site that does not serve it)."""
        raise NotImplementedError

    def holds_every_write(self, site: str, volume: VolumeRef) -> bool:
        return all(self.read_copy(site, volume, offset, len(data)) == data
                   for offset, data in self.written.get(volume.id, {}).items())

    def sync(self, volumes: Sequence[VolumeRef], site: str = TARGET) -> None:
        """One replication cycle of volumes, then (asynchronous drivers) until site's copies are complete."""
        self.cycle(volumes)
        if self.sync_timeout:
            wait_for(f"the copies on {site}", lambda: all(self.holds_every_write(site, v) for v in volumes),
                     self.sync_timeout)

    @contextlib.contextmanager
    def target_unreachable(self) -> Iterator[None]:
        """Inside the block the target cannot be reached."""
        raise NotImplementedError
        yield

    def fail_next_failover_mid_way(self) -> None:
        """The next failover fails part way, through the driver's own failure hook."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        raise NotImplementedError

    def cycle(self, volumes: Sequence[VolumeRef]) -> None:
        raise NotImplementedError


# -- fake: every site is a dict of blobs in its store ----------------------------------------------

class FakeReplicas(Replicas):
    kind = "fake"
    pool = "fake"

    def __init__(self, tmp_path: Path) -> None:
        options = DriverOptions({"replication_device": [f"backend_id:{TARGET}"]})
        self.fake = FakeDriver("fake-rep", options, str(tmp_path / "state"))
        super().__init__(self.fake)

    def _write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        self.fake.write(volume.id, offset, data)

    def read(self, volume: VolumeRef, offset: int, length: int) -> bytes:
        return self.fake.read(volume.id, offset, length)

    def read_copy(self, site: str, volume: VolumeRef, offset: int, length: int) -> bytes:
        store = self.fake.store
        if site == (store.active or PRIMARY_BACKEND_ID):  # `volumes` is what the active site holds
            return self.fake.read(volume.id, offset, length)
        return store.replicas[site][volume.id].read(offset, length)

    def cycle(self, volumes: Sequence[VolumeRef]) -> None:
        self.fake.sync_replicas()

    @contextlib.contextmanager
    def target_unreachable(self) -> Iterator[None]:
        # The fake has no sites to lose: its failure hook stands in (the next failover fails).
        self.fake.fail_next("failover_host")
        self.fake.fail_next("failover_group")
        try:
            yield
        finally:
            self.fake._failures.clear()

    def fail_next_failover_mid_way(self) -> None:
        self.fake.fail_next("failover_host")


# -- file: sites are directories; consumers write the path initialize_connection gives -------------

class FileReplicas(Replicas):
    kind = "file"
    pool = "pool-a"

    def __init__(self, tmp_path: Path) -> None:
        self.primary_dir = tmp_path / "vols-a"
        self.target_root = tmp_path / TARGET
        options = DriverOptions({
            "file_pool_paths": [f"pool-a:{self.primary_dir}"], "volume_backend_name": "file-rep",
            "target_helper": "local", "replication_interval": 3600,
            "replication_device": [f"backend_id:{TARGET}, path:{self.target_root}"]})
        self.file = FileDriver("file-rep", options, str(tmp_path / "state"))
        super().__init__(self.file)

    def device(self, volume: VolumeRef) -> str:
        volume = apply(volume, self.file.create_export(volume, CONNECTOR))
        info = self.file.initialize_connection(volume, CONNECTOR)
        return str(info.data["device_path"])

    def _write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        fd = os.open(self.device(volume), os.O_WRONLY)
        try:  # the shared flock local consumers take so that the write barrier can hold them
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)

    def read(self, volume: VolumeRef, offset: int, length: int) -> bytes:
        with open(self.device(volume), "rb") as f:
            f.seek(offset)
            return f.read(length)

    def read_copy(self, site: str, volume: VolumeRef, offset: int, length: int) -> bytes:
        root = self.primary_dir if site == PRIMARY_BACKEND_ID else self.target_root / self.pool
        with open(root / volume.name, "rb") as f:
            f.seek(offset)
            return f.read(length)

    def cycle(self, volumes: Sequence[VolumeRef]) -> None:
        self.file.replicate_now([v.id for v in volumes])

    @contextlib.contextmanager
    def target_unreachable(self) -> Iterator[None]:
        away = self.target_root.with_name(TARGET + ".away")
        self.target_root.rename(away)
        try:
            yield
        finally:
            away.rename(self.target_root)

    def fail_next_failover_mid_way(self) -> None:
        self.file.inject_fault(after_chunks=1)  # the final sync breaks after its first chunk

    def close(self) -> None:
        self.file.stop()


# -- rbd: two clusters mirrored by rbd-mirror; consumers use librbd on the cluster connection info names

class RBDReplicas(Replicas):
    kind = "rbd"
    pool = "rbd"  # the pool ceph_cluster peers for rbd-mirror
    # Snapshot mode: sync_now (a mirror snapshot) is the driver's one-cycle hook.
    specs: ClassVar[dict[str, str]] = {"replication:mode": "snapshot"}
    sync_timeout = 90.0

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        from cinderblock.volume.drivers.rbd.connection import (
            ClusterClient,
            ClusterConfig,
        )
        from cinderblock.volume.drivers.rbd.driver import RBDDriver
        from tests.ceph_support import ceph_pair

        self.pair = ceph_pair(request)
        assert self.pair.b.name == TARGET
        options = self.pair.options(pool=self.pool, replication_device=[self.pair.replication_device()])
        self.rbd_driver = RBDDriver("rbd-rep", DriverOptions(options), str(tmp_path / "state"))
        self.clients = {site: ClusterClient(ClusterConfig(site, cluster.name, str(cluster.conf), "admin", None,
                                                          self.pool), timeout=10)
                        for site, cluster in ((PRIMARY_BACKEND_ID, self.pair.a), (TARGET, self.pair.b))}
        super().__init__(self.rbd_driver)

    def _image(self, site: str, volume: VolumeRef, read_only: bool) -> Any:
        import rbd

        return rbd.Image(self.clients[site].ioctx(), volume.name, read_only=read_only)

    def serving(self, volume: VolumeRef) -> str:
        """The site a consumer connects to: the cluster initialize_connection names."""
        cluster = self.rbd_driver.initialize_connection(volume, CONNECTOR).data["cluster_name"]
        return PRIMARY_BACKEND_ID if cluster == self.pair.a.name else TARGET

    def _write(self, volume: VolumeRef, offset: int, data: bytes) -> None:
        with self._image(self.serving(volume), volume, read_only=False) as image:
            image.write(data, offset)
            image.flush()

    def read(self, volume: VolumeRef, offset: int, length: int) -> bytes:
        return self.read_copy(self.serving(volume), volume, offset, length)

    def read_copy(self, site: str, volume: VolumeRef, offset: int, length: int) -> bytes:
        with self._image(site, volume, read_only=True) as image:
            return bytes(image.read(offset, length))

    def cycle(self, volumes: Sequence[VolumeRef]) -> None:
        for volume in volumes:
            self.rbd_driver.sync_now(volume)

    @contextlib.contextmanager
    def target_unreachable(self) -> Iterator[None]:
        # Frozen, not killed: the memstore OSD would lose the cluster's images.
        frozen = ("mon", "osd", "rbd-mirror")
        for daemon in frozen:
            self.pair.b.kill(daemon, signal.SIGSTOP)
        try:
            yield
        finally:
            for daemon in frozen:
                self.pair.b.kill(daemon, signal.SIGCONT)
            self.clients[TARGET].reset()
            wait_for("site-b to answer again", lambda: bool(self.pair.b.ceph("mon", "stat", timeout=10)), 60)

    def close(self) -> None:
        for volume in self.volumes:
            with contextlib.suppress(Exception):  # best effort: whatever the test left behind
                self.rbd_driver.delete_volume(volume)
        self.rbd_driver.stop()
        for client in self.clients.values():
            client.close()


def make_replicas(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Replicas:
    replicas: Replicas
    if kind == "rbd":
        replicas = RBDReplicas(tmp_path, request)
    elif kind == "file":
        replicas = FileReplicas(tmp_path)
    else:
        replicas = FakeReplicas(tmp_path)
    replicas.driver.do_setup()
    replicas.driver.check_for_setup_error()
    return replicas
