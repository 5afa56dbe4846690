"""FileDriver replication on real files (tmp dirs on the plain disk: sparse-copy / redo-log path).

Background cycles run at an interval of an hour in most tests, so the bytes each synchronous
`replicate_now()` sends are deterministic; one test lets the worker run at a 1 s interval.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import (
    PRIMARY_BACKEND_ID,
    Connector,
    DriverOptions,
    ModelUpdate,
    SnapshotRef,
    SupportsGroupReplication,
    SupportsReplication,
    VolumeRef,
)
from cinderblock.volume.drivers.file import replica_store as store
from cinderblock.volume.drivers.file.driver import FileDriver
from cinderblock.volume.drivers.file.replication import InjectedFault, SimulatedCrash

MiB = 1024**2
GiB = 1024**3
REPLICATED = {"replication_enabled": "<is> True"}
CONNECTOR = Connector({"host": "compute-1"})


def pattern(seed: int, size: int = MiB) -> bytes:
    return bytes((seed * 7 + i) % 251 for i in range(256)) * (size // 256)


class Site:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pool = tmp / "pool"
        self.b = tmp / "site-b"
        self.c = tmp / "site-c"
        self.drivers: list[FileDriver] = []

    def options(self, interval: int = 3600, **extra: object) -> DriverOptions:
        return DriverOptions({
            "file_pool_paths": [f"p:{self.pool}"], "volume_backend_name": "file-repl", "target_helper": "local",
            "replication_device": [f"backend_id:site-b, path:{self.b}", f"backend_id:site-c, path:{self.c}"],
            "replication_interval": interval, **extra})

    def driver(self, active: str | None = None, interval: int = 3600) -> FileDriver:
        driver = FileDriver("file-repl", self.options(interval), str(self.tmp / "state"))
        driver.set_active_backend(active)
        driver.do_setup()
        driver.check_for_setup_error()
        self.drivers.append(driver)
        return driver

    def copy_path(self, site: str, volume: VolumeRef) -> Path:
        root = {"site-b": self.b, "site-c": self.c}
        return self.pool / volume.name if site == PRIMARY_BACKEND_ID else root[site] / "p" / volume.name

    def lose_primary(self) -> None:
        self.pool.rename(self.tmp / "pool.lost")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    s = Site(tmp_path)
    yield s
    for driver in s.drivers:
        driver.stop()


FIELDS = {f.name for f in dataclasses.fields(VolumeRef)}
STATUS: dict[str, str | None] = {}  # volume id -> replication_status the driver returned at creation


def apply(ref: VolumeRef, update: ModelUpdate) -> VolumeRef:
    """What the manager does: persist the update, build the next ref from the row."""
    changes = {k: v for k, v in dataclasses.asdict(update).items() if v is not None and k in FIELDS}
    return dataclasses.replace(ref, **changes)


def create(driver: FileDriver, size_gb: int = 1, replicated: bool = True, **specs: str) -> VolumeRef:
    ref = VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool="p",
                    extra_specs={**(REPLICATED if replicated else {}), **specs})
    update = driver.create_volume(ref)
    STATUS[ref.id] = update.replication_status
    return apply(ref, update)


def device(driver: FileDriver, volume: VolumeRef) -> str:
    volume = apply(volume, driver.create_export(volume, CONNECTOR))
    return str(driver.initialize_connection(volume, CONNECTOR).data["device_path"])


def write(driver: FileDriver, volume: VolumeRef, offset: int, data: bytes) -> None:
    with open(device(driver, volume), "r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path: str | Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def settle() -> None:
    time.sleep(0.06)  # past the mtime-settle window of the unchanged-volume shortcut


# -- steady state --------------------------------------------------------------------------------

def test_file_driver_declares_replication(site: Site) -> None:
    driver = site.driver()
    assert isinstance(driver, SupportsReplication) and isinstance(driver, SupportsGroupReplication)
    assert [t.backend_id for t in driver.replication_targets()] == ["site-b", "site-c"]


def test_replicated_volume_reaches_every_target_with_the_same_bytes(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    assert STATUS[volume.id] == "enabled"
    for target in ("site-b", "site-c"):  # replicated from creation on
        assert os.path.getsize(site.copy_path(target, volume)) == GiB
    write(driver, volume, 0, pattern(1))
    write(driver, volume, 300 * MiB + 4096, pattern(2, 64 * 1024))
    sent = driver.replicate_now()
    assert sent[volume.id] == {"site-b": 2 * MiB, "site-c": 2 * MiB}  # two 1 MiB chunks, holes skipped
    for target in ("site-b", "site-c"):
        path = site.copy_path(target, volume)
        assert read(path, 0, MiB) == pattern(1)
        assert read(path, 300 * MiB + 4096, 64 * 1024) == pattern(2, 64 * 1024)
        assert os.stat(path).st_blocks * 512 <= 4 * MiB  # the copy stays sparse
        manifest = store.read_manifest(path.parent, volume.id)
        assert manifest is not None and manifest["size"] == GiB and len(manifest["digests"]) == 2
    states = driver.replication_states()[volume.id]
    assert [s.target for s in states] == ["site-b", "site-c"]
    assert all(s.last_complete_at and not s.in_flight and s.bytes_pending == 0 for s in states)


def test_non_replicated_volume_is_not_copied(site: Site) -> None:
    driver = site.driver()
    volume = create(driver, replicated=False)
    assert STATUS[volume.id] is None
    assert not site.copy_path("site-b", volume).exists()
    assert volume.id not in driver.replication_states()
    assert driver.replicate_now() == {}


def test_only_changed_chunks_are_sent(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    for i in range(8):
        write(driver, volume, i * MiB, pattern(i))
    assert driver.replicate_now()[volume.id]["site-b"] == 8 * MiB
    write(driver, volume, 5 * MiB + 100, b"changed")
    assert driver.replicate_now()[volume.id] == {"site-b": MiB, "site-c": MiB}
    settle()
    assert driver.replicate_now()[volume.id] == {"site-b": 0, "site-c": 0}  # nothing changed
    # A chunk that became zeros is made a hole on the copy, without sending data.
    write(driver, volume, 2 * MiB, bytes(MiB))
    assert driver.replicate_now()[volume.id]["site-b"] == 0
    copy_path = site.copy_path("site-b", volume)
    assert read(copy_path, 2 * MiB, MiB) == bytes(MiB)
    assert read(copy_path, 5 * MiB + 100, 7) == b"changed"
    assert read(copy_path, 0, 2 * MiB) == pattern(0) + pattern(1)


def test_extend_and_clone_and_snapshot_source(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(3))
    driver.extend_volume(volume, 2)
    volume = dataclasses.replace(volume, size_gb=2)
    write(driver, volume, GiB + MiB, pattern(4))
    driver.replicate_now()
    copy_path = site.copy_path("site-c", volume)
    assert os.path.getsize(copy_path) == 2 * GiB
    assert read(copy_path, GiB + MiB, MiB) == pattern(4)
    clone = VolumeRef(id=str(uuid.uuid4()), size_gb=3, pool="p", extra_specs=REPLICATED)
    update = driver.create_cloned_volume(clone, volume)
    assert update.replication_status == "enabled"
    assert os.path.getsize(site.copy_path("site-b", clone)) == 3 * GiB
    assert read(site.copy_path("site-b", clone), GiB + MiB, MiB) == pattern(4)
    snap = SnapshotRef(id=str(uuid.uuid4()), volume=volume, size_gb=2)
    driver.create_snapshot(snap)
    restored = VolumeRef(id=str(uuid.uuid4()), size_gb=2, pool="p", extra_specs=REPLICATED)
    assert driver.create_volume_from_snapshot(restored, snap).replication_status == "enabled"
    assert read(site.copy_path("site-c", restored), 0, MiB) == pattern(3)


def test_delete_removes_the_copies_on_every_site(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(1))
    driver.replicate_now()
    driver.delete_volume(VolumeRef(id=volume.id, size_gb=0))  # recovery's id-only ref
    for target in ("site-b", "site-c"):
        assert not site.copy_path(target, volume).exists()
        assert not list((site.copy_path(target, volume).parent / ".replication").glob(f"*{volume.id}*"))
    assert volume.id not in driver.replication_states()


# -- crash safety --------------------------------------------------------------------------------

def test_fault_in_the_middle_of_a_send_keeps_the_last_complete_copy(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    old = [pattern(i) for i in range(6)]
    for i, data in enumerate(old):
        write(driver, volume, i * MiB, data)
    driver.replicate_now()
    first = store.read_manifest(site.copy_path("site-b", volume).parent, volume.id)
    assert first is not None
    for i in range(6):
        write(driver, volume, i * MiB, pattern(50 + i))
    driver.inject_fault(after_chunks=3)  # dies after 3 of the 12 chunk writes (6 per site)
    with pytest.raises(InjectedFault):
        driver.replicate_now()
    for target in ("site-b", "site-c"):
        path = site.copy_path(target, volume)
        assert read(path, 0, 6 * MiB) == b"".join(old)
        manifest = store.read_manifest(path.parent, volume.id)
        assert manifest is not None and manifest["gen"] == first["gen"] and manifest["taken_at"] == first["taken_at"]
        assert not [p for p in (path.parent / ".replication").iterdir() if not p.name.endswith(".json")]
    states = driver.replication_states()[volume.id]
    assert all(s.last_complete_at == first["taken_at"] and not s.in_flight for s in states)

    time.sleep(0.2)
    site.lose_primary()
    result = driver.failover_host([volume], "site-b")
    (outcome,) = result.volumes
    assert outcome.ok and outcome.data_age_seconds is not None and outcome.data_age_seconds >= 0.2
    assert "unreachable" in result.message
    assert device(driver, volume) == str(site.copy_path("site-b", volume))
    assert read(device(driver, volume), 0, 6 * MiB) == b"".join(old)


def test_crash_without_cleanup_is_discarded_by_the_next_start(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(1))
    driver.replicate_now()
    write(driver, volume, 0, pattern(2))
    write(driver, volume, MiB, pattern(3))
    driver.inject_fault(after_chunks=1, crash=True)
    with pytest.raises(SimulatedCrash):
        driver.replicate_now()
    meta = site.copy_path("site-b", volume).parent / ".replication"
    assert any(p.name.endswith(".stage") for p in meta.iterdir())  # the 'dead' process left staging
    driver.stop()
    again = site.driver()
    assert not any(p.name.endswith((".stage", ".prep.json")) for p in meta.iterdir())
    assert read(site.copy_path("site-b", volume), 0, MiB) == pattern(1)
    assert again.replicate_now()[volume.id]["site-b"] == 2 * MiB
    assert read(site.copy_path("site-b", volume), 0, 2 * MiB) == pattern(2) + pattern(3)


def test_committed_generation_is_rolled_forward_by_recovery(tmp_path: Path) -> None:
    """A delta (redo log) committed but not applied yet is replayed, twice without harm."""
    directory = tmp_path / "d"
    store.meta_dir(directory).mkdir(parents=True)
    base = directory / "volume-v"
    with open(base, "wb") as f:
        f.truncate(4 * MiB)
        f.write(pattern(1))
    old = {"gen": 1, "taken_at": 1.0, "size": 4 * MiB, "digests": {0: "x"}}
    store.write_json(store.manifest_path(directory, "v"), store.manifest_payload(old))
    staging = store.Staging(directory, "v", 2, store.read_manifest(directory, "v"), 4 * MiB, reflink=False)
    staging.offer(0, pattern(2), "y")
    staging.offer(3, pattern(3), "z")
    staging.prepare({"gen": 2, "taken_at": 2.0, "size": 4 * MiB, "digests": {0: "y", 3: "z"}})
    assert staging.kind == "delta"
    store.commit([staging], None, None, 2)
    assert read(base, 0, MiB) == pattern(1)  # committed, not applied: the 'crash' is here
    for _ in range(2):
        store.recover([directory])
        assert read(base, 0, MiB) == pattern(2) and read(base, 3 * MiB, MiB) == pattern(3)
    manifest = store.read_manifest(directory, "v")
    assert manifest is not None and manifest["gen"] == 2 and manifest["digests"] == {0: "y", 3: "z"}
    assert sorted(p.name for p in store.meta_dir(directory).iterdir()) == ["volume-v.json"]


def test_group_record_commits_all_members_or_none(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    store.meta_dir(directory).mkdir(parents=True)
    stagings = []
    for name in ("a", "b"):
        s = store.Staging(directory, name, 1, None, MiB, reflink=False)
        s.offer(0, pattern(9), "q")
        s.prepare({"gen": 1, "taken_at": 5.0, "size": MiB, "digests": {0: "q"}})
        stagings.append(s)
    # The record is written, the process dies before renaming the members: recovery finishes.
    record = store.meta_dir(directory) / "group-g.1.commit.json"
    store.write_json(record, {"group": "g", "gen": 1, "members": [[str(directory), "a"], [str(directory), "b"]]})
    store.recover([directory], [directory])
    assert all(store.read_manifest(directory, n)["taken_at"] == 5.0 for n in ("a", "b"))  # type: ignore[index]
    # Without a record, prepared members are dropped.
    s = store.Staging(directory, "a", 2, store.read_manifest(directory, "a"), MiB, reflink=False)
    s.offer(0, pattern(8), "r")
    s.prepare({"gen": 2, "taken_at": 6.0, "size": MiB, "digests": {0: "r"}})
    store.recover([directory], [directory])
    assert store.read_manifest(directory, "a")["gen"] == 1  # type: ignore[index]
    assert read(directory / "volume-a", 0, MiB) == pattern(9)


# -- failover ------------------------------------------------------------------------------------

def test_failover_with_a_readable_primary_loses_nothing_and_moves_every_operation(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    plain = create(driver, replicated=False)
    write(driver, volume, 0, pattern(1))
    driver.replicate_now()
    write(driver, volume, 10 * MiB, pattern(2))  # not replicated yet: the final sync sends it
    result = driver.failover_host([volume], "site-b")
    assert result.active_backend_id == "site-b"
    (outcome,) = result.volumes
    assert outcome.ok and outcome.data_age_seconds == 0.0
    assert json.loads(outcome.update.replication_driver_data or "{}") == {"active": "site-b"}
    volume = apply(volume, outcome.update)
    assert outcome.update.provider_location == str(site.copy_path("site-b", volume))
    assert device(driver, volume) == str(site.copy_path("site-b", volume))
    assert read(device(driver, volume), 10 * MiB, MiB) == pattern(2)
    # Every later operation works on site-b.
    assert driver.volume_exists(volume)
    assert not driver.volume_exists(plain)  # non-replicated volumes are not on the target
    assert set(driver.list_storage().volumes) == {volume.id}
    new = create(driver)
    assert site.copy_path("site-b", new).exists()
    assert store.read_manifest(site.copy_path("site-b", new).parent, new.id) is None  # served, not a replica
    for other in (PRIMARY_BACKEND_ID, "site-c"):  # replicated to the other sites, old primary included
        assert store.read_manifest(site.copy_path(other, new).parent, new.id) is not None
    snap = SnapshotRef(id=str(uuid.uuid4()), volume=volume, size_gb=1)
    assert Path(driver.create_snapshot(snap).provider_location or "").parent == site.b / "p"
    driver.extend_volume(volume, 2)
    assert os.path.getsize(site.copy_path("site-b", volume)) == 2 * GiB
    stats = driver.get_stats()
    assert stats.capabilities["active_replication_site"] == "site-b"
    assert [s.target for s in driver.replication_states()[volume.id]] == [PRIMARY_BACKEND_ID, "site-c"]
    driver.delete_volume(new)
    assert not site.copy_path("site-b", new).exists() and not site.copy_path("site-c", new).exists()


def test_failover_with_a_lost_primary_promotes_the_last_complete_copy(site: Site) -> None:
    driver = site.driver()
    volumes = [create(driver) for _ in range(3)]
    for i, volume in enumerate(volumes):
        write(driver, volume, 0, pattern(i))
    driver.replicate_now()
    for volume in volumes:
        write(driver, volume, 0, pattern(99))  # lost with the primary
    time.sleep(0.3)
    site.lose_primary()
    with pytest.raises(DriverError):
        driver.freeze_backend()  # the active site is gone
    result = driver.failover_host(volumes, None)  # None: the first target that is not active
    assert result.active_backend_id == "site-b"
    assert "unreachable" in result.message and PRIMARY_BACKEND_ID in result.message
    for i, (volume, outcome) in enumerate(zip(volumes, result.volumes, strict=True)):
        assert outcome.ok and outcome.volume_id == volume.id
        assert outcome.data_age_seconds is not None and 0.3 <= outcome.data_age_seconds < 30
        assert read(device(driver, apply(volume, outcome.update)), 0, MiB) == pattern(i)
    driver.freeze_backend()
    driver.thaw_backend()
    # The lost primary is not recreated; lag towards it keeps growing until it is back.
    assert not site.pool.exists()
    assert driver.get_stats().capabilities["replication_lag_max_seconds"] >= 0.3


def test_failback_sends_only_what_changed_on_the_secondary(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    for i in range(4):
        write(driver, volume, i * MiB, pattern(i))
    driver.replicate_now()
    volume = apply(volume, driver.failover_host([volume], "site-b").volumes[0].update)
    write(driver, volume, 2 * MiB, pattern(42))
    sent = driver.replicate_now()[volume.id]
    assert sent == {PRIMARY_BACKEND_ID: MiB, "site-c": MiB}  # delta to the old primary, not a full copy
    write(driver, volume, 3 * MiB, pattern(43))  # not replicated: the failback's final sync sends it
    result = driver.failover_host([volume], PRIMARY_BACKEND_ID)
    assert result.active_backend_id is None
    (outcome,) = result.volumes
    assert outcome.ok and outcome.data_age_seconds == 0.0
    volume = apply(volume, outcome.update)
    assert device(driver, volume) == str(site.pool / volume.name)
    assert read(site.pool / volume.name, 0, 4 * MiB) == pattern(0) + pattern(1) + pattern(42) + pattern(43)
    assert [s.target for s in driver.replication_states()[volume.id]] == ["site-b", "site-c"]
    assert driver.replicate_now()[volume.id] == {"site-b": 0, "site-c": MiB}  # site-c missed one chunk only


def test_failover_from_one_secondary_to_another(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(1))
    volume = apply(volume, driver.failover_host([volume], "site-b").volumes[0].update)
    write(driver, volume, MiB, pattern(2))
    result = driver.failover_host([volume], None)  # picks site-c, the target that is not active
    assert result.active_backend_id == "site-c" and result.volumes[0].ok
    volume = apply(volume, result.volumes[0].update)
    assert read(device(driver, volume), 0, 2 * MiB) == pattern(1) + pattern(2)
    assert device(driver, volume) == str(site.copy_path("site-c", volume))


def test_invalid_target_changes_nothing(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(1))
    before = sorted(str(p) for p in site.tmp.rglob("*"))
    for bad in ("nowhere", PRIMARY_BACKEND_ID):
        with pytest.raises(InvalidReplicationTarget):
            driver.failover_host([volume], bad)
    assert sorted(str(p) for p in site.tmp.rglob("*")) == before
    assert device(driver, volume) == str(site.pool / volume.name)
    driver.failover_host([volume], "site-b")
    with pytest.raises(InvalidReplicationTarget):
        driver.failover_host([volume], "site-b")  # already active


def test_one_volume_failing_does_not_stop_the_others(site: Site) -> None:
    driver = site.driver()
    good, bad = create(driver), create(driver)
    driver.replicate_now()
    site.copy_path("site-b", bad).unlink()  # its copy is gone
    site.lose_primary()
    result = driver.failover_host([good, bad], "site-b")
    outcomes = {r.volume_id: r for r in result.volumes}
    assert outcomes[good.id].ok
    assert not outcomes[bad.id].ok and "no complete copy" in (outcomes[bad.id].error or "")


def test_restart_keeps_the_registry_and_the_active_site(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    write(driver, volume, 0, pattern(1))
    volume = apply(volume, driver.failover_host([volume], "site-b").volumes[0].update)
    driver.stop()
    again = site.driver(active="site-b")
    assert again.volume_exists(volume)
    assert [s.target for s in again.replication_states()[volume.id]] == [PRIMARY_BACKEND_ID, "site-c"]
    write(again, volume, MiB, pattern(2))
    assert again.replicate_now()[volume.id] == {PRIMARY_BACKEND_ID: MiB, "site-c": 2 * MiB}
    result = again.failover_host([volume], PRIMARY_BACKEND_ID)
    assert result.volumes[0].ok
    assert read(site.pool / volume.name, 0, 2 * MiB) == pattern(1) + pattern(2)


def test_target_equal_to_a_pool_is_refused(tmp_path: Path) -> None:
    options = DriverOptions({"file_pool_paths": [f"p:{tmp_path / 'pool'}"], "target_helper": "local",
                             "replication_device": [f"backend_id:x, path:{tmp_path / 'pool'}"]})
    with pytest.raises(DriverError, match="pool directory"):
        FileDriver("f", options, str(tmp_path / "state")).do_setup()
    options = DriverOptions({"file_pool_paths": [f"p:{tmp_path / 'pool'}"], "target_helper": "local",
                             "replication_device": ["backend_id:x, host:nowhere"]})
    with pytest.raises(DriverError, match="path"):
        FileDriver("f", options, str(tmp_path / "state")).do_setup()


# -- groups --------------------------------------------------------------------------------------

def test_group_members_replicate_at_one_instant_and_fail_over_alone(site: Site) -> None:
    driver = site.driver()
    members = [create(driver) for _ in range(3)]
    loner = create(driver)
    updates = driver.enable_group_replication("g1", members)
    assert [u.replication_status for u in updates] == ["enabled"] * 3
    for i, member in enumerate(members):
        write(driver, member, 0, pattern(i))
    driver.replicate_now()
    for target in ("site-b", "site-c"):
        manifests = [store.read_manifest(site.copy_path(target, m).parent, m.id) for m in members]
        assert len({(m["gen"], m["taken_at"]) for m in manifests if m}) == 1  # one common point
        assert all(m and m["group"] == "g1" for m in manifests)
    result = driver.failover_group("g1", members, "site-b")
    assert all(r.ok and r.data_age_seconds == 0.0 for r in result.volumes)
    members = [apply(m, r.update) for m, r in zip(members, result.volumes, strict=True)]
    for i, member in enumerate(members):
        assert device(driver, member) == str(site.copy_path("site-b", member))
        assert read(device(driver, member), 0, MiB) == pattern(i)
    assert device(driver, loner) == str(site.pool / loner.name)  # the backend stays on the primary
    assert driver.get_stats().capabilities["active_replication_site"] == PRIMARY_BACKEND_ID
    write(driver, members[0], MiB, pattern(7))
    assert driver.replicate_now([members[0].id])[members[0].id] == {PRIMARY_BACKEND_ID: MiB, "site-c": MiB}
    back = driver.failover_group("g1", members, PRIMARY_BACKEND_ID)
    assert all(r.ok for r in back.volumes)
    assert read(site.pool / members[0].name, MiB, MiB) == pattern(7)
    assert [u.replication_status for u in driver.disable_group_replication("g1", members)] == ["disabled"] * 3
    assert set(driver.replication_states()) == {loner.id}


# -- stats and the background worker ---------------------------------------------------------------

def test_stats_report_replication_and_the_worker_keeps_the_lag_low(site: Site) -> None:
    driver = site.driver(interval=1)
    volume = create(driver, **{"replication:interval": "1"})
    write(driver, volume, 0, pattern(5))
    caps = driver.get_stats().capabilities
    json.dumps(caps)
    assert caps["replication_enabled"] is True and caps["replication_type"] == "async"
    assert caps["replication_targets"] == ["site-b", "site-c"] and caps["replication_count"] == 2
    assert caps["replication_interval"] == 1
    assert caps["group_replication_enabled"] is True and caps["consistent_group_replication_enabled"] is True
    assert {"replication_lag_max_seconds", "replication_bytes_pending"} <= set(caps)
    deadline = time.time() + 10
    while read(site.copy_path("site-c", volume), 0, MiB) != pattern(5):
        assert time.time() < deadline, "the worker did not replicate within 10 s"
        time.sleep(0.1)
    time.sleep(1.5)
    assert driver.get_stats().capabilities["replication_lag_max_seconds"] < 3.0


def test_no_targets_means_no_replication(tmp_path: Path) -> None:
    driver = FileDriver("f", DriverOptions({"file_pool_paths": [f"p:{tmp_path / 'pool'}"],
                                            "target_helper": "local"}), str(tmp_path / "state"))
    driver.do_setup()
    assert driver.get_stats().capabilities["replication_enabled"] is False
    ref = VolumeRef(id="v1", size_gb=1, pool="p", extra_specs=REPLICATED)
    assert driver.create_volume(ref).replication_status is None
    driver.stop()


def test_many_volumes_fail_over_in_parallel(site: Site) -> None:
    driver = site.driver()
    volumes = [create(driver) for _ in range(60)]
    started = time.monotonic()
    result = driver.failover_host(volumes, "site-c")
    assert all(r.ok for r in result.volumes) and len(result.volumes) == 60
    assert time.monotonic() - started < 10



def test_an_unreachable_target_does_not_hold_back_the_others(site: Site) -> None:
    driver = site.driver()
    volume = create(driver)
    driver.replicate_now()
    site.c.rename(site.tmp / "site-c.away")
    write(driver, volume, 0, pattern(1))
    assert driver.replicate_now()[volume.id] == {"site-b": MiB}
    states = {s.target: s for s in driver.replication_states()[volume.id]}
    assert states["site-b"].last_complete_at > states["site-c"].last_complete_at  # type: ignore[operator]
    (site.tmp / "site-c.away").rename(site.c)
    assert driver.replicate_now()[volume.id] == {"site-b": 0, "site-c": MiB}


def test_a_copy_written_behind_replications_back_gets_a_whole_new_copy(site: Site) -> None:
    """A consumer still attached to the old primary after a failover writes there: that copy no
    longer matches its manifest, so it is never patched with a delta (which would mix both)."""
    driver = site.driver()
    volume = create(driver)
    for i in range(3):
        write(driver, volume, i * MiB, pattern(i))
    driver.replicate_now()
    volume = apply(volume, driver.failover_host([volume], "site-b").volumes[0].update)
    write(driver, volume, 0, pattern(10))  # on site-b, through the driver
    time.sleep(0.02)
    with open(site.pool / volume.name, "r+b") as stray:  # the old primary, behind our back
        stray.seek(2 * MiB)
        stray.write(pattern(66))
    sent = driver.replicate_now()[volume.id]
    assert sent == {PRIMARY_BACKEND_ID: 3 * MiB, "site-c": MiB}  # whole copy there, delta elsewhere
    expected = pattern(10) + pattern(1) + pattern(2)
    assert read(site.pool / volume.name, 0, 3 * MiB) == expected
    assert read(site.copy_path("site-c", volume), 0, 3 * MiB) == expected
