"""Scale-out mode beyond the e2e subset (tests/e2e runs it on PostgreSQL and MariaDB):

- the README's two-host layout: node1 runs api, scheduler and a volume service, node2 a second
  volume service with its own storage and zone, both on one database, broker and Redis (locks);
- `cinderblock db sync`, `db downgrade` and `db sync` again, on PostgreSQL and MariaDB.
"""
from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from cinderblock.db import migrate
from cinderblock.db.engine import Database
from tests.resilience.deploy import Deployment, fresh_database, private_vhost, wait_for

REDIS = "[coordination]\nbackend_url = redis://127.0.0.1:6379"


def test_two_hosts_share_database_broker_and_locks(tmp_path: Path) -> None:
    with private_vhost() as vhost, fresh_database("postgresql") as url:
        (tmp_path / "node1").mkdir()
        node1 = Deployment(tmp_path / "node1", url, vhost, host="node1", extra_config=REDIS)
        node2_state = tmp_path / "node2" / "state"
        node2_config = tmp_path / "node2" / "cinder.conf"
        node2_config.parent.mkdir()
        node2_config.write_text(node1.config.read_text().replace(f"state_path = {node1.state}",
                                                                 f"state_path = {node2_state}")
                                .replace("host = node1", "host = node2\nstorage_availability_zone = az2"))
        node1.sync()
        node2 = None
        try:
            node1.start()
            with open(tmp_path / "node2" / "volume.log", "wb") as log:
                node2 = subprocess.Popen([sys.executable, "-m", "cinderblock", "--config-file", str(node2_config),
                                          "volume"], stdout=log, stderr=subprocess.STDOUT)
            http = node1.http

            def volume_hosts() -> set[str]:
                services = http.get("/v3/os-services", params={"binary": "cinder-volume"}).json()["services"]
                return {s["host"] for s in services if s["state"] == "up"}

            wait_for(lambda: volume_hosts() == {"node1@local", "node2@local"}, 60, "both volume services")
            wait_for(lambda: len(http.get("/v3/scheduler-stats/get_pools").json()["pools"]) == 2, 30, "two pools")

            def create(**fields: object) -> dict[str, object]:
                volume = http.post("/v3/volumes", json={"volume": {"size": 1, **fields}}).json()["volume"]
                return dict(wait_for(lambda: (v := node1.volume(volume["id"])) and v["status"] == "available" and v,
                                     30, "a volume"))

            on2, on1 = create(availability_zone="az2"), create()
            assert on2["os-vol-host-attr:host"] == "node2@local#volumes"
            assert on1["os-vol-host-attr:host"] == "node1@local#volumes"
            assert (node2_state / "volumes" / f"volume-{on2['id']}").is_file()
            # Work on node2's volume goes to node2, over the broker, under Redis locks.
            snap = http.post("/v3/snapshots", json={"snapshot": {"volume_id": on2["id"]}}).json()["snapshot"]
            wait_for(lambda: http.get(f"/v3/snapshots/{snap['id']}").json()["snapshot"]["status"] == "available",
                     30, "the snapshot")
            clone = create(source_volid=on2["id"])
            assert clone["os-vol-host-attr:host"] == "node2@local#volumes"
            assert http.delete(f"/v3/snapshots/{snap['id']}").status_code == 202
            wait_for(lambda: http.get(f"/v3/snapshots/{snap['id']}").status_code == 404, 30, "snapshot deletion")
            for volume in (on1, on2, clone):
                assert http.delete(f"/v3/volumes/{volume['id']}").status_code == 202
            wait_for(lambda: node1.statuses() == {}, 30, "the deletes")
            assert not list((node2_state / "volumes").glob("*-*")) and node1.files() == set()
        except BaseException:
            print(node1.logs(), (tmp_path / "node2" / "volume.log").read_text()[-4000:])
            raise
        finally:
            if node2 is not None:
                node2.send_signal(signal.SIGTERM)
                assert node2.wait(30) == 0
            assert set(node1.stop().values()) == {0}


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_db_sync_downgrade_and_sync_again(tmp_path: Path, kind: str) -> None:
    """What `cinderblock db sync|downgrade` run (in-process here; every deployment above runs the
    command itself), and the command's clear refusal of a revision that does not exist."""
    with fresh_database(kind) as url:
        db = Database(url)
        try:
            migrate.sync(db)
            assert {"volumes", "snapshots", "quota_usages", "services"} <= set(sqlalchemy.inspect(db.engine)
                                                                               .get_table_names())
            config = tmp_path / "cinder.conf"
            config.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconnection = {url}\n")
            refused = subprocess.run([sys.executable, "-m", "cinderblock", "--config-file", str(config), "db",
                                      "downgrade", "no-such-revision"], capture_output=True, text=True, timeout=120)
            assert refused.returncode == 1 and "no-such-revision" in refused.stderr, refused.stderr
            assert "Traceback" not in refused.stderr
            migrate.downgrade(db, "base")
            db.dispose()
            assert set(sqlalchemy.inspect(db.engine).get_table_names()) <= {"alembic_version"}
            migrate.sync(db)
            with db.read() as session:
                assert session.execute(sqlalchemy.text("SELECT name FROM volume_types")).scalars().all() == [
                    "__DEFAULT__"]
        finally:
            db.dispose()
