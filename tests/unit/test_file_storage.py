"""The file driver's collaborators on their own, on real files in a tmp dir: pools and sites
(sites.py) and volume storage (storage.py), without a driver around them."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import ReplicationDevice, SnapshotRef, VolumeRef
from cinderblock.volume.drivers.file.sites import PRIMARY, SiteLayout, parse_pools
from cinderblock.volume.drivers.file.storage import GiB, TMP_PREFIX, VolumeStorage, auto_ratio
from cinderblock.volume.drivers.ratio import ratio_setting

MiB = 1024**2


def layout(tmp_path: Path, *names: str) -> SiteLayout:
    return SiteLayout(parse_pools([f"{n}:{tmp_path / n}" for n in names or ("p",)], str(tmp_path)))


def storage(tmp_path: Path, *names: str, site: str = PRIMARY) -> VolumeStorage:
    store = VolumeStorage(layout(tmp_path, *names), lambda _volume_id, _data: site)
    store.prepare()
    return store


def write(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def read(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


# -- sites ---------------------------------------------------------------------------------------

def test_pools_parse_names_and_relative_paths(tmp_path: Path) -> None:
    pools = parse_pools(["fast:/srv/ssd", "vols", "/srv/big"], str(tmp_path))
    assert [(p.name, str(p.path)) for p in pools] == [
        ("fast", "/srv/ssd"), ("vols", str(tmp_path / "vols")), ("big", "/srv/big")]
    with pytest.raises(DriverError, match="duplicate"):
        parse_pools(["a:/x", "a:/y"], str(tmp_path))
    with pytest.raises(DriverError, match="empty"):
        parse_pools([" "], str(tmp_path))


def test_layout_places_pools_on_every_site(tmp_path: Path) -> None:
    sites = layout(tmp_path, "p", "q")
    sites.configure([ReplicationDevice("b", {"path": str(tmp_path / "b")})])
    assert sites.sites() == [PRIMARY, "b"] and sites.replicated
    assert sites.pool_dir(PRIMARY, "q") == tmp_path / "q"
    assert sites.pool_dir("b", "q") == tmp_path / "b" / "q"
    assert sites.pool_name(None) == "p" and sites.pool_name("host@backend#q") == "q"
    with pytest.raises(DriverError, match="unknown pool"):
        sites.pool("r")
    assert not sites.reachable("b")  # the pool directories do not exist yet
    for _, directory in sites.site_dirs("b"):
        directory.mkdir(parents=True)
    assert sites.reachable("b")
    sites.active = "b"
    assert [p.path for p in sites.site_pools()] == [tmp_path / "b" / "p", tmp_path / "b" / "q"]


def test_layout_refuses_a_target_on_a_pool_or_shared(tmp_path: Path) -> None:
    sites = layout(tmp_path, "p")
    with pytest.raises(DriverError, match="absolute"):
        sites.configure([ReplicationDevice("b", {"path": "relative"})])
    with pytest.raises(DriverError, match="is a pool directory"):
        sites.configure([ReplicationDevice("b", {"path": str(tmp_path)})])
    with pytest.raises(DriverError, match="used by another target"):
        sites.configure([ReplicationDevice("b", {"path": str(tmp_path / "x")}),
                         ReplicationDevice("c", {"path": str(tmp_path / "x")})])
    sites.active = "c"
    with pytest.raises(DriverError, match="not a configured replication_device"):
        sites.configure([ReplicationDevice("b", {"path": str(tmp_path / "x")})])


# -- storage -------------------------------------------------------------------------------------

def test_prepare_removes_interrupted_copies(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    leftover = tmp_path / "p" / f"{TMP_PREFIX}volume-x.1234"
    leftover.write_bytes(b"half")
    store = storage(tmp_path)
    assert not leftover.exists() and store.reflink["p"] in (True, False)
    store.check()


def test_volume_lifecycle_keeps_bytes(tmp_path: Path) -> None:
    store = storage(tmp_path, "p", "q")
    volume = VolumeRef(id="v1", size_gb=1, pool="q")
    path = store.create_volume(volume)
    assert path == tmp_path / "q" / "volume-v1" and path.stat().st_size == GiB
    assert path.stat().st_blocks == 0  # sparse
    write(path, 5 * MiB, b"before")
    snapshot = SnapshotRef(id="s1", volume=volume, size_gb=1)
    snap_path = store.create_snapshot(snapshot)
    assert snap_path == tmp_path / "q" / "snapshot-s1"
    write(path, 5 * MiB, b"after!")
    clone = VolumeRef(id="v2", size_gb=2, pool="q")
    clone_path = store.clone_volume(clone, volume)
    assert clone_path.stat().st_size == 2 * GiB and read(clone_path, 5 * MiB, 6) == b"after!"
    restored = store.create_from_snapshot(VolumeRef(id="v3", size_gb=1, pool="p"), snapshot)
    assert restored == tmp_path / "p" / "volume-v3" and read(restored, 5 * MiB, 6) == b"before"
    store.revert_to_snapshot(volume, snapshot)
    assert read(path, 5 * MiB, 6) == b"before"
    store.extend_volume(volume, 3)
    assert path.stat().st_size == 3 * GiB
    with pytest.raises(DriverError, match="cannot shrink"):
        store.extend_volume(volume, 1)
    with pytest.raises(DriverError, match="smaller than its source"):
        store.clone_volume(VolumeRef(id="v4", size_gb=1, pool="p"), volume)
    with pytest.raises(DriverError, match="already exists"):
        store.create_volume(volume)
    volumes, snapshots = store.list_files()
    assert volumes == {"v1": 3 * GiB, "v2": 2 * GiB, "v3": GiB} and snapshots == {"s1"}
    store.delete_snapshot(snapshot)
    assert store.delete_volume(volume) == path and not path.exists()
    store.delete_volume(volume)  # already gone is not an error
    assert not any(p.name.startswith(TMP_PREFIX) for p in (tmp_path / "q").iterdir())


def test_volume_is_found_by_id_alone(tmp_path: Path) -> None:
    """Recovery deletes with refs that carry only the id: every pool is searched."""
    store = storage(tmp_path, "p", "q")
    store.create_volume(VolumeRef(id="v1", size_gb=1, pool="q"))
    assert store.volume_path(VolumeRef(id="v1", size_gb=0)) == tmp_path / "q" / "volume-v1"
    with pytest.raises(DriverError, match="does not exist"):
        store.existing_volume(VolumeRef(id="missing", size_gb=1))


def test_paths_resolve_on_the_site_serving_the_volume(tmp_path: Path) -> None:
    sites = layout(tmp_path, "p")
    sites.configure([ReplicationDevice("b", {"path": str(tmp_path / "b")})])
    store = VolumeStorage(sites, lambda volume_id, _data: "b" if volume_id == "moved" else PRIMARY)
    (tmp_path / "b" / "p").mkdir(parents=True)
    store.prepare()
    (tmp_path / "b" / "p" / "volume-moved").write_bytes(b"x")
    # A stale provider_location naming the primary is never used on the target.
    stale = VolumeRef(id="moved", size_gb=1, pool="p", provider_location=str(tmp_path / "p" / "volume-moved"))
    assert store.volume_path(stale) == tmp_path / "b" / "p" / "volume-moved"


def test_pool_stats_and_ratio(tmp_path: Path) -> None:
    store = storage(tmp_path)
    store.create_volume(VolumeRef(id="v1", size_gb=2, pool="p"))
    (pool,) = store.pool_stats(5, 20.0)
    assert pool.name == "p" and pool.provisioned_capacity_gb == 2.0 and pool.reserved_percentage == 5
    assert pool.capabilities["total_volumes"] == 1 and pool.max_over_subscription_ratio == 20.0
    (auto,) = store.pool_stats(0, "auto")
    assert auto.max_over_subscription_ratio == auto_ratio(2 * GiB, 0) == 20.0
    assert ratio_setting(None) == 20.0 and ratio_setting(" Auto ") == "auto"
    with pytest.raises(DriverError, match=">= 1.0"):
        ratio_setting("0.5")
    with pytest.raises(DriverError, match="number or 'auto'"):
        ratio_setting("lots")


def test_a_failed_copy_leaves_no_file(tmp_path: Path) -> None:
    store = storage(tmp_path)
    volume = VolumeRef(id="v1", size_gb=1, pool="p")
    path = store.create_volume(volume)
    with pytest.raises(DriverError, match="snapshot file .* does not exist"):
        store.create_from_snapshot(VolumeRef(id="v2", size_gb=1, pool="p"),
                                   SnapshotRef(id="gone", volume=volume, size_gb=1))
    os.truncate(path, 2 * GiB)  # the source grew past the new volume's size while copying
    with pytest.raises(DriverError, match="smaller than its source"):
        store.clone_volume(VolumeRef(id="v3", size_gb=1, pool="p"), volume)
    assert sorted(p.name for p in path.parent.iterdir()) == ["volume-v1"]
