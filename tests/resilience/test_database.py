"""The database connection is lost under load, two ways, while api, scheduler and volume run as
separate processes on PostgreSQL: every backend connection terminated (pg_terminate_backend), and
the database unreachable for seconds (the services reach it through a TCP proxy the test cuts).
The API answers 503 while it is gone and recovers without a restart; accepted work completes."""
from __future__ import annotations

import time
from pathlib import Path

import psycopg

from tests.resilience.deploy import PG_ADMIN, Deployment, fresh_database, private_vhost, wait_for
from tests.resilience.load import CreateLoad
from tests.resilience.proxy import TcpProxy

OUTAGE = 3.0


def terminate_backends(database: str) -> int:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                            (database,)).fetchall()
    return len(rows)


def test_database_connection_loss_during_load(tmp_path: Path) -> None:
    proxy = TcpProxy(5432)
    with private_vhost() as vhost, fresh_database("postgresql") as url:
        name = url.rsplit("/", 1)[1]
        cloud = Deployment(tmp_path, url.replace("127.0.0.1/", f"127.0.0.1:{proxy.port}/"), vhost,
                           extra_config="quota_volumes = -1\nquota_gigabytes = -1")
        cloud.sync()
        try:
            cloud.start()
            with CreateLoad(cloud.url, clients=4, pause=0.1) as load:
                time.sleep(1)
                assert terminate_backends(name) >= 3  # every service's pooled connections
                time.sleep(1)
                proxy.cut()
                time.sleep(OUTAGE)
                during = cloud.http.get("/v3/volumes")
                proxy.restore()
                wait_for(lambda: cloud.http.get("/v3/volumes").status_code == 200, 15, "the API to recover")
                time.sleep(1)

            assert during.status_code == 503, during.text
            assert during.json()["serviceUnavailable"]["code"] == 503
            statuses = load.statuses()
            # Nothing but accepted or a clear 503: no 500, no dropped connection.
            assert set(statuses) <= {202, 503} and statuses.get(503, 0) >= 1, statuses
            assert statuses[202] >= 20, statuses
            # Accepted creates complete: the services waited for the database instead of dropping them.
            final = cloud.settle(timeout=60)
            accepted = set(load.accepted())
            assert accepted <= set(final), cloud.logs()
            assert {final[ident] for ident in accepted} == {"available"}, cloud.logs()
            # A create whose commit was cut may exist although it was answered 503: it must not be stuck.
            assert set(final.values()) <= {"available", "error"}
            assert cloud.files() == {ident for ident, status in final.items() if status == "available"}
            created = cloud.http.post("/v3/volumes", json={"volume": {"size": 1}})
            assert created.status_code == 202, created.text
        except BaseException:
            print(cloud.logs())
            raise
        finally:
            codes = cloud.stop()
            proxy.close()
    assert set(codes.values()) == {0}, codes
