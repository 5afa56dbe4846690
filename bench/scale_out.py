"""Scale-out against embedded, side by side: N creates from C clients, POST → `available`.

    python bench/scale_out.py [--volumes 500] [--clients 16] [--api-workers 2] [--database postgresql]

Scale-out: `osapi_volume_workers` API processes, one scheduler and one volume service, separate
processes over RabbitMQ (a private vhost) on a fresh PostgreSQL (or MariaDB) database. Embedded:
`cinderblock serve` on SQLite. Both with the file backend and unlimited quotas. Latency as in
bench/create_delete.py (whose measuring code this reuses): by the server's clock, from just before
the POST to the volume's `updated_at` when it became `available`; and as observed by polling.
The volumes are deleted afterwards (not measured here).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from common import HEADERS, percentile, running_service
from create_delete import _utc_now, _wait_available

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.resilience.deploy import deployment  # noqa: E402

UNLIMITED = "quota_volumes = -1\nquota_gigabytes = -1"


def measure(base: str, volumes: int, clients: int, poll: float) -> dict[str, float]:
    per_client = volumes // clients
    server_times: list[float] = []
    observed: list[float] = []
    created: list[str] = []
    lock = threading.Lock()

    def creator() -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as client:
            for _ in range(per_client):
                wall, start = _utc_now(), time.perf_counter()
                response = client.post("/v3/volumes", json={"volume": {"size": 1}})
                assert response.status_code == 202, response.text
                volume = _wait_available(client, response.json()["volume"]["id"], poll)
                done = dt.datetime.strptime(volume["updated_at"], "%Y-%m-%dT%H:%M:%S.%f")
                with lock:
                    observed.append(time.perf_counter() - start)
                    server_times.append((done - wall).total_seconds())
                    created.append(volume["id"])

    threads = [threading.Thread(target=creator) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    with httpx.Client(base_url=base, headers=HEADERS, timeout=60) as client, ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda ident: client.delete(f"/v3/volumes/{ident}"), created))
    ms = [s * 1000 for s in server_times]
    seen = [s * 1000 for s in observed]
    return {"n": len(ms), "per_second": len(ms) / wall, "wall": wall, "p50": percentile(ms, 50),
            "p99": percentile(ms, 99), "seen_p50": percentile(seen, 50), "seen_p99": percentile(seen, 99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--database", default="postgresql", choices=["postgresql", "mariadb"])
    parser.add_argument("--poll-ms", type=float, default=50.0)
    args = parser.parse_args()
    poll = args.poll_ms / 1000
    results: dict[str, dict[str, float]] = {}
    with running_service(f"[DEFAULT]\n{UNLIMITED}\n") as base:
        results["embedded (SQLite, 1 process)"] = measure(base, args.volumes, args.clients, poll)
    with tempfile.TemporaryDirectory() as tmp, \
            deployment(Path(tmp), args.database, api_workers=args.api_workers, extra_config=UNLIMITED) as cloud:
        label = f"scale-out ({args.api_workers} api, 1 scheduler, 1 volume; RabbitMQ, {args.database})"
        results[label] = measure(cloud.url, args.volumes, args.clients, poll)
    print(f"{args.volumes} creates from {args.clients} clients, POST → available "
          f"(server clock; observed with {args.poll_ms:.0f} ms polling)")
    print(f"{'mode':<62} {'creates/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'seen p50':>9} {'seen p99':>9}")
    for label, r in results.items():
        print(f"{label:<62} {r['per_second']:>9.1f} {r['p50']:>8.1f} {r['p99']:>8.1f} "
              f"{r['seen_p50']:>9.1f} {r['seen_p99']:>9.1f}")
    embedded, scaled = results.values()
    print(f"scale-out / embedded: throughput {scaled['per_second'] / embedded['per_second']:.2f}x, "
          f"p50 {scaled['p50'] / embedded['p50']:.2f}x, p99 {scaled['p99'] / embedded['p99']:.2f}x")


if __name__ == "__main__":
    main()
