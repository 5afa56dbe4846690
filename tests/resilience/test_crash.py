"""kill -9 the volume service in the middle of 50 creates and 50 deletes, then start it again:
within 60 s every volume is in an end state and the storage matches the database exactly."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.resilience.deploy import HEADERS, deployment, wait_for

N = 50


def test_kill_volume_service_mid_creates_and_deletes(tmp_path: Path) -> None:
    # One worker: the volume service falls behind the API, so the kill finds work queued and running.
    # A create the dying service had read but not started is failed by the scheduler's sweeper once
    # it is older than service_down_time: 20 s, so that it ends within the 60 s too.
    config = ("quota_volumes = -1\nquota_gigabytes = -1\nvolume_workers_per_backend = 1\n"
              "service_down_time = 20\nreport_interval = 2")
    with deployment(tmp_path, "postgresql", extra_config=config) as cloud:
        doomed = [cloud.http.post("/v3/volumes", json={"volume": {"size": 1}}).json()["volume"]["id"]
                  for _ in range(N)]
        wait_for(lambda: set(cloud.statuses().values()) == {"available"}, 60, "the first volumes")
        answers: list[tuple[str, int, str | None]] = []
        lock = threading.Lock()
        started = threading.Event()

        def request(kind: str, index: int) -> None:
            with httpx.Client(base_url=cloud.url, headers=HEADERS, timeout=60) as client:
                started.set()
                if kind == "create":
                    response = client.post("/v3/volumes", json={"volume": {"size": 1, "name": f"new-{index}"}})
                    ident = response.json()["volume"]["id"] if response.status_code == 202 else None
                else:
                    response = client.delete(f"/v3/volumes/{doomed[index]}")
                    ident = doomed[index]
                with lock:
                    answers.append((kind, response.status_code, ident))

        with ThreadPoolExecutor(16) as pool:
            for index in range(N):
                pool.submit(request, "create", index)
                pool.submit(request, "delete", index)
            # Kill it while work is in flight: some operations done, others not started.
            wait_for(lambda: len(answers) >= N // 4, 60, "a quarter of the requests answered", interval=0.01)
            in_flight = {s for s in cloud.statuses().values() if s in ("creating", "deleting")}
            cloud.kill("volume")
        assert in_flight, "the kill came too late to interrupt anything"
        assert all(status == 202 for _, status, _ in answers), answers  # the API never needed the volume service

        killed = time.monotonic()
        cloud.start("volume", wait=False)
        final = cloud.settle(timeout=60)
        assert time.monotonic() - killed < 60
        created = {ident for kind, _, ident in answers if kind == "create"}
        # Deleted ones are gone (their casts waited in the durable queue, or recovery ran them again);
        # created ones are available, or error when the crash cut their creation short.
        assert not set(doomed) & {ident for ident, status in final.items() if status != "error_deleting"}
        assert set(final) == created
        assert set(final.values()) <= {"available", "error"}
        # Storage == database: a file for every available volume, none for anything else, no leftovers.
        assert cloud.files() == {ident for ident, status in final.items() if status == "available"}
        assert not list((cloud.state / "volumes").glob(".tmp-*"))
        usage = cloud.http.get("/v3/os-quota-sets/admin", params={"usage": "true"}).json()["quota_set"]
        assert usage["volumes"]["in_use"] == len(final)
        print(f"after the kill: {sum(s == 'available' for s in final.values())} available, "
              f"{sum(s == 'error' for s in final.values())} error; in flight at the kill: {in_flight}")
        print(sum("recovery:" in line for line in cloud.log("volume").read_text().splitlines()), "recovered rows")
