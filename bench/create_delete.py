"""Embedded mode: N volume creates from C concurrent clients, POST → `available`, then the deletes.

    python bench/create_delete.py [--volumes 500] [--clients 8] [--poll-ms 50]

Create latency is measured two ways:
- server clock: from the client's clock just before sending the POST to the volume's `updated_at`
  when it became `available` (same machine, same clock), so the polling interval adds nothing;
- observed: from sending the POST to the first poll that sees `available` (includes poll delay).
Deletes: from sending DELETE to the first poll that gets 404.
"""
from __future__ import annotations

import argparse
import datetime as dt
import threading
import time

import httpx

from common import HEADERS, describe, running_service

CONFIG = "[DEFAULT]\nquota_volumes = -1\nquota_gigabytes = -1\n"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _wait_available(client: httpx.Client, volume_id: str, poll: float) -> dict:
    while True:
        volume = client.get(f"/v3/volumes/{volume_id}").json()["volume"]
        if volume["status"] == "available":
            return volume
        if volume["status"] == "error":
            raise RuntimeError(f"volume {volume_id} went to error")
        time.sleep(poll)


def _wait_gone(client: httpx.Client, volume_id: str, poll: float) -> None:
    while client.get(f"/v3/volumes/{volume_id}").status_code != 404:
        time.sleep(poll)


def run(base: str, volumes: int, clients: int, poll: float) -> None:
    per_client = volumes // clients
    created: list[list[str]] = [[] for _ in range(clients)]
    server_times: list[float] = []
    observed: list[float] = []
    delete_times: list[float] = []
    lock = threading.Lock()

    def creator(index: int) -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:
            for _ in range(per_client):
                wall, start = _utc_now(), time.perf_counter()
                response = client.post("/v3/volumes", json={"volume": {"size": 1}})
                assert response.status_code == 202, response.text
                volume = _wait_available(client, response.json()["volume"]["id"], poll)
                done = dt.datetime.strptime(volume["updated_at"], "%Y-%m-%dT%H:%M:%S.%f")
                with lock:
                    observed.append(time.perf_counter() - start)
                    server_times.append((done - wall).total_seconds())
                created[index].append(volume["id"])

    def deleter(index: int) -> None:
        with httpx.Client(base_url=base, headers=HEADERS, timeout=30) as client:
            for volume_id in created[index]:
                start = time.perf_counter()
                response = client.delete(f"/v3/volumes/{volume_id}")
                assert response.status_code == 202, response.text
                _wait_gone(client, volume_id, poll)
                with lock:
                    delete_times.append(time.perf_counter() - start)

    for phase, worker in (("create", creator), ("delete", deleter)):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - start
        if phase == "create":
            print(describe(f"create, POST→available by server clock ({clients} clients)", server_times, wall))
            print(describe(f"create, POST→available as observed, poll {poll * 1000:.0f} ms", observed, wall))
        else:
            print(describe(f"delete, DELETE→404 as observed, poll {poll * 1000:.0f} ms", delete_times, wall))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--volumes", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--poll-ms", type=float, default=50.0)
    args = parser.parse_args()
    with running_service(CONFIG) as base:
        run(base, args.volumes, args.clients, args.poll_ms / 1000)


if __name__ == "__main__":
    main()
