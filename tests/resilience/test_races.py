"""Racing requests on one volume from many threads against two API worker processes sharing one
database: compare-and-swap lets exactly one of them win, the others get 400; racing creates never
exceed a quota. On PostgreSQL and on MariaDB."""
from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.resilience.deploy import HEADERS, Deployment, deployment, wait_for

RACERS = 12


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def cloud(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployment(tmp_path_factory.mktemp(request.param), request.param, api_workers=2) as running:
        yield running


def race(cloud: Deployment, send: Callable[[httpx.Client], httpx.Response], racers: int = RACERS) -> Counter[int]:
    """`racers` threads, each on its own connection (so both API workers take some), released at once."""
    barrier = threading.Barrier(racers)
    codes: Counter[int] = Counter()
    lock = threading.Lock()

    def run() -> None:
        with httpx.Client(base_url=cloud.url, headers=HEADERS, timeout=60) as client:
            client.get("/")  # connect before the barrier
            barrier.wait()
            status = send(client).status_code
        with lock:
            codes[status] += 1

    threads = [threading.Thread(target=run) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def available(cloud: Deployment) -> str:
    volume_id = cloud.http.post("/v3/volumes", json={"volume": {"size": 1}}).json()["volume"]["id"]
    wait_for(lambda: (cloud.volume(volume_id) or {}).get("status") == "available", 30, "a volume")
    return volume_id


def action(volume_id: str, body: dict[str, object]) -> Callable[[httpx.Client], httpx.Response]:
    return lambda client: client.post(f"/v3/volumes/{volume_id}/action", json=body)


def test_racing_extends(cloud: Deployment) -> None:
    volume_id = available(cloud)
    assert race(cloud, action(volume_id, {"os-extend": {"new_size": 2}})) == {202: 1, 400: RACERS - 1}
    wait_for(lambda: (cloud.volume(volume_id) or {}).get("status") == "available", 30, "the extend")
    assert cloud.volume(volume_id)["size"] == 2  # type: ignore[index]


def test_racing_attaches_and_reserves(cloud: Deployment) -> None:
    volume_id = available(cloud)
    # os-reserve: the compare-and-swap runs in the API workers.
    assert race(cloud, action(volume_id, {"os-reserve": None})) == {202: 1, 400: RACERS - 1}
    assert cloud.http.post(f"/v3/volumes/{volume_id}/action", json={"os-unreserve": None}).status_code == 202
    # os-attach: in the volume service, reached over the broker from both API workers.
    attach = action(volume_id, {"os-attach": {"host_name": "node", "mountpoint": "/dev/vdb"}})
    assert race(cloud, attach) == {202: 1, 400: RACERS - 1}
    volume = cloud.volume(volume_id)
    assert volume is not None and volume["status"] == "in-use" and len(volume["attachments"]) == 1


def test_racing_deletes(cloud: Deployment) -> None:
    volume_id = available(cloud)
    codes = race(cloud, lambda client: client.delete(f"/v3/volumes/{volume_id}"))
    # The winner's delete may already be done when a late racer looks: 404 for it, never a second 202.
    assert codes[202] == 1 and codes[400] + codes[404] == RACERS - 1, codes
    wait_for(lambda: cloud.volume(volume_id) is None, 30, "the delete")


def test_racing_creates_never_exceed_the_quota(cloud: Deployment) -> None:
    project = "racers"
    limit = {"quota_set": {"volumes": 3, "gigabytes": 1000}}
    assert cloud.http.put(f"/v3/os-quota-sets/{project}", json=limit).status_code == 200
    token = {"X-Auth-Token": f"racer:{project}"}
    codes = race(cloud, lambda client: client.post("/v3/volumes", json={"volume": {"size": 1}}, headers=token),
                 racers=16)
    assert codes == {202: 3, 413: 13}
    usage = cloud.http.get(f"/v3/os-quota-sets/{project}", params={"usage": "true"}).json()["quota_set"]
    assert usage["volumes"]["in_use"] == 3 and usage["gigabytes"]["in_use"] == 3
    listed = cloud.http.get("/v3/volumes", headers=token).json()["volumes"]
    assert len(listed) == 3
