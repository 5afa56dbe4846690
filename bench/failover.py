"""Failover of a whole backend holding N replicated volumes, end to end through the API.

Starts `cinderblock serve` with one replicated backend (file driver with a `replication_device`
target directory, or the in-memory fake with --driver fake to time the control plane alone),
creates N volumes of a replicated type, waits for every volume's first complete copy, then times
PUT /os-services/failover_host → service `failed-over` and every volume `failed-over` (usable on the
secondary), and the failback the same way. Target: N=500 under 10 s.

    python bench/failover.py [--volumes 500] [--driver file|fake] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import HEADERS, running_service  # noqa: E402

HOST = "bench@rep"


def config(driver: str, root: Path) -> str:
    if driver == "fake":
        target = "replication_device = backend_id:site-b\nfake_capacity_gb = 100000\n"
        driver_opts = "volume_driver = fake\n"
    else:
        (root / "site-b").mkdir()
        target = f"replication_device = backend_id:site-b, path:{root / 'site-b'}\nreplication_interval = 5\n"
        driver_opts = f"volume_driver = file\nfile_pool_paths = primary:{root / 'primary'}\n"
    return (f"[DEFAULT]\nhost = bench\nenabled_backends = rep\nquota_volumes = -1\nquota_gigabytes = -1\n"
            f"backend_stats_polling_interval = 2\n[rep]\n{driver_opts}{target}max_over_subscription_ratio = 1000\n")


def wait(client: httpx.Client, predicate: Any, what: str, timeout: float = 600.0, pause: float = 0.05) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise TimeoutError(what)
        time.sleep(pause)
    return time.monotonic() - started


def service(client: httpx.Client) -> dict[str, Any]:
    rows = client.get(f"/v3/os-services?binary=cinder-volume&host={HOST}").json()["services"]
    return dict(rows[0])


def statuses(client: httpx.Client) -> list[tuple[str, str]]:
    volumes = []
    marker = None
    while True:
        page = client.get("/v3/volumes/detail", params={"limit": 1000, **({"marker": marker} if marker else {})})
        batch = page.json()["volumes"]
        volumes += batch
        if len(batch) < 1000:
            break
        marker = batch[-1]["id"]
    return [(v["status"], v["replication_status"]) for v in volumes]


def all_copied(client: httpx.Client, count: int) -> bool:
    volumes = client.get("/v3/volumes/detail", params={"limit": 1000}).json()["volumes"]
    done = 0
    for volume in volumes:
        status = volume.get("os-volume-replication:extended_status")
        if status and all(t["last_complete_at"] for t in json.loads(status)["targets"].values()):
            done += 1
    return done >= count


def switch(client: httpx.Client, backend_id: str, expect_service: str, expect_volumes: str, count: int) -> float:
    started = time.monotonic()
    response = client.put("/v3/os-services/failover_host", json={"host": HOST, "backend_id": backend_id})
    assert response.status_code == 202, response.text
    wait(client, lambda: service(client)["replication_status"] == expect_service, "service switch")
    wait(client, lambda: statuses(client).count(("available", expect_volumes)) == count, "volume rows")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--driver", choices=("file", "fake"), default="file")
    parser.add_argument("--dir", default=None, help="where the primary and target directories go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        with running_service(config(args.driver, root)) as url, httpx.Client(
                base_url=url, headers=HEADERS, timeout=60) as client:
            client.post("/v3/types", json={"volume_type": {"name": "rep", "extra_specs": {
                "replication_enabled": "<is> True"}}}).raise_for_status()
            started = time.monotonic()

            def create(_: int) -> None:
                client.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": "rep"}}).raise_for_status()

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(args.volumes)))
            wait(client, lambda: statuses(client).count(("available", "enabled")) == args.volumes, "creates",
                 pause=0.5)
            print(f"created {args.volumes} replicated volumes in {time.monotonic() - started:.1f} s")
            if args.driver == "file":
                took = wait(client, lambda: all_copied(client, args.volumes), "first copies", pause=0.5)
                print(f"first complete copies of every volume after {took:.1f} s more")
            failover = switch(client, "site-b", "failed-over", "failed-over", args.volumes)
            print(f"failover of {args.volumes} volumes: {failover:.2f} s from the API call to every volume "
                  f"failed-over and available (target < 10 s)")
            failback = switch(client, "default", "enabled", "enabled", args.volumes)
            print(f"failback of {args.volumes} volumes: {failback:.2f} s")


if __name__ == "__main__":
    main()
