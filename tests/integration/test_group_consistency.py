"""Group snapshots are consistent: real data, a real writer, volumes created back from the snapshot.

A writer process keeps writing an increasing sequence number n to volume A, then the same n to volume
B of one group (each write under a shared flock, the local-path write barrier the file driver honours;
see drivers/file/consistency.py). A group snapshot taken while it runs, restored as a new group
(create-from-src), must read back a == b or a == b + 1: B never ahead of A, A at most one ahead.
The one-by-one fallback (a driver without the capability) is shown to break exactly this check.
"""
from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cinderblock.volume.workflows import groups as workflow
from tests.api.helpers import consistency
from tests.conftest import Cloud

WRITER = r"""
import fcntl, os, struct, sys
a, b = (os.open(p, os.O_RDWR) for p in sys.argv[1:3])
stop = sys.argv[3]
n = 0
while not os.path.exists(stop):
    for _ in range(100):
        n += 1
        for fd in (a, b):
            fcntl.flock(fd, fcntl.LOCK_SH)
            os.pwrite(fd, struct.pack("<Q", n), 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
print(n)
"""
CONNECTOR = {"connector": {"host": "test", "initiator": "iqn.1993-08.org.debian:01:test"}}


def ok(response: Any, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def device_path(cloud: Cloud, volume_id: str) -> str:
    info = ok(cloud.request("POST", f"/v3/volumes/{volume_id}/action",
                            json={"os-initialize_connection": CONNECTOR}), 200)["connection_info"]
    assert info["driver_volume_type"] == "local"
    return str(info["data"]["device_path"])


def read_seq(path: str) -> int:
    with open(path, "rb") as handle:
        return int(struct.unpack("<Q", handle.read(8))[0])


def wait(cloud: Cloud, path: str, key: str, status: str) -> dict[str, Any]:
    return cloud._wait(path, key, (status,), 60.0)


@pytest.fixture
def pair(cloud: Cloud) -> tuple[Cloud, str, str, str]:
    """A consistent-snapshot group with two members A and B (A created first)."""
    ok(cloud.request("POST", "/v3/types", json={"volume_type": {"name": "t1"}}), 200)
    ok(cloud.request("POST", "/v3/group_types", json={"group_type": {
        "name": "cg", "group_specs": {"consistent_group_snapshot_enabled": "<is> True"}}}))
    group = ok(cloud.request("POST", "/v3/groups", json={"group": {"group_type": "cg", "volume_types": ["t1"]}}))
    group_id = group["group"]["id"]
    wait(cloud, f"/v3/groups/{group_id}", "group", "available")
    a = cloud.create_volume(1, volume_type="t1", group_id=group_id, name="A")
    b = cloud.create_volume(1, volume_type="t1", group_id=group_id, name="B")
    return cloud, group_id, a["id"], b["id"]


def trial(cloud: Cloud, group_id: str, a_id: str, b_id: str,
          tmp: Path) -> tuple[int, int, tuple[bool | None, float | None]]:
    """Snapshot the group while the writer runs; restore it; return (a, b) read from the restored volumes,
    and what the group snapshot recorded (consistent, write_pause_ms)."""
    stop = tmp / f"stop-{time.monotonic_ns()}"
    a_path, b_path = device_path(cloud, a_id), device_path(cloud, b_id)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, a_path, b_path, str(stop)], stdout=subprocess.PIPE,
                              text=True)
    try:
        start = read_seq(a_path)
        deadline = time.monotonic() + 30
        while read_seq(a_path) < start + 1000:  # the writer is well under way
            assert time.monotonic() < deadline and writer.poll() is None, "writer did not start"
            time.sleep(0.005)
        created = ok(cloud.request("POST", "/v3/group_snapshots", json={"group_snapshot": {"group_id": group_id}}))
        gsnap = wait(cloud, f"/v3/group_snapshots/{created['group_snapshot']['id']}", "group_snapshot", "available")
        taken = consistency(cloud, gsnap["id"])
    finally:
        stop.touch()
        writer.wait(10)
    restored = ok(cloud.request("POST", "/v3/groups/action", json={"create-from-src": {
        "group_snapshot_id": gsnap["id"], "source_group_id": None}}))["group"]["id"]
    wait(cloud, f"/v3/groups/{restored}", "group", "available")
    by_source = {}
    for volume in ok(cloud.request("GET", f"/v3/volumes/detail?group_id={restored}"), 200)["volumes"]:
        snapshot = ok(cloud.request("GET", f"/v3/snapshots/{volume['snapshot_id']}"), 200)["snapshot"]
        by_source[snapshot["volume_id"]] = read_seq(device_path(cloud, volume["id"]))
    # Clean up so the next trial starts from the same group.
    ok(cloud.request("POST", f"/v3/groups/{restored}/action", json={"delete": {"delete-volumes": True}}))
    cloud.wait_gone(f"/v3/groups/{restored}", timeout=60)
    ok(cloud.request("DELETE", f"/v3/group_snapshots/{gsnap['id']}"))
    cloud.wait_gone(f"/v3/group_snapshots/{gsnap['id']}", timeout=60)
    return by_source[a_id], by_source[b_id], taken


def consistent(a: int, b: int) -> bool:
    return b <= a <= b + 1


def test_group_snapshot_is_point_in_time(pair: tuple[Cloud, str, str, str], tmp_path: Path) -> None:
    cloud, group_id, a_id, b_id = pair
    seen = []
    for _ in range(20):
        a, b, (taken_at_once, pause_ms) = trial(cloud, group_id, a_id, b_id, tmp_path)
        seen.append((a, b))
        assert a > 0 and consistent(a, b), f"restored A={a}, B={b}: not one instant (all trials: {seen})"
        assert taken_at_once is True and pause_ms is not None and pause_ms < 1000


def test_one_by_one_fallback_fails_the_same_check(pair: tuple[Cloud, str, str, str], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Proof that the check can fail: without the capability the members are snapshotted one after
    the other, the writer moves on in between, and the group snapshot says it is not consistent."""
    cloud, group_id, a_id, b_id = pair
    monkeypatch.setattr(workflow, "consistent_capable", lambda driver: False)
    results = []
    for _ in range(5):
        a, b, (taken_at_once, _) = trial(cloud, group_id, a_id, b_id, tmp_path)
        assert taken_at_once is False
        results.append((a, b))
    assert any(not consistent(a, b) for a, b in results), f"fallback looked consistent every time: {results}"
