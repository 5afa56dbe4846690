"""Group replication (3.38) with the unmodified `cinder` CLI and openstacksdk against `cinderblock serve`.

The fake backend has two replication targets; the answers must satisfy the clients (exit status,
printed tables) and the group must move through the states the API promises.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import openstack
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, Server, properties, table_rows

CONFIG = """[DEFAULT]
host = e2e
enabled_backends = fake
[fake]
volume_driver = fake
replication_device = backend_id:b1, san_password:hunter2
replication_device = backend_id:b2
"""
V = "3.38"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("group-replication"), CONFIG).start()
    running.cinder("type-create", "rep")
    running.cinder("type-key", "rep", "set", "replication_enabled=<is> True")
    running.cinder("group-type-create", "rgt", version=V)
    running.cinder("group-type-key", "rgt", "set", "group_replication_enabled=<is> True", version=V)
    yield running
    running.stop()


def make_group(server: Server) -> tuple[str, list[str]]:
    name = f"g-{uuid.uuid4().hex[:8]}"
    group_id = properties(server.cinder("group-create", "--name", name, "rgt", "rep", version=V).stdout)["id"]
    server._wait(f"/groups/{group_id}", "group", ("available",), 30.0, ADMIN_TOKEN)
    ids = []
    for _ in range(2):
        created = properties(server.cinder("create", "--volume-type", "rep", "--group-id", group_id, "1",
                                           version=V).stdout)
        ids.append(server.wait_volume(created["id"], "available")["id"])
    return group_id, ids


def replication(server: Server, group_id: str, *wanted: str) -> str:
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        status = properties(server.cinder("group-show", group_id, version=V).stdout)["replication_status"]
        if status in wanted:
            return status
        time.sleep(0.1)
    raise AssertionError(f"group {group_id} replication is {status}, not {wanted}")


def test_cinder_cli_group_replication(server: Server) -> None:
    group_id, ids = make_group(server)
    assert replication(server, group_id, "disabled") == "disabled"
    server.cinder("group-enable-replication", group_id, version=V)
    replication(server, group_id, "enabled")
    rows = table_rows(server.cinder("group-list-replication-targets", group_id, version=V).stdout)
    assert rows == [{"backend_id": "b1"}, {"backend_id": "b2"}]
    server.cinder("group-failover-replication", "--allow-attached-volume", "--secondary-backend-id", "b1",
                  group_id, version=V)
    replication(server, group_id, "failed-over")
    for volume_id in ids:
        shown = properties(server.cinder("show", volume_id, version=V).stdout)
        assert (shown["status"], shown["replication_status"]) == ("available", "failed-over")
    server.cinder("group-failover-replication", "--secondary-backend-id", "default", group_id, version=V)
    replication(server, group_id, "enabled")
    server.cinder("group-disable-replication", group_id, version=V)
    replication(server, group_id, "disabled")
    # A refusal reaches the user as cinderclient's error (exit 1, the message printed).
    refused = server.cinder("group-disable-replication", group_id, version=V, expect=1)
    assert "replication status must be enabled or error" in refused.stderr + refused.stdout
    # Below 3.38 the client does not offer the commands at all.
    server.cinder("group-enable-replication", group_id, version="3.37", expect=2)


def test_openstacksdk_group_replication(server: Server) -> None:
    group_id, ids = make_group(server)
    conn: Any = openstack.connect(auth_type="admin_token", auth={"endpoint": server.endpoint, "token": ADMIN_TOKEN},
                                  block_storage_endpoint_override=server.endpoint)
    try:
        storage = conn.block_storage
        storage.enable_group_replication(group_id)  # sends {"enable_replication": null}
        replication(server, group_id, "enabled")
        group = storage.get_group(group_id)
        assert group.fetch_replication_targets(storage).replication_targets == [
            {"backend_id": "b1"}, {"backend_id": "b2"}]
        # Sends {"modify_body_for_action": {...}} (an sdk bug we tolerate).
        storage.failover_group_replication(group_id, allowed_attached_volume=False, secondary_backend_id="b2")
        replication(server, group_id, "failed-over")
        assert storage.get_group(group_id).replication_status == "failed-over"
        storage.failover_group_replication(group_id, secondary_backend_id="default")
        replication(server, group_id, "enabled")
        storage.disable_group_replication(group_id)
        replication(server, group_id, "disabled")
    finally:
        conn.close()
