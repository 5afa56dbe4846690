"""kill -9 of the embedded service (`cinderblock serve`: API, scheduler and volume service in one
process, SQLite, in-process RPC) in the middle of a mixed load of creates, extends, group snapshots
(taken and deleted) and deletes, then a restart: within 60 s no volume, snapshot, group or group
snapshot is in a transient state, the files are exactly the rows (sizes included), and quota usage
is exactly what the rows hold."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.resilience.deploy import HEADERS, Deployment, wait_for

GiB = 1024**3
GROUPS, MEMBERS = 4, 3
N = 16  # creates, extends and deletes each
DATA = 48 * 1024**2  # bytes written into each group member
TRANSIENT = frozenset({"creating", "deleting", "extending", "attaching", "detaching", "reverting", "updating",
                       "restoring"})
COLLECTIONS = {"volumes": "/v3/volumes/detail", "snapshots": "/v3/snapshots/detail",
               "groups": "/v3/groups/detail", "group_snapshots": "/v3/group_snapshots/detail"}


def listing(cloud: Deployment) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for key, path in COLLECTIONS.items():
        response = cloud.http.get(path, params={"all_tenants": 1, "limit": 1000})
        assert response.status_code == 200, response.text
        found[key] = response.json()[key]
    return found


def transient(found: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, str]]:
    return {key: {row["id"]: row["status"] for row in rows if row["status"] in TRANSIENT}
            for key, rows in found.items() if any(row["status"] in TRANSIENT for row in rows)}


def ok(response: httpx.Response, status: int = 202) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def test_kill_embedded_service_mid_mixed_load(tmp_path: Path) -> None:
    # One worker: the service falls behind the API, so the kill finds work queued and running.
    config = ("quota_volumes = -1\nquota_gigabytes = -1\nquota_snapshots = -1\nquota_groups = -1\n"
              "volume_workers_per_backend = 1\nreport_interval = 2")
    (tmp_path / "state").mkdir()
    cloud = Deployment(tmp_path, f"sqlite:///{tmp_path / 'state' / 'cinder.sqlite'}", "", host="embedded",
                       transport_url="inprocess://", extra_config=config)
    try:
        _run(cloud)
    except BaseException:
        print(cloud.logs(20000))
        raise
    finally:
        cloud.stop()


def _run(cloud: Deployment) -> None:
    cloud.start("serve")
    http = cloud.http
    type_id = ok(http.post("/v3/types", json={"volume_type": {"name": "t1"}}), 200)["volume_type"]["id"]
    group_type = ok(http.post("/v3/group_types", json={"group_type": {
        "name": "gt1", "group_specs": {"consistent_group_snapshot_enabled": "<is> True"}}}))["group_type"]["id"]
    groups = [ok(http.post("/v3/groups", json={"group": {"name": f"g{i}", "group_type": group_type,
                                                          "volume_types": [type_id]}}))["group"]["id"]
              for i in range(GROUPS)]
    for group_id in groups:
        for _ in range(MEMBERS):
            http.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": type_id, "group_id": group_id}})
    growing = [ok(http.post("/v3/volumes", json={"volume": {"size": 1}}))["volume"]["id"] for _ in range(N)]
    doomed = [ok(http.post("/v3/volumes", json={"volume": {"size": 1}}))["volume"]["id"] for _ in range(N)]

    def settled() -> bool:
        found = listing(cloud)
        return not transient(found) and {r["status"] for rows in found.values() for r in rows} == {"available"}

    wait_for(settled, 60, "the first volumes and groups")
    # Data in the members: a group snapshot copies it, long enough for the queue behind it to grow.
    for path in (cloud.state / "volumes").glob("volume-*"):
        if path.name[len("volume-"):] not in growing + doomed:
            with open(path, "r+b") as member:
                member.write(b"\x5a" * DATA)
    old_snapshots = [ok(http.post("/v3/group_snapshots", json={"group_snapshot": {"group_id": g}}))
                     ["group_snapshot"]["id"] for g in groups]
    wait_for(settled, 60, "the first group snapshots")

    answers: list[tuple[str, int, str]] = []
    lock = threading.Lock()
    jobs: list[tuple[str, str, Callable[[httpx.Client], httpx.Response]]] = []
    for index in range(GROUPS):
        jobs.append(("group snapshot", groups[index], lambda c, g=groups[index]: c.post(
            "/v3/group_snapshots", json={"group_snapshot": {"group_id": g}})))
        jobs.append(("group snapshot delete", old_snapshots[index], lambda c, s=old_snapshots[index]: c.delete(
            f"/v3/group_snapshots/{s}")))
    for index in range(N):
        jobs.append(("create", "", lambda c, i=index: c.post("/v3/volumes",
                                                             json={"volume": {"size": 1, "name": f"n{i}"}})))
        jobs.append(("extend", growing[index], lambda c, v=growing[index]: c.post(
            f"/v3/volumes/{v}/action", json={"os-extend": {"new_size": 2}})))
        jobs.append(("delete", doomed[index], lambda c, v=doomed[index]: c.delete(f"/v3/volumes/{v}")))

    def request(kind: str, ident: str, send: Callable[[httpx.Client], httpx.Response]) -> None:
        with httpx.Client(base_url=cloud.url, headers=HEADERS, timeout=60) as client:
            try:
                status = send(client).status_code
            except httpx.HTTPError:
                status = 0  # the process was killed under this request
        with lock:
            answers.append((kind, status, ident))

    with ThreadPoolExecutor(12) as pool:
        for kind, ident, send in jobs:
            pool.submit(request, kind, ident, send)
        def mixed() -> dict[str, dict[str, str]] | None:
            """Kill when group snapshots and volume work are both in flight (or give up waiting for it)."""
            found = transient(listing(cloud))
            statuses = set(found.get("volumes", {}).values())
            return found if "group_snapshots" in found and {"extending", "deleting"} & statuses else None

        try:
            in_flight = wait_for(mixed, 30, "group snapshots and volume work in flight", interval=0.02)
        except AssertionError:
            in_flight = transient(listing(cloud))
        cloud.kill("serve")
    assert in_flight, "the kill came too late to interrupt anything"

    killed = time.monotonic()
    cloud.start("serve", wait=False)

    def all_settled() -> dict[str, list[dict[str, Any]]] | None:
        try:
            found = listing(cloud)
        except (httpx.HTTPError, AssertionError):
            return None  # still starting
        return None if transient(found) else found

    try:
        final = wait_for(all_settled, 60, "every resource to reach an end state", interval=0.5)
    except AssertionError as error:
        raise AssertionError(f"{error}; still transient: {transient(listing(cloud))}") from None
    assert time.monotonic() - killed < 60
    volumes = {row["id"]: row for row in final["volumes"]}
    snapshots = {row["id"]: row for row in final["snapshots"]}

    # Storage == database: a file of the row's size for every available volume, none for anything else.
    assert {row["status"] for row in volumes.values()} <= {"available", "error"}, volumes
    pool_dir = cloud.state / "volumes"
    files = {p.name[len("volume-"):]: p.stat().st_size for p in pool_dir.glob("volume-*")}
    assert files == {ident: row["size"] * GiB for ident, row in volumes.items() if row["status"] == "available"}
    assert {row["status"] for row in snapshots.values()} <= {"available", "error"}, snapshots
    assert cloud.files("snapshot-") == {ident for ident, row in snapshots.items() if row["status"] == "available"}
    assert not list(pool_dir.glob(".tmp-*"))
    # Accepted deletes are done (recovery ran them again); extends that were accepted are done too.
    deleted = {ident for kind, status, ident in answers if kind == "delete" and status == 202}
    assert not deleted & set(volumes)
    gone = {ident for kind, status, ident in answers if kind == "group snapshot delete" and status == 202}
    assert not gone & {row["id"] for row in final["group_snapshots"]}
    extended = {ident for kind, status, ident in answers if kind == "extend" and status == 202}
    assert {volumes[ident]["size"] for ident in extended} <= {2}
    # A group snapshot is available only when every member snapshot is.
    for gsnap in final["group_snapshots"]:
        members = [row for row in snapshots.values() if row.get("group_snapshot_id") == gsnap["id"]]
        if gsnap["status"] == "available":
            assert members and {row["status"] for row in members} == {"available"}, (gsnap, members)

    # Quota usage == what the rows hold.
    usage = http_usage(cloud)
    assert usage["volumes"] == len(volumes)
    assert usage["snapshots"] == len(snapshots)
    assert usage["gigabytes"] == sum(row["size"] for row in volumes.values()) + sum(
        row["size"] for row in snapshots.values())
    assert usage["groups"] == len(final["groups"])
    print(f"in flight at the kill: {in_flight}; answers: {sorted((k, s) for k, s, _ in answers)}")


def http_usage(cloud: Deployment) -> dict[str, int]:
    quota = cloud.http.get("/v3/os-quota-sets/admin", params={"usage": "true"}).json()["quota_set"]
    return {key: quota[key]["in_use"] for key in ("volumes", "snapshots", "gigabytes", "groups")}
