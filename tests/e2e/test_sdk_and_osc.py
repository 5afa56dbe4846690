"""openstacksdk 4.22 (`conn.block_storage`) and python-openstackclient (`openstack volume ...`)."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import openstack
import pytest
from openstack import exceptions

from tests.e2e.conftest import ADMIN_TOKEN, SERVICE_CACHE, Server, tool

WAIT = {"interval": 0.2, "wait": 30}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def conn(server: Server) -> Iterator[Any]:
    connection = openstack.connect(auth_type="admin_token",
                                   auth={"endpoint": server.endpoint, "token": ADMIN_TOKEN},
                                   block_storage_endpoint_override=server.endpoint)
    yield connection
    connection.close()


def openstack_cli(server: Server, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CINDER"))}
    command = [tool("openstack"), "--os-auth-type", "admin_token", "--os-token", ADMIN_TOKEN,
               "--os-endpoint", server.endpoint, *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == expect, (f"openstack {' '.join(args)} exited {proc.returncode}\n"
                                       f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(proc.stdout)


# --- openstacksdk --------------------------------------------------------------------------------
def test_sdk_types_and_extra_specs(conn: Any, server: Server) -> None:
    bs = conn.block_storage
    name = unique("sdk-gold")
    created = bs.create_type(name=name, extra_specs={"volume_backend_name": "local"})
    assert created.id and created.name == name and created.extra_specs == {"volume_backend_name": "local"}
    assert bs.get_type(created.id).name == name
    assert bs.find_type(name).id == created.id
    assert bs.find_type("no-such-type") is None
    with pytest.raises(exceptions.NotFoundException):
        bs.find_type("no-such-type", ignore_missing=False)
    assert name in {t.name for t in bs.types()}

    bs.update_type_extra_specs(created, **{"custom:tier": "gold", "custom:x": "1"})
    bs.delete_type_extra_specs(created, ["custom:x"])
    assert bs.get_type(created.id).extra_specs == {"volume_backend_name": "local", "custom:tier": "gold"}
    assert server.ok("GET", f"/types/{created.id}/extra_specs")["extra_specs"]["custom:tier"] == "gold"

    private = bs.create_type(name=unique("sdk-private"), is_public=False)
    assert private.is_public is False
    bs.add_type_access(private, "0123abcd")
    assert bs.get_type_access(private) == [{"volume_type_id": private.id, "project_id": "0123abcd"}]
    bs.remove_type_access(private, "0123abcd")
    assert bs.get_type_access(private) == []

    bs.delete_type(private)
    bs.delete_type(created)
    assert bs.find_type(name) is None
    assert server.api("GET", f"/types/{created.id}").status_code == 404


def test_sdk_volumes_snapshots_extend_and_revert(conn: Any, server: Server) -> None:
    bs = conn.block_storage
    volume_type = bs.create_type(name=unique("sdk-type"), extra_specs={"volume_backend_name": "local"})
    volume = bs.create_volume(size=1, name=unique("sdk-vol"), volume_type=volume_type.name,
                              metadata={"k": "v"})
    volume = bs.wait_for_status(volume, "available", failures=["error"], **WAIT)
    assert (volume.size, volume.volume_type, volume.metadata) == (1, volume_type.name, {"k": "v"})
    assert volume.host and volume.host.split("#")[0].endswith("@local")
    assert volume.id in {v.id for v in bs.volumes()}
    assert volume.id in {v.id for v in bs.volumes(details=False)}
    assert [v.id for v in bs.volumes(name=volume.name)] == [volume.id]
    assert bs.find_volume(volume.name).id == volume.id
    assert bs.get_volume(volume.id).status == "available"

    snapshot = bs.create_snapshot(volume_id=volume.id, name=unique("sdk-snap"))
    snapshot = bs.wait_for_status(snapshot, "available", failures=["error"], **WAIT)
    assert (snapshot.volume_id, snapshot.size) == (volume.id, 1)
    assert snapshot.id in {s.id for s in bs.snapshots()}
    assert bs.find_snapshot(snapshot.name).id == snapshot.id

    bs.revert_volume_to_snapshot(volume, snapshot)
    volume = bs.wait_for_status(bs.get_volume(volume.id), "available", failures=["error"], **WAIT)
    assert bs.get_snapshot(snapshot.id).status == "available"

    bs.extend_volume(volume, 2)
    volume = bs.wait_for_status(bs.get_volume(volume.id), "available", failures=["error_extending"], **WAIT)
    assert volume.size == 2
    with pytest.raises(exceptions.BadRequestException, match="differs from snapshot size"):
        bs.revert_volume_to_snapshot(volume, snapshot)

    with pytest.raises(exceptions.BadRequestException, match="have snapshots"):
        bs.delete_volume(volume)
    bs.delete_snapshot(snapshot)
    bs.wait_for_delete(snapshot, **WAIT)
    bs.delete_volume(volume)
    bs.wait_for_delete(volume, **WAIT)
    assert bs.find_volume(volume.id) is None
    bs.delete_type(volume_type)


def test_sdk_services_zones_limits_quotas_pools(conn: Any, server: Server) -> None:
    bs = conn.block_storage
    services = {s.binary: s for s in bs.services()}
    assert set(services) == {"cinder-scheduler", "cinder-volume"}
    volume_service = services["cinder-volume"]
    assert (volume_service.status, volume_service.state) == ("enabled", "up")
    assert volume_service.host.endswith("@local")

    disabled = bs.disable_service(volume_service, reason="sdk says so")
    assert disabled.status == "disabled"
    view = server.ok("GET", "/os-services?binary=cinder-volume")["services"][0]
    assert (view["status"], view["disabled_reason"]) == ("disabled", "sdk says so")
    assert bs.enable_service(volume_service).status == "enabled"
    assert server.ok("GET", "/os-services?binary=cinder-volume")["services"][0]["status"] == "enabled"
    time.sleep(SERVICE_CACHE + 0.3)  # the scheduler's view of services catches up

    zones = list(bs.availability_zones())
    assert [(z.name, z.state) for z in zones] == [("nova", {"available": True})]

    limits = bs.get_limits()
    assert limits.absolute.max_total_volumes == 10
    assert limits.absolute.max_total_volume_gigabytes == 1000
    assert limits.absolute.total_volumes_used >= 0

    project = "5dc0ffee"
    defaults = bs.get_quota_set_defaults(project)
    assert (defaults.volumes, defaults.gigabytes, defaults.snapshots) == (10, 1000, 10)
    bs.update_quota_set(project, volumes=7, snapshots=3)
    quota = bs.get_quota_set(project)
    assert (quota.volumes, quota.snapshots, quota.gigabytes) == (7, 3, 1000)
    with_usage = bs.get_quota_set(project, usage=True)
    assert with_usage.usage["volumes"] == 0 and with_usage.volumes == 7
    bs.revert_quota_set(project)
    assert bs.get_quota_set(project).volumes == 10

    pools = list(bs.backend_pools())
    assert [p.name for p in pools] == [f"{volume_service.host}#volumes"]
    assert pools[0].capabilities["volume_backend_name"] == "local"
    assert pools[0].capabilities["total_capacity_gb"] > 0


def test_sdk_with_project_id_endpoint(server: Server) -> None:
    """A catalog's usual `.../v3/<project_id>` endpoint: discovery, microversions and the calls work."""
    project = "0123abcd"
    endpoint = f"{server.endpoint}/{project}"
    connection = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": f"admin:{project}"},
                                   block_storage_endpoint_override=endpoint)
    try:
        bs = connection.block_storage
        volume = bs.wait_for_status(bs.create_volume(size=1, name=unique("proj")), "available",
                                    failures=["error"], **WAIT)
        assert volume.project_id == project
        assert [v.id for v in bs.volumes()] == [volume.id]
        snapshot = bs.wait_for_status(bs.create_snapshot(volume_id=volume.id), "available", failures=["error"],
                                      **WAIT)
        bs.revert_volume_to_snapshot(volume, snapshot)  # 3.40: the SDK found the microversions
        bs.wait_for_status(bs.get_volume(volume.id), "available", failures=["error"], **WAIT)
        assert bs.get_limits().absolute.total_volumes_used == 1
        bs.delete_snapshot(snapshot)
        bs.wait_for_delete(snapshot, **WAIT)
        bs.delete_volume(volume)
        bs.wait_for_delete(volume, **WAIT)
    finally:
        connection.close()


