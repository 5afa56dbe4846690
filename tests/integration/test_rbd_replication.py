"""RBD replication on two real Ceph clusters mirrored by rbd-mirror (tests/ceph_support.py).

Data goes in and out through librbd. Checked: the secondary's copy has the primary's bytes (journal
and snapshot mode), a failover with the primary alive loses nothing, a failover with the primary's
daemons killed force-promotes the last mirrored state, a failback after writes on the secondary
keeps them, and a diverged primary (written while split) is resynced from the secondary.
The test with killed daemons runs last in this module (pytest keeps file order).
"""
from __future__ import annotations

import hashlib
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cinderblock.model.errors import InvalidReplicationTarget
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, Connector, DriverOptions, VolumeRef
from cinderblock.volume.drivers.rbd.connection import ClusterConfig, ClusterClient
from cinderblock.volume.drivers.rbd.driver import RBDDriver
from tests.ceph_support import CephPair, ceph_pair

MiB = 1024**2
CONNECTOR = Connector({"host": "compute-1", "ip": "127.0.0.1"})


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> CephPair:
    return ceph_pair(request)


@pytest.fixture
def make_driver(pair: CephPair, tmp_path: Any) -> Iterator[Callable[..., RBDDriver]]:
    drivers: list[RBDDriver] = []

    def make(active: str | None = None, **extra: Any) -> RBDDriver:
        options = pair.options(replication_device=[pair.replication_device()], **extra)
        driver = RBDDriver("rbd-rep", DriverOptions(options), str(tmp_path))
        driver.set_active_backend(active)
        driver.do_setup()
        driver.check_for_setup_error()
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.stop()


class Site:
    """Direct librbd access to one cluster's pool (what a hypervisor would do)."""

    def __init__(self, cluster: Any) -> None:
        self.client = ClusterClient(ClusterConfig("t", cluster.name, str(cluster.conf), "admin", None, "rbd"),
                                    timeout=10)

    def image(self, name: str, read_only: bool = False) -> Any:
        import rbd  # type: ignore[import-not-found]

        return rbd.Image(self.client.ioctx(), name, read_only=read_only)

    def write(self, name: str, offset: int, data: bytes) -> None:
        with self.image(name) as image:
            image.write(data, offset)
            image.flush()

    def read(self, name: str, offset: int, length: int) -> bytes:
        with self.image(name, read_only=True) as image:
            return bytes(image.read(offset, length))

    def exists(self, name: str) -> bool:
        import rbd  # type: ignore[import-not-found]

        try:
            self.image(name, read_only=True).close()
            return True
        except rbd.ImageNotFound:
            return False

    def primary(self, name: str) -> bool:
        with self.image(name, read_only=True) as image:
            return bool(image.mirror_image_get_info().get("primary"))

    def digest(self, name: str, extents: list[tuple[int, int]]) -> str:
        h = hashlib.sha256()
        with self.image(name, read_only=True) as image:
            for offset, length in extents:
                h.update(bytes(image.read(offset, length)))
        return h.hexdigest()

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def sites(pair: CephPair) -> Iterator[tuple[Site, Site]]:
    a, b = Site(pair.a), Site(pair.b)
    yield a, b
    a.close()
    b.close()


def replicated(mode: str, size_gb: int = 1) -> VolumeRef:
    return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool="rbd",
                     extra_specs={"replication_enabled": "<is> True", "replication:mode": mode})


EXTENTS = [(0, 1 * MiB), (5 * MiB, 64 * 1024), (1024 * MiB - 8192, 8192)]


