"""Real threads racing against one embedded cloud: compare-and-swap lets exactly one win."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from tests.api.helpers import action, in_use
from tests.conftest import ADMIN, Cloud


def race(cloud: Cloud, count: int, make_request: Callable[[TestClient, int], Any]) -> list[Any]:
    """Run `make_request` in `count` threads released together; each thread has its own client."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        client = TestClient(cloud.running.app, base_url="http://cinderblock.test", headers=ADMIN)
        barrier.wait()
        try:
            results[index] = make_request(client, index)
        except BaseException as error:  # surfaced by the assertion below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(not isinstance(r, BaseException) and r is not None for r in results), results
    return results


def statuses(results: list[Any]) -> Counter[int]:
    return Counter(r.status_code for r in results)


def test_racing_deletes(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    results = race(cloud, 20, lambda client, _: client.delete(f"/v3/volumes/{volume['id']}"))
    counts = statuses(results)
    # One winner. The others see it `deleting` (400) or, if the file driver already finished, gone (404).
    assert counts[202] == 1 and counts[400] + counts[404] == 19, [r.text for r in results]
    for result in results:
        if result.status_code == 400:
            assert result.json()["badRequest"]["message"].startswith("Invalid volume: Volume status must be")
        elif result.status_code == 404:
            assert result.json()["itemNotFound"]["message"] == f"Volume {volume['id']} could not be found."
    cloud.wait_gone(f"/v3/volumes/{volume['id']}")
    assert in_use(cloud, "volumes") == 0 and in_use(cloud, "gigabytes") == 0


def test_racing_extends(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    path = f"/v3/volumes/{volume['id']}/action"
    results = race(cloud, 10, lambda client, i: client.post(path, json={"os-extend": {"new_size": 2 + i}}))
    counts = statuses(results)
    assert counts[202] >= 1 and counts[202] + counts[400] == 10, [r.text for r in results]
    final = cloud.wait_volume(volume["id"], "available")
    # Whatever the interleaving: the size is one that was asked for and the quota matches it exactly.
    assert 2 <= final["size"] <= 11
    assert in_use(cloud, "gigabytes") == final["size"]


def test_racing_creates_respect_quota(cloud: Cloud) -> None:
    response = cloud.request("PUT", "/v3/os-quota-sets/admin", json={"quota_set": {"volumes": 10}})
    assert response.status_code == 200
    results = race(cloud, 30, lambda client, i: client.post("/v3/volumes", json={"volume": {"size": 1,
                                                                                            "name": f"r{i}"}}))
    assert statuses(results) == Counter({202: 10, 413: 20}), [r.text for r in results]
    for result in results:
        if result.status_code == 413:
            assert result.json()["overLimit"]["message"].startswith("VolumeLimitExceeded: ")
    assert in_use(cloud, "volumes") == 10 and in_use(cloud, "gigabytes") == 10
    created = [r.json()["volume"]["id"] for r in results if r.status_code == 202]
    for volume_id in created:
        assert cloud.wait_volume(volume_id, "available", "error")["status"] == "available"
    assert len(cloud.request("GET", "/v3/volumes").json()["volumes"]) == 10


def test_racing_reserves(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    path = f"/v3/volumes/{volume['id']}/action"
    results = race(cloud, 15, lambda client, _: client.post(path, json={"os-reserve": None}))
    assert statuses(results) == Counter({202: 1, 400: 14}), [r.text for r in results]
    assert cloud.wait_volume(volume["id"], "attaching")["status"] == "attaching"


def test_racing_snapshot_and_delete(cloud: Cloud) -> None:
    """A snapshot racing a delete: either the snapshot exists and the delete is refused, or the reverse."""
    for _ in range(3):
        volume = cloud.create_volume(1)
        vid = volume["id"]

        def work(client: TestClient, index: int, vid: str = vid) -> Any:
            if index % 2:
                return client.delete(f"/v3/volumes/{vid}")
            return client.post("/v3/snapshots", json={"snapshot": {"volume_id": vid}})

        results = race(cloud, 6, work)
        deleted = any(r.status_code == 202 for i, r in enumerate(results) if i % 2)
        snapped = any(r.status_code == 202 for i, r in enumerate(results) if not i % 2)
        assert deleted != snapped, [r.text for r in results]
        if deleted:
            cloud.wait_gone(f"/v3/volumes/{vid}")
    snapshots = cloud.request("GET", "/v3/snapshots").json()["snapshots"]
    for snap in snapshots:
        assert cloud.wait_snapshot(snap["id"], "available")["status"] == "available"


def test_racing_attach(cloud: Cloud) -> None:
    volume = cloud.create_volume(1)
    results = race(cloud, 8, lambda client, i: client.post(
        f"/v3/volumes/{volume['id']}/action",
        json={"os-attach": {"instance_uuid": f"00000000-0000-4000-8000-00000000000{i}", "mountpoint": "/dev/vdb"}}))
    assert statuses(results) == Counter({202: 1, 400: 7}), [r.text for r in results]
    shown = cloud.request("GET", f"/v3/volumes/{volume['id']}").json()["volume"]
    assert shown["status"] == "in-use" and len(shown["attachments"]) == 1
    assert action(cloud, volume["id"], {"os-detach": None}).status_code == 202