# --- python-openstackclient ----------------------------------------------------------------------
def test_openstack_cli_volumes(server: Server) -> None:
    type_name = unique("osc-type")
    created_type = as_json(openstack_cli(server, "volume", "type", "create", "--property", "custom:k=v",
                                         "--property", "volume_backend_name=local", "-f", "json", type_name))
    assert created_type["name"] == type_name
    assert server.ok("GET", f"/types/{created_type['id']}/extra_specs")["extra_specs"] == {
        "custom:k": "v", "volume_backend_name": "local"}
    shown_type = as_json(openstack_cli(server, "volume", "type", "show", "-f", "json", type_name))
    assert shown_type["id"] == created_type["id"]

    name = unique("osc-vol")
    created = as_json(openstack_cli(server, "volume", "create", "--size", "1", "--type", type_name,
                                    "-f", "json", name))
    assert (created["name"], created["size"], created["type"]) == (name, 1, type_name)
    server.wait_volume(created["id"], "available")
    listed = as_json(openstack_cli(server, "volume", "list", "-f", "json"))
    assert {(v["ID"], v["Name"], v["Status"], v["Size"]) for v in listed} >= {(created["id"], name, "available", 1)}
    shown = as_json(openstack_cli(server, "volume", "show", "-f", "json", name))
    assert (shown["id"], shown["status"], shown["type"]) == (created["id"], "available", type_name)

    snap_name = unique("osc-snap")
    snap = as_json(openstack_cli(server, "volume", "snapshot", "create", "--volume", name, "-f", "json",
                                 snap_name))
    assert snap["volume_id"] == created["id"]
    server.wait_snapshot(snap["id"], "available")
    snaps = as_json(openstack_cli(server, "volume", "snapshot", "list", "-f", "json"))
    assert snap["id"] in {s["ID"] for s in snaps}

    refused = openstack_cli(server, "volume", "delete", name, expect=1)
    assert "have snapshots" in refused.stderr
    openstack_cli(server, "volume", "snapshot", "delete", snap_name)
    server.wait_gone(f"/snapshots/{snap['id']}")
    openstack_cli(server, "volume", "delete", name)
    server.wait_gone(f"/volumes/{created['id']}")
    assert created["id"] not in {v["ID"] for v in as_json(openstack_cli(server, "volume", "list", "-f", "json"))}
    openstack_cli(server, "volume", "type", "delete", type_name)
    assert server.api("GET", f"/types/{created_type['id']}").status_code == 404
