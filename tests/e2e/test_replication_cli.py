"""Disaster recovery with the real `cinder` CLI and real bytes on the file backend.

One `cinderblock serve` with a backend `rep` whose volumes of a replicated type are copied every
second to a `replication_device` directory (site-b). Data is written through the `local`
connection a client gets; the lost site is simulated by moving the primary directory away.
"""
from __future__ import annotations

import calendar
import contextlib
import json
import math
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server, properties, table_rows
from tests.e2e.test_data_path import assert_pattern, cinder_api, connect, write_at

HOST = "e2e@rep"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, Path]]:
    primary, secondary = tmp_path / "site-a", tmp_path / "site-b"
    config = f"""
[DEFAULT]
host = e2e
enabled_backends = rep
backend_stats_polling_interval = 1
[rep]
volume_driver = file
file_pool_paths = main:{primary}/main
replication_device = backend_id:site-b, path:{secondary}
replication_interval = 1
"""
    server = Server(tmp_path, config, name="replication").start()
    server.cinder("type-create", "replicated")
    server.cinder("type-key", "replicated", "set", "replication_enabled=<is> True")
    server.cinder("type-create", "plain")
    yield server, primary
    lost = primary.with_name("site-a-lost")
    if lost.exists() and not primary.exists():
        lost.rename(primary)
    server.stop()


def create(server: Server, volume_type: str) -> dict[str, str]:
    shown = properties(server.cinder("create", "--volume-type", volume_type, "1").stdout)
    server.wait_volume(shown["id"], "available")
    return properties(server.cinder("show", shown["id"]).stdout)


def service(server: Server) -> dict[str, str]:
    rows = table_rows(server.cinder("service-list", "--withreplication", "--binary", "cinder-volume").stdout)
    (row,) = [r for r in rows if r["Host"] == HOST]
    return row


def wait_service(server: Server, status: str, timeout: float = 60.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        row = service(server)
        if row["Replication Status"] == status:
            return row
        assert time.monotonic() < deadline, f"{HOST}: {row}, not {status}\n{server.log_tail()}"
        time.sleep(0.3)


def extended_status(server: Server, volume_id: str) -> str | None:
    """The volume's replication lag as the volume service records it (no API shows it: Cinder has no
    such key), read from the server's SQLite database."""
    database = server.state / "cinderblock.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        row = db.execute("SELECT replication_extended_status FROM volumes WHERE id = ?", (volume_id,)).fetchone()
    return row[0] if row else None


def wait_replicated(server: Server, volume_id: str, since: float, timeout: float = 60.0) -> dict[str, Any]:
    """Until the last complete copy on site-b is of a point in time after `since` (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        raw = extended_status(server, volume_id)
        if raw:
            target = json.loads(raw)["targets"]["site-b"]
            done = target["last_complete_at"]
            if done and calendar.timegm(time.strptime(done, "%Y-%m-%dT%H:%M:%SZ")) >= math.ceil(since):
                return dict(target)
        assert time.monotonic() < deadline, f"volume {volume_id} not replicated since {since}: {raw}"
        time.sleep(0.3)


def test_failover_to_a_lost_site_and_failback_with_the_secondary_writes(site: tuple[Server, Path]) -> None:
    server, primary = site
    api = cinder_api(server)
    replicated, plain = create(server, "replicated"), create(server, "plain")
    assert (replicated["replication_status"], plain["replication_status"]) == ("enabled", "disabled")
    assert service(server)["Replication Status"] == "enabled"
    first = connect(api, replicated["id"])["data"]["device_path"]
    plain_path = connect(api, plain["id"])["data"]["device_path"]
    written = time.time()
    write_at(first, "A")
    write_at(plain_path, "P")
    lag = wait_replicated(server, replicated["id"], written)
    assert lag["bytes_pending"] == 0
    snap = server.create_snapshot(replicated["id"])  # snapshots stay on the primary's pools

    primary.rename(primary.with_name("site-a-lost"))  # the site is gone
    server.cinder("failover-host", HOST, "--backend_id", "site-b")
    row = wait_service(server, "failed-over")
    assert (row["Active Backend ID"], row["Status"], row["Disabled Reason"]) == ("site-b", "disabled", "failed-over")
    moved = properties(server.cinder("show", replicated["id"]).stdout)
    assert (moved["status"], moved["replication_status"]) == ("available", "failed-over")
    errored = properties(server.cinder("show", plain["id"]).stdout)
    assert (errored["status"], errored["replication_status"]) == ("error", "not-capable")

    assert server.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "error"  # not on site-b
    second = connect(api, replicated["id"])["data"]["device_path"]
    assert second != first and "site-b" in second
    assert_pattern(second, "A")
    write_at(second, "B", (4096 * 16, 512 * 1024 * 1024))  # written while failed over

    primary.with_name("site-a-lost").rename(primary)  # the site is back
    server.cinder("failover-host", HOST, "--backend_id", "default")
    row = wait_service(server, "enabled")
    assert (row["Active Backend ID"] in ("", "None", "-"), row["Status"]) == (True, "enabled")
    back = properties(server.cinder("show", replicated["id"]).stdout)
    assert (back["status"], back["replication_status"]) == ("available", "enabled")
    path = connect(api, replicated["id"])["data"]["device_path"]
    assert "site-a" in path
    assert_pattern(path, "A")
    assert_pattern(path, "B", (4096 * 16, 512 * 1024 * 1024))  # resynced back before the switch
    assert server.ok("GET", f"/snapshots/{snap['id']}")["snapshot"]["status"] == "available"  # home again
    restored = properties(server.cinder("show", plain["id"]).stdout)
    assert restored["status"] == "available"  # the primary held it all along
    assert_pattern(connect(api, plain["id"])["data"]["device_path"], "P")


def test_planned_switchover_loses_nothing(site: tuple[Server, Path]) -> None:
    server, _ = site
    api = cinder_api(server)
    replicated = create(server, "replicated")
    path = connect(api, replicated["id"])["data"]["device_path"]
    write_at(path, "C")  # no waiting for a replication cycle: the failover's final sync carries it
    server.cinder("failover-host", HOST, "--backend_id", "site-b")
    wait_service(server, "failed-over")
    moved = connect(api, replicated["id"])["data"]["device_path"]
    assert "site-b" in moved and os.path.getsize(moved) == 1 << 30
    assert_pattern(moved, "C")
    # Frozen while failed over: no deletes; thaw gives the control plane back (service enabled again).
    server.cinder("freeze-host", HOST)
    assert service(server)["Frozen"] == "True"
    refused = server.cinder("delete", replicated["id"], expect=1)
    assert "frozen" in (refused.stdout + refused.stderr)
    server.cinder("thaw-host", HOST)
    assert service(server)["Frozen"] == "False"
