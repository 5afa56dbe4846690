"""Group snapshot of a 50-member group on a reflink filesystem, end to end through the API.

Makes an XFS loop mount (mkfs.xfs -m reflink=1; needs root and xfsprogs), starts `cinderblock serve`
with its one pool there, creates a consistent-snapshot group of 50 volumes with data in each, then
times POST /group_snapshots → `available` (server-clock: created_at → updated_at as well as the
client's wall clock) and reports the write pause the driver measured. Targets: < 1 s, pause < 100 ms.

    sudo /tmp/venv/bin/python bench/group_snapshot.py [--members 50] [--rounds 5]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import HEADERS, running_service  # noqa: E402


def run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def xfs_mount(root: Path) -> tuple[Path, str]:
    image, mnt = root / "xfs.img", root / "mnt"
    mnt.mkdir()
    with open(image, "wb") as handle:
        handle.truncate(4 * 1024**3)
    run("mkfs.xfs", "-q", "-m", "reflink=1", str(image))
    device = run("losetup", "--find", "--show", str(image)).strip()
    run("mount", device, str(mnt))
    return mnt, device


def wait(client: httpx.Client, path: str, key: str, status: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()[key]
        if body["status"] == status:
            return dict(body)
        if body["status"] == "error" or time.monotonic() > deadline:
            raise RuntimeError(f"{path}: {body}")
        time.sleep(0.005)


def server_seconds(client: httpx.Client, gsnap_id: str) -> float:
    """created_at → taken_at is not exposed; use the member snapshots' latest updated_at instead."""
    snaps = [s for s in client.get("/snapshots/detail?all_tenants=1").json()["snapshots"]
             if s["group_snapshot_id"] == gsnap_id]
    shown = client.get(f"/group_snapshots/{gsnap_id}").json()["group_snapshot"]
    created = dt.datetime.fromisoformat(shown["created_at"])
    last = max(dt.datetime.fromisoformat(s["updated_at"]) for s in snaps)
    return (last - created).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mnt, device = xfs_mount(Path(tmp))
        try:
            config = ("[DEFAULT]\nenabled_backends = xfs\nquota_volumes = -1\nquota_snapshots = -1\n"
                      f"quota_gigabytes = -1\n[xfs]\nvolume_driver = file\nfile_pool_paths = {mnt}/pool\n")
            with running_service(config) as url, httpx.Client(base_url=url + "/v3", headers=HEADERS,
                                                               timeout=60) as client:
                bench(client, args.members, args.rounds)
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
            subprocess.run(["losetup", "-d", device], check=False)


def bench(client: httpx.Client, members: int, rounds: int) -> None:
    client.post("/types", json={"volume_type": {"name": "t1"}}).raise_for_status()
    client.post("/group_types", json={"group_type": {
        "name": "cg", "group_specs": {"consistent_group_snapshot_enabled": "<is> True"}}}).raise_for_status()
    group = client.post("/groups", json={"group": {"group_type": "cg", "volume_types": ["t1"]}}).json()["group"]
    wait(client, f"/groups/{group['id']}", "group", "available")
    ids = [client.post("/volumes", json={"volume": {"size": 1, "volume_type": "t1", "group_id": group["id"]}})
           .json()["volume"]["id"] for _ in range(members)]
    connector = {"os-initialize_connection": {"connector": {"host": "bench"}}}
    for volume_id in ids:  # some data in every member, so the clones have extents to share
        wait(client, f"/volumes/{volume_id}", "volume", "available")
        answer = client.post(f"/volumes/{volume_id}/action", json=connector).json()
        path = answer["connection_info"]["data"]["device_path"]
        with open(path, "r+b") as handle:
            for offset in range(0, 64 * 1024**2, 4 * 1024**2):
                handle.seek(offset)
                handle.write(os.urandom(64 * 1024))
    os.sync()
    walls, servers, pauses = [], [], []
    for _ in range(rounds):
        started = time.monotonic()
        gsnap = client.post("/group_snapshots", json={"group_snapshot": {"group_id": group["id"]}}).json()
        done = wait(client, f"/group_snapshots/{gsnap['group_snapshot']['id']}", "group_snapshot", "available")
        walls.append(time.monotonic() - started)
        servers.append(server_seconds(client, done["id"]))
        pauses.append(float(done["write_pause_ms"]))
        assert done["consistent"] is True
        client.delete(f"/group_snapshots/{done['id']}").raise_for_status()
        deadline = time.monotonic() + 60
        while client.get(f"/group_snapshots/{done['id']}").status_code != 404 and time.monotonic() < deadline:
            time.sleep(0.02)
    print(f"group snapshot of {members} members on XFS reflink, {rounds} rounds")
    print(f"  end to end (client, POST → available): median {statistics.median(walls) * 1000:.0f} ms, "
          f"max {max(walls) * 1000:.0f} ms")
    print(f"  server (created_at → last member snapshot written): median {statistics.median(servers) * 1000:.0f} ms")
    print(f"  write pause (driver): median {statistics.median(pauses):.1f} ms, max {max(pauses):.1f} ms")
    ok = max(walls) < 1.0 and max(pauses) < 100
    print("  targets (< 1 s, pause < 100 ms):", "met" if ok else "NOT met")


if __name__ == "__main__":
    main()
