"""Freeze, thaw, failover and failback across processes: api, scheduler and volume services on
RabbitMQ, with PostgreSQL and MariaDB (the casts and calls of RPC 1.3, the service-row CAS on each
database). The backend is the fake driver with two replication targets: this checks the control
plane; the file backend's data path is checked end to end in tests/e2e/test_replication_cli.py."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.resilience.deploy import Deployment, deployment, wait_for

BACKEND = """enabled_backends = rep
[rep]
volume_driver = fake
replication_device = backend_id:site-b
replication_device = backend_id:site-c
"""
HOST = "scaleout@rep"


def service(cloud: Deployment) -> dict[str, Any]:
    rows = cloud.http.get(f"/v3/os-services?binary=cinder-volume&host={HOST}").json()["services"]
    return dict(rows[0])


def volume(cloud: Deployment, volume_id: str) -> dict[str, Any]:
    return dict(cloud.http.get(f"/v3/volumes/{volume_id}").json()["volume"])


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_failover_freeze_thaw_failback_over_rabbitmq(tmp_path: Path, kind: str) -> None:
    with deployment(tmp_path, kind, extra_config=BACKEND) as cloud:
        wait_for(lambda: service(cloud)["replication_status"] == "enabled", 30, "replication bootstrap")
        cloud.http.post("/v3/types", json={"volume_type": {"name": "rep", "extra_specs": {
            "replication_enabled": "<is> True"}}}).raise_for_status()
        created = [cloud.http.post("/v3/volumes", json={"volume": {"size": 1, "volume_type": t}}).json()["volume"]
                   for t in ("rep", "rep", None)]
        wait_for(lambda: all(volume(cloud, v["id"])["status"] == "available" for v in created), 60, "creates")

        assert cloud.http.put("/v3/os-services/freeze", json={"host": HOST}).status_code == 200
        assert (service(cloud)["frozen"], service(cloud)["status"]) == (True, "disabled")
        refused = cloud.http.delete(f"/v3/volumes/{created[2]['id']}")
        assert refused.status_code == 400 and "frozen" in refused.text
        assert cloud.http.put("/v3/os-services/thaw", json={"host": HOST}).status_code == 200
        assert (service(cloud)["frozen"], service(cloud)["status"]) == (False, "enabled")

        started = time.monotonic()
        failover = cloud.http.put("/v3/os-services/failover", json={"host": HOST, "backend_id": "site-b"})
        assert failover.status_code == 202
        wait_for(lambda: service(cloud)["replication_status"] == "failed-over", 30, "failover")
        took = time.monotonic() - started
        row = service(cloud)
        assert (row["active_backend_id"], row["status"], row["disabled_reason"]) == \
            ("site-b", "disabled", "failed-over")
        assert [volume(cloud, v["id"])["replication_status"] for v in created] == [
            "failed-over", "failed-over", "not-capable"]
        assert volume(cloud, created[2]["id"])["status"] == "error"
        assert took < 10, took

        assert cloud.http.put("/v3/os-services/failover_host",
                              json={"host": HOST, "backend_id": "default"}).status_code == 202
        wait_for(lambda: service(cloud)["replication_status"] == "enabled", 30, "failback")
        assert service(cloud)["active_backend_id"] is None
        assert [volume(cloud, v["id"])["replication_status"] for v in created] == ["enabled", "enabled", "disabled"]
        assert volume(cloud, created[2]["id"])["status"] == "available"
