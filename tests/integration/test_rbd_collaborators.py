"""The RBD driver's collaborators, each built alone with what it needs, against the real Ceph pair
(tests/ceph_support.py): sites, images, volume storage, group snapshots, the replicator, failover and
failback, pool capacity and the export. The driver-level suites (tests/contract, test_rbd_*.py) check
them together.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cinderblock.model.errors import DriverError, InvalidReplicationTarget
from cinderblock.volume.driver import PRIMARY_BACKEND_ID, Connector, ReplicationDevice, SnapshotRef, VolumeRef
from cinderblock.volume.drivers.rbd import ceph
from cinderblock.volume.drivers.ratio import ratio_setting
from cinderblock.volume.drivers.rbd.capacity import PoolCapacity
from cinderblock.volume.drivers.rbd.connection import ClusterConfig
from cinderblock.volume.drivers.rbd.export import RbdExport
from cinderblock.volume.drivers.rbd.failback import Failback
from cinderblock.volume.drivers.rbd.failover import Failover, FailoverSettings
from cinderblock.volume.drivers.rbd.groups import GroupSnapshots
from cinderblock.volume.drivers.rbd.images import Images, parent_of, user_snaps
from cinderblock.volume.drivers.rbd.replicator import ImageLayout, ReplicationSettings, Replicator
from cinderblock.volume.drivers.rbd.sites import Sites
from cinderblock.volume.drivers.rbd.volumes import StorageSettings, VolumeStorage
from tests.ceph_support import CephPair, ceph_pair

GiB = 1024**3
POOL = "parts"  # not mirrored: what is made here stays on site-a
CONNECTOR = Connector({"host": "compute-1"})


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> CephPair:
    pair = ceph_pair(request)
    if POOL not in pair.a.ceph("osd", "pool", "ls"):
        pair.a.ceph("osd", "pool", "create", POOL, "8", "8")
        pair.a.rbd("pool", "init", POOL)
    return pair


def primary(pair: CephPair, pool: str = POOL) -> ClusterConfig:
    return ClusterConfig("default", pair.a.name, str(pair.a.conf), "admin", None, pool)


def target(pair: CephPair) -> ReplicationDevice:
    return ReplicationDevice.parse(pair.replication_device())


@pytest.fixture
def sites(pair: CephPair) -> Iterator[Sites]:
    sites = Sites(primary(pair))
    yield sites
    for name in ceph.rbd().RBD().list(sites.ioctx()):  # what a failed test left
        VolumeStorage(Images(sites), GroupSnapshots(Images(sites)), StorageSettings()).remove_image(name)
    sites.close()


@pytest.fixture
def storage(sites: Sites) -> VolumeStorage:
    images = Images(sites)
    return VolumeStorage(images, GroupSnapshots(images), StorageSettings(max_clone_depth=2))


def volume(size_gb: int = 1, **extra: Any) -> VolumeRef:
    return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool=POOL, **extra)


def snapshot(of: VolumeRef) -> SnapshotRef:
    return SnapshotRef(id=str(uuid.uuid4()), volume=of, size_gb=of.size_gb)


# -- sites ------------------------------------------------------------------------------------------


def test_sites_resolve_targets_and_the_active_one(pair: CephPair) -> None:
    sites = Sites(primary(pair))
    sites.set_active("site-b")
    with pytest.raises(DriverError, match="not a replication_device"):
        sites.configure([])  # the service row names a target the configuration no longer has
    sites.configure([target(pair)])
    assert sites.active_config.cluster_name == "site-b" and sites.active_config.pool == POOL
    sites.set_active(PRIMARY_BACKEND_ID)
    assert sites.active_backend_id is None and sites.active_config == sites.primary
    with pytest.raises(InvalidReplicationTarget):
        sites.config_for("nowhere")
    try:
        assert sites.client() is sites.client(sites.primary)  # one long-lived client per cluster
        assert sites.client(sites.config_for("site-b")).fsid != sites.client().fsid
    finally:
        sites.close()


# -- images and volume storage ------------------------------------------------------------------------


def test_images_open_and_exists(sites: Sites) -> None:
    images = Images(sites)
    with pytest.raises(DriverError, match="does not exist"), images.open("volume-missing"):
        pass
    assert not images.exists("volume-missing")


def test_storage_clones_flatten_beyond_the_depth_and_deletes_flatten_children(storage: VolumeStorage) -> None:
    images = storage.images
    chain = [volume()]
    storage.create(chain[0], ImageLayout())
    for _ in range(3):
        chain.append(volume())
        storage.create_clone(chain[-1], chain[-2], ImageLayout())
    depths = []
    for v in chain:
        with images.open(v.name, read_only=True) as handle:
            depths.append(images.depth(handle))
    assert depths == [0, 1, 2, 0]  # the third clone would be 3 deep: flattened
    standalone = volume()
    storage.create_clone(standalone, chain[0], ImageLayout(standalone=True))  # what replication asks
    with images.open(standalone.name, read_only=True) as handle:
        assert parent_of(handle) is None
    storage.delete(chain[0])  # its clone keeps its bytes
    with images.open(chain[1].name, read_only=True) as handle:
        assert parent_of(handle) is None
    assert {v.id for v in chain[1:] + [standalone]} <= set(storage.listing().volumes)
    for v in chain[1:] + [standalone]:
        storage.delete(v)
    assert not storage.listing().volumes


def test_storage_snapshots_and_copies(storage: VolumeStorage) -> None:
    source = volume()
    storage.create(source, ImageLayout())
    snap = snapshot(source)
    assert storage.create_snapshot(snap) == f"rbd://{POOL}/{source.name}@{snap.name}"
    with pytest.raises(DriverError, match="already exists"):
        storage.create_snapshot(snap)
    bigger = volume(size_gb=2)
    storage.create_from_snapshot(bigger, snap, ImageLayout())
    with storage.images.open(bigger.name, read_only=True) as handle:
        assert handle.size() == 2 * GiB and parent_of(handle) == (source.name, snap.name)
    storage.extend(source, 3)
    storage.revert(source, snap)
    with storage.images.open(source.name, read_only=True) as handle:
        assert handle.size() == 3 * GiB  # the revert keeps the volume's size
    large = snapshot(source)
    storage.create_snapshot(large)
    with pytest.raises(DriverError, match="smaller"):
        storage.create_from_snapshot(volume(size_gb=1), large, ImageLayout())
    with pytest.raises(DriverError, match="unknown pool"):
        storage.create(VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="host@rbd#elsewhere"), ImageLayout())
    # Found by id alone (as recovery removes it), its clone flattened first.
    for gone in (snap, large):
        storage.delete_snapshot(SnapshotRef(gone.id, VolumeRef(id="", size_gb=0), 0))
    with storage.images.open(source.name, read_only=True) as handle:
        assert user_snaps(handle) == []
    with storage.images.open(bigger.name, read_only=True) as handle:
        assert parent_of(handle) is None
    listing = storage.listing()
    assert listing.volumes == {source.id: 3 * GiB, bigger.id: 2 * GiB} and listing.snapshots == frozenset()
    for v in (source, bigger):
        storage.delete(v)


# -- the consistency barrier -------------------------------------------------------------------------


def test_group_snapshots_alone(storage: VolumeStorage) -> None:
    groups = storage.groups
    group_id = str(uuid.uuid4())
    members = [volume(group_id=group_id), volume(group_id=group_id)]
    for v in members:
        storage.create(v, ImageLayout())
    snaps = [snapshot(v) for v in members]
    result = groups.create(snaps)
    for update, v in zip(result.updates, members, strict=True):
        assert (update.provider_location or "").startswith(f"rbd://{POOL}/{v.name}@cbgroup-{group_id}/cbgsnap-")
    images = storage.images
    member = groups.member(snaps[0].id)
    assert member is not None and member.group == f"cbgroup-{group_id}" and member.image == members[0].name
    assert groups.member_ids({members[0].name}) == {snaps[0].id}
    with images.open(members[0].name, read_only=True) as handle:  # recorded beside the image, not in it
        assert [k for k, _ in handle.metadata_list()] == []
    assert groups.delete_member(snaps[0].id)
    assert not groups.delete_member("not-a-member")
    with images.open(members[0].name) as handle:  # the other member still holds the group snapshot
        assert groups.member_snap(handle, member) is not None
    assert groups.member_ids({members[0].name}) == set()
    assert groups.delete_member(snaps[1].id)  # the last one: it goes
    for v in members:
        with images.open(v.name) as handle:
            assert groups.member_snap(handle, member) is None
    for v in members:
        with images.open(v.name) as handle:
            groups.release(handle, v.name)
    assert list(ceph.rbd().RBD().group_list(images.ioctx())) == []
    for v in members:
        storage.delete(v)


# -- replicator, failover, failback -------------------------------------------------------------------


@pytest.fixture
def mirrored(pair: CephPair) -> Iterator[Sites]:
    sites = Sites(primary(pair, pool="rbd"))
    sites.configure([target(pair)])
    yield sites
    sites.close()


def test_replicator_layout_and_mirroring_of_one_image(pair: CephPair, mirrored: Sites) -> None:
    images = Images(mirrored)
    replicator = Replicator(mirrored, images, ReplicationSettings(mode="snapshot", status_timeout=3))
    storage = VolumeStorage(images, GroupSnapshots(images), StorageSettings())
    plain = VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="rbd")
    journal = VolumeRef(id=str(uuid.uuid4()), size_gb=1, pool="rbd",
                        extra_specs={"replication_enabled": "<is> True", "replication:mode": "journal"})
    assert replicator.layout(plain) == ImageLayout()
    assert replicator.layout(journal) == ImageLayout(journaling=True, standalone=True)
    with pytest.raises(DriverError, match="replication:mode"):
        replicator.mode(VolumeRef(id="x", size_gb=1, extra_specs={"replication:mode": "sync"}))
    storage.create(plain, replicator.layout(plain))
    try:
        assert replicator.setup_new_image(plain) == ("disabled", None)
        status, data = replicator.enable(plain)  # a retype into a replicated type: the type's mode
        assert status == "enabled" and data == '{"mode":"snapshot"}'
        rbd = ceph.rbd()
        with images.open(plain.name, read_only=True) as handle:
            assert handle.mirror_image_get_info()["state"] == rbd.RBD_MIRROR_IMAGE_ENABLED
        replicator.sync_now(plain)
        assert replicator.disable(plain) == ("disabled", None)
        with images.open(plain.name, read_only=True) as handle:
            assert handle.mirror_image_get_info()["state"] != rbd.RBD_MIRROR_IMAGE_ENABLED
        assert all(s.target == "site-b" for per in replicator.states().values() for s in per)
        assert replicator.capabilities()["replication_targets"] == ["site-b", PRIMARY_BACKEND_ID]
    finally:
        storage.delete(plain)
        replicator.close()
    lone = Sites(primary(pair))
    assert Replicator(lone, Images(lone), ReplicationSettings()).capabilities() == {"replication_enabled": False}


def test_failover_and_failback_move_the_active_site(pair: CephPair, mirrored: Sites) -> None:
    settings = FailoverSettings(promote_timeout=1, connect_timeout=3)
    served: list[str] = []
    failover = Failover(mirrored, settings, on_active=lambda config: served.append(config.cluster_name))
    target_client = mirrored.client(mirrored.config_for("site-b"))
    assert not failover.target_ready(target_client, "volume-never-made")  # within the promote timeout
    result = failover.run([], "site-b")
    assert result.active_backend_id == "site-b" and mirrored.active_backend_id == "site-b"
    assert served == ["site-b"] and "clean failover" in result.message
    back = Failback(mirrored, settings).run([])
    assert back.active_backend_id is None and mirrored.active_backend_id is None
    assert back.message == f"failed back to {pair.a.name}"


# -- capacity and export ------------------------------------------------------------------------------


def test_capacity_of_the_pool(sites: Sites, storage: VolumeStorage) -> None:
    assert ratio_setting("auto") == "auto" and ratio_setting(None) == 20.0
    for bad in ("0.5", "lots"):
        with pytest.raises(DriverError, match="max_over_subscription_ratio"):
            ratio_setting(bad)
    v = volume(size_gb=2)
    storage.create(v, ImageLayout())
    try:
        usage = PoolCapacity(sites, storage.images, "auto").usage()
        assert usage.volumes == 1 and usage.provisioned_gb == 2.0
        assert usage.total_gb > 0 and 0 <= usage.free_gb <= usage.total_gb and usage.ratio >= 1.0
    finally:
        storage.delete(v)


def test_export_answers_the_active_clusters_monitors(pair: CephPair, sites: Sites, storage: VolumeStorage) -> None:
    export = RbdExport(sites, storage.images)
    v = volume()
    with pytest.raises(DriverError, match="does not exist"):
        export.initialize_connection(v, CONNECTOR)
    storage.create(v, ImageLayout())
    try:
        info = export.initialize_connection(v, CONNECTOR).to_dict()
        assert info["driver_volume_type"] == "rbd"
        data = info["data"]
        assert data["name"] == f"{POOL}/{v.name}" and data["ports"] == [str(pair.a.port)]
        assert data["auth_username"] == "admin" and data["secret_uuid"] == sites.client().fsid
        assert not export.export_exists(v)
    finally:
        storage.delete(v)


def test_ceph_errors_name_the_action(sites: Sites) -> None:
    with pytest.raises(DriverError, match="resizing: ImageNotFound"), ceph.ceph_errors("resizing"):
        ceph.rbd().Image(sites.ioctx(), "volume-missing")