def fill(site: Site, name: str, tag: bytes) -> None:
    for offset, length in EXTENTS:
        site.write(name, offset, (tag * (length // len(tag) + 1))[:length])


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return
        except Exception as exc:  # noqa: BLE001 -- not there yet
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def wait_synced(driver: RBDDriver, volumes: list[VolumeRef]) -> None:
    """Until the secondary's copies finished their initial sync (a clean failover needs it)."""
    target = driver.sites.client(driver.sites.config_for("site-b"))
    for volume in volumes:
        assert driver.failover.target_ready(target, volume.name), f"{volume.name} never synced"


def same_on_both(a: Site, b: Site, name: str) -> bool:
    return b.exists(name) and a.digest(name, EXTENTS) == b.digest(name, EXTENTS)


@pytest.mark.parametrize("mode", ["journal", "snapshot"])
def test_mirrored_bytes_match_on_secondary(make_driver: Callable[..., RBDDriver], sites: tuple[Site, Site],
                                           mode: str) -> None:
    a, b = sites
    driver = make_driver()
    volume = replicated(mode)
    update = driver.create_volume(volume)
    assert update.replication_status == "enabled"
    assert mode in (update.replication_driver_data or "")
    fill(a, volume.name, os.urandom(4096))
    if mode == "snapshot":
        driver.sync_now(volume)
    wait_for("the secondary's copy to match", lambda: same_on_both(a, b, volume.name))
    assert not b.primary(volume.name)
    # Lag is read from rbd-mirror's status on the secondary.
    wait_for("a replica state", lambda: volume.id in driver.replication_states())
    state = driver.replication_states()[volume.id][0]
    assert state.target == "site-b"
    caps = driver.get_stats().capabilities
    assert caps["replication_enabled"] is True and caps["replication_targets"] == ["site-b", PRIMARY_BACKEND_ID]
    assert "replication_lag_max_seconds" in caps and "replication_bytes_pending" in caps
    driver.delete_volume(volume)
    wait_for("the secondary's copy to go", lambda: not b.exists(volume.name))


def test_non_replicated_type_is_not_mirrored(make_driver: Callable[..., RBDDriver], sites: tuple[Site, Site]) -> None:
    a, b = sites
    driver = make_driver()
    volume = VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="rbd")
    assert driver.create_volume(volume).replication_status == "disabled"
    with a.image(volume.name, read_only=True) as image:
        assert image.mirror_image_get_info()["state"] != 1
    driver.delete_volume(volume)


def test_unknown_target_changes_nothing(make_driver: Callable[..., RBDDriver]) -> None:
    driver = make_driver()
    with pytest.raises(InvalidReplicationTarget):
        driver.failover_host([], "nowhere")
    with pytest.raises(InvalidReplicationTarget):
        driver.failover_host([], PRIMARY_BACKEND_ID)  # not failed over: nothing to fail back
    assert driver.active_backend_id is None


def test_clean_failover_and_failback(make_driver: Callable[..., RBDDriver], sites: tuple[Site, Site],
                                     pair: CephPair) -> None:
    a, b = sites
    driver = make_driver()
    volumes = [replicated("journal"), replicated("snapshot"), replicated("journal")]
    for volume in volumes:
        driver.create_volume(volume)
    wait_synced(driver, volumes)
    for volume in volumes:  # written last thing before the failover, never explicitly synced
        fill(a, volume.name, volume.id.encode())
    expected = {v.id: a.digest(v.name, EXTENTS) for v in volumes}

    result = driver.failover_host(volumes, "site-b")
    assert result.active_backend_id == "site-b" and driver.active_backend_id == "site-b"
    assert all(r.ok and r.data_age_seconds == 0.0 and r.error is None for r in result.volumes), result
    assert "clean failover" in result.message
    for volume in volumes:  # nothing lost, the secondary serves them now
        assert b.primary(volume.name) and not a.primary(volume.name)
        assert b.digest(volume.name, EXTENTS) == expected[volume.id]
    info = driver.initialize_connection(volumes[0], CONNECTOR).to_dict()
    assert info["driver_volume_type"] == "rbd"
    assert info["data"]["ports"] == [str(pair.b.port)] and info["data"]["cluster_name"] == "site-b"
    assert info["data"]["name"] == f"rbd/{volumes[0].name}"

    # Written on the secondary while failed over: must survive the failback.
    for volume in volumes:
        fill(b, volume.name, b"written-on-b-" + volume.id[:4].encode())
    expected = {v.id: b.digest(v.name, EXTENTS) for v in volumes}
    # A restarted service comes back on the secondary.
    restarted = make_driver(active="site-b")
    back = restarted.failover_host(volumes, PRIMARY_BACKEND_ID)
    assert back.active_backend_id is None and all(r.ok for r in back.volumes), back
    for volume in volumes:
        assert a.primary(volume.name) and not b.primary(volume.name)
        assert a.digest(volume.name, EXTENTS) == expected[volume.id]
    assert restarted.initialize_connection(volumes[0], CONNECTOR).data["ports"] == [str(pair.a.port)]
    for volume in volumes:
        restarted.delete_volume(volume)


def test_image_that_cannot_be_demoted_is_the_only_one_forced(
        make_driver: Callable[..., RBDDriver], sites: tuple[Site, Site]) -> None:
    """The primary answers, but one image refuses its demotion (another client holds its lock): only
    that image is force-promoted and the result names it; a failback then resyncs it."""
    import rbd  # type: ignore[import-not-found]

    a, b = sites
    driver = make_driver()
    held, free = replicated("journal"), replicated("journal")
    for volume in (held, free):
        driver.create_volume(volume)
        fill(a, volume.name, b"before-" + volume.id[:4].encode())
    wait_synced(driver, [held, free])
    holder = a.image(held.name)
    holder.lock_acquire(rbd.RBD_LOCK_MODE_EXCLUSIVE)  # a client that will not give the lock up
    try:
        result = driver.failover_host([held, free], "site-b")
    finally:
        holder.lock_release()
        holder.close()
    outcome = {r.volume_id: r for r in result.volumes}
    assert all(r.ok for r in result.volumes), result
    assert outcome[free.id].error is None and outcome[free.id].data_age_seconds == 0.0
    assert "forced" in (outcome[held.id].error or "")
    assert "could not be demoted" in result.message and held.id in result.message
    assert "unreachable" not in result.message
    assert b.primary(held.name) and b.primary(free.name) and not a.primary(free.name)
    fill(b, held.name, b"on-b")
    expected = b.digest(held.name, EXTENTS)
    back = driver.failover_host([held, free], PRIMARY_BACKEND_ID)
    assert all(r.ok for r in back.volumes), back
    assert a.digest(held.name, EXTENTS) == expected
    for volume in (held, free):
        driver.delete_volume(volume)


def _wait_site_back(pair: CephPair, site: Site, name: str) -> None:
    """The restarted site serves the image again. A site brought back sometimes needs a second
    nudge (an operator would restart it again): resume the OSD, restart the daemons, reconnect."""
    try:
        wait_for("site-a to answer", lambda: site.primary(name), 60)
    except AssertionError:
        pair.a.kill("osd", signal.SIGCONT)
        pair.restart(pair.a)
        site.client.reset()
        wait_for("site-a to answer after a second restart", lambda: site.primary(name), 120)


def test_forced_failover_then_failback_resyncs_diverged_primary(
        make_driver: Callable[..., RBDDriver], sites: tuple[Site, Site], pair: CephPair) -> None:
    a, b = sites
    driver = make_driver()
    volumes = [replicated("snapshot"), replicated("journal")]
    for volume in volumes:
        driver.create_volume(volume)
        fill(a, volume.name, b"mirrored-" + volume.id[:4].encode())
        driver.sync_now(volume)
    for volume in volumes:
        wait_for("the copy on the secondary", lambda v=volume: same_on_both(a, b, v.name))
    mirrored = {v.id: a.digest(v.name, EXTENTS) for v in volumes}

    # The primary site dies: monitor, manager and mirror daemon killed, OSD frozen (memstore would
    # lose the data if it were killed; a frozen OSD behind a dead monitor is unreachable all the same).
    for daemon in ("rbd-mirror", "mgr", "mon"):
        pair.a.kill(daemon)
    pair.a.kill("osd", signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = driver.failover_host(volumes, "site-b")
        took = time.monotonic() - started
        assert result.active_backend_id == "site-b"
        assert all(r.ok for r in result.volumes), result
        assert "unreachable" in result.message and all("forced" in (r.error or "") for r in result.volumes)
        assert took < 30, took
        for volume in volumes:  # the last mirrored state is served
            assert b.primary(volume.name)
            assert b.digest(volume.name, EXTENTS) == mirrored[volume.id]
            fill(b, volume.name, b"after-failover-" + volume.id[:4].encode())
        on_b = {v.id: b.digest(v.name, EXTENTS) for v in volumes}
    finally:
        pair.a.kill("osd", signal.SIGCONT)
        pair.restart(pair.a)
    a.client.reset()

    # Split brain: the old primary still thinks it is primary; write there too (divergence).
    for volume in volumes:
        _wait_site_back(pair, a, volume.name)
        fill(a, volume.name, b"diverged-on-a")

    back = driver.failover_host(volumes, PRIMARY_BACKEND_ID)
    assert back.active_backend_id is None and all(r.ok for r in back.volumes), back
    assert "resynced" in back.message
    for volume in volumes:  # the secondary's writes won, the diverged ones are gone
        assert a.primary(volume.name) and not b.primary(volume.name)
        assert a.digest(volume.name, EXTENTS) == on_b[volume.id]
    for volume in volumes:
        driver.delete_volume(volume)
