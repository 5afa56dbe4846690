"""The first flows through the in-process API."""
from __future__ import annotations

from tests.conftest import Cloud


def test_create_snapshot_clone_delete(cloud: Cloud) -> None:
    volume = cloud.create_volume(1, name="v1")
    assert volume["status"] == "available"
    snap = cloud.request("POST", "/v3/snapshots", json={"snapshot": {"volume_id": volume["id"], "name": "s"}})
    assert snap.status_code == 202, snap.text
    snapshot = cloud.wait_snapshot(snap.json()["snapshot"]["id"], "available")
    assert snapshot["os-extended-snapshot-attributes:progress"] == "100%"
    clone = cloud.create_volume(2, snapshot_id=snapshot["id"])
    assert clone["status"] == "available" and clone["size"] == 2
    assert cloud.request("DELETE", f"/v3/snapshots/{snapshot['id']}").status_code == 202
    cloud.wait_gone(f"/v3/snapshots/{snapshot['id']}")
    for ident in (volume["id"], clone["id"]):
        assert cloud.request("DELETE", f"/v3/volumes/{ident}").status_code == 202
        cloud.wait_gone(f"/v3/volumes/{ident}")
