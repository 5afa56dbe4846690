"""Boolean spec spellings on RBD with rbd-mirror (issue 12 §1), through the API of an in-process cloud
whose backend is the real Ceph pair of tests/ceph_support.py: each spelling of
`replication_enabled` is refused with 400, or the volume's replication_status says whether its bytes
reach the secondary cluster. Kept small (one cloud, one volume per accepted spelling): Ceph is slow.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cinderblock.db import tables
from tests.api.helpers import assert_fault
from tests.ceph_support import CephPair, ceph_pair
from tests.conftest import Cloud
from tests.integration.test_rbd_replication import Site, same_on_both, wait_for

SPELLINGS = {"<is> True": True, "<is>True": None, "<is> true": True, "<is> yes": True, "True": None,
             "<is>  TRUE": True}


@pytest.fixture
def pair(request: pytest.FixtureRequest) -> CephPair:
    return ceph_pair(request)


@pytest.fixture
def sites(pair: CephPair) -> Iterator[tuple[Site, Site]]:
    a, b = Site(pair.a), Site(pair.b)
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def rbd_cloud(make_cloud: Callable[..., Cloud], pair: CephPair, tmp_path: Path) -> Cloud:
    return make_cloud(f"""
[DEFAULT]
enabled_backends = rbd-1
host = cinderblock
[rbd-1]
volume_driver = rbd
volume_backend_name = rbd-1
rbd_pool = rbd
rbd_user = admin
rbd_ceph_conf = {pair.a.conf}
rbd_cluster_name = {pair.a.name}
replication_device = {pair.replication_device()}
replication_connect_timeout = 3
""")


def test_every_spelling_is_refused_or_mirrored_as_reported(rbd_cloud: Cloud, sites: tuple[Site, Site]) -> None:
    a, b = sites
    created: list[str] = []
    for index, (spelling, expected) in enumerate(SPELLINGS.items()):
        response = rbd_cloud.request("POST", "/v3/types", json={"volume_type": {
            "name": f"rep{index}", "extra_specs": {"replication_enabled": spelling}}})
        if expected is None:
            assert_fault(response, 400, "badRequest", contains="'<is> True'")
            continue
        assert response.status_code == 200, response.text
        volume = rbd_cloud.create_volume(volume_type=f"rep{index}")
        assert (volume["status"], volume["replication_status"]) == ("available", "enabled"), spelling
        created.append(volume["id"])
    for volume_id in created:
        name = f"volume-{volume_id}"
        a.write(name, 0, os.urandom(4096))
        wait_for(f"{name}'s bytes on the secondary", lambda name=name: same_on_both(a, b, name))
    for volume_id in created:
        assert rbd_cloud.request("DELETE", f"/v3/volumes/{volume_id}").status_code == 202


def test_a_stored_malformed_spec_is_not_replicated_nor_reported(rbd_cloud: Cloud, sites: tuple[Site, Site]) -> None:
    a, _ = sites
    assert rbd_cloud.request("POST", "/v3/types", json={"volume_type": {"name": "old"}}).status_code == 200
    with rbd_cloud.running.core.db.write() as session:
        type_id = session.query(tables.VolumeType.id).filter_by(name="old").scalar()
        session.add(tables.VolumeTypeExtraSpec(volume_type_id=type_id, key="replication_enabled", value="<is>True"))
    volume = rbd_cloud.create_volume(volume_type="old")
    assert (volume["status"], volume["replication_status"]) == ("available", "disabled")
    with a.image(f"volume-{volume['id']}", read_only=True) as image:
        assert image.mirror_image_get_info()["state"] != 1  # RBD_MIRROR_IMAGE_ENABLED: not mirrored
    assert rbd_cloud.request("DELETE", f"/v3/volumes/{volume['id']}").status_code == 202
