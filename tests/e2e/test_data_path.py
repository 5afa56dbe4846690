"""Bytes through the connection a client gets from `os-initialize_connection`.

Local file backend: the `local` connection's `device_path` is opened directly. iSCSI: a second
service exports volumes through tgtd with CHAP, and qemu-io reads and writes them from user space.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cinderclient import client as cinder_client
from cinderclient.contrib.noauth import CinderNoAuthPlugin
from keystoneauth1 import session as ks_session

from tests.e2e.conftest import Server

GiB = 1 << 30
MiB = 1 << 20
CONNECTOR = {"initiator": "iqn.1993-08.org.debian:01:cinderblock-e2e", "ip": "127.0.0.1", "host": "e2e-host",
             "platform": "x86_64", "os_type": "linux", "multipath": False}
# Offsets across the first GiB: the first block, an unaligned spot, the middle, the last 4 KiB.
OFFSETS = (0, MiB + 512, 700 * MiB, GiB - 4096)


def pattern(tag: str, offset: int, length: int = 4096) -> bytes:
    unit = f"<{tag}@{offset}>".encode()
    return (unit * (length // len(unit) + 1))[:length]


def write_at(path: str, tag: str, offsets: tuple[int, ...] = OFFSETS) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset in offsets:
            assert os.pwrite(fd, pattern(tag, offset), offset) == 4096
        os.fsync(fd)
    finally:
        os.close(fd)


def read_at(path: str, offset: int, length: int = 4096) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def assert_pattern(path: str, tag: str, offsets: tuple[int, ...] = OFFSETS) -> None:
    for offset in offsets:
        assert read_at(path, offset) == pattern(tag, offset), f"{path} at {offset}: expected {tag!r} data"


def cinder_api(server: Server) -> Any:
    """python-cinderclient's Python API (it has no CLI for connections), noauth, latest microversion."""
    auth = CinderNoAuthPlugin(user_id="admin", project_id="admin", endpoint=server.endpoint)
    return cinder_client.Client("3.71", session=ks_session.Session(auth=auth), os_endpoint=server.endpoint)


def connect(api: Any, volume_id: str) -> dict[str, Any]:
    info = dict(api.volumes.initialize_connection(volume_id, CONNECTOR))
    return info


# --- local file backend --------------------------------------------------------------------------
def test_local_connection_snapshot_clone_revert_extend(deployed: Server) -> None:
    server = deployed  # embedded, and scale-out on PostgreSQL and MariaDB
    api = cinder_api(server)
    volume = server.create_volume(1, name="data")
    info = connect(api, volume["id"])
    assert info["driver_volume_type"] == "local"
    path = info["data"]["device_path"]
    assert os.path.isfile(path) and os.path.getsize(path) == GiB
    assert volume["id"] in os.path.basename(path)

    write_at(path, "A")
    assert_pattern(path, "A")
    snapshot = server.create_snapshot(volume["id"], name="data-snap")
    write_at(path, "B")
    assert_pattern(path, "B")

    from_snap = server.create_volume(2, snapshot_id=snapshot["id"], wait=False)
    clone = server.create_volume(1, source_volid=volume["id"], wait=False)
    server.wait_volume(from_snap["id"], "available")
    server.wait_volume(clone["id"], "available")
    snap_path = connect(api, from_snap["id"])["data"]["device_path"]
    clone_path = connect(api, clone["id"])["data"]["device_path"]
    assert len({path, snap_path, clone_path}) == 3
    assert os.path.getsize(snap_path) == 2 * GiB and os.path.getsize(clone_path) == GiB
    assert_pattern(snap_path, "A")  # the snapshot's bytes, not the overwrite
    assert read_at(snap_path, GiB + 4096) == bytes(4096)  # the grown part reads as zeros
    assert_pattern(clone_path, "B")  # a clone copies the volume as it is now
    # The copies are independent of their sources.
    write_at(clone_path, "C", (0,))
    assert_pattern(path, "B", (0,))

    # Revert restores the snapshot's bytes (the file may be replaced: open it by path again).
    api.volumes.revert_to_snapshot(volume["id"], snapshot["id"])
    server.wait_volume(volume["id"], "available")
    server.wait_snapshot(snapshot["id"], "available")
    path = connect(api, volume["id"])["data"]["device_path"]
    assert_pattern(path, "A")

    # Extend keeps the data and adds zeroed space that takes writes.
    api.volumes.extend(volume["id"], 2)
    assert server.wait_volume(volume["id"], "available")["size"] == 2
    path = connect(api, volume["id"])["data"]["device_path"]
    assert os.path.getsize(path) == 2 * GiB
    assert_pattern(path, "A")
    assert read_at(path, GiB + 512 * MiB) == bytes(4096)
    write_at(path, "D", (GiB + 512 * MiB, 2 * GiB - 4096))
    assert_pattern(path, "D", (GiB + 512 * MiB, 2 * GiB - 4096))

    for ident in (volume["id"], from_snap["id"], clone["id"]):
        api.volumes.terminate_connection(ident, CONNECTOR)
    server.ok("DELETE", f"/snapshots/{snapshot['id']}")
    server.wait_gone(f"/snapshots/{snapshot['id']}")
    for ident, file in ((volume["id"], path), (from_snap["id"], snap_path), (clone["id"], clone_path)):
        server.ok("DELETE", f"/volumes/{ident}")
        server.wait_gone(f"/volumes/{ident}")
        assert not os.path.exists(file)


def test_restart_keeps_volumes_snapshots_and_data(server: Server) -> None:
    volume = server.create_volume(1, name="durable", metadata={"keep": "me"})
    path = connect(cinder_api(server), volume["id"])["data"]["device_path"]
    write_at(path, "R")
    snapshot = server.create_snapshot(volume["id"], name="durable-snap")

    server.restart()
    api = cinder_api(server)
    again = server.ok("GET", f"/volumes/{volume['id']}")["volume"]
    assert (again["status"], again["metadata"], again["os-vol-host-attr:host"]) == (
        "available", {"keep": "me"}, volume["os-vol-host-attr:host"])
    assert server.ok("GET", f"/snapshots/{snapshot['id']}")["snapshot"]["status"] == "available"
    assert_pattern(connect(api, volume["id"])["data"]["device_path"], "R")
    # The restarted scheduler knows the backend at once: a create from the snapshot is placed.
    copy = server.create_volume(1, snapshot_id=snapshot["id"])
    assert_pattern(connect(api, copy["id"])["data"]["device_path"], "R")

    server.ok("DELETE", f"/volumes/{copy['id']}")
    server.ok("DELETE", f"/snapshots/{snapshot['id']}")
    server.wait_gone(f"/snapshots/{snapshot['id']}")
    server.ok("DELETE", f"/volumes/{volume['id']}")
    server.wait_gone(f"/volumes/{volume['id']}")
    server.wait_gone(f"/volumes/{copy['id']}")


# --- iSCSI through tgtd --------------------------------------------------------------------------
ISCSI_CONFIG = "[DEFAULT]\nenabled_backends = iscsi\n[iscsi]\nvolume_driver = file\ntarget_helper = tgtadm\n"


def tgtadm(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("tgtadm"), "tgtadm is required (Debian package tgt)"
    return subprocess.run(["tgtadm", "--lld", "iscsi", *args], capture_output=True, text=True, check=False)


def targets() -> str:
    return tgtadm("--op", "show", "--mode", "target").stdout


@pytest.fixture(scope="module")
def tgtd() -> Iterator[None]:
    """A running tgtd; started here (and stopped afterwards) only if none was running."""
    assert shutil.which("tgtd"), "tgtd is required (Debian package tgt)"
    assert shutil.which("qemu-io"), "qemu-io is required (Debian packages qemu-utils and qemu-block-extra)"
    started = False
    if tgtadm("--op", "show", "--mode", "target").returncode != 0:
        subprocess.run(["tgtd"], check=True)  # daemonises
        started = True
        deadline = time.monotonic() + 15
        while tgtadm("--op", "show", "--mode", "target").returncode != 0:
            assert time.monotonic() < deadline, "tgtd did not come up"
            time.sleep(0.2)
    try:
        yield
    finally:
        if started:
            tgtadm("--op", "delete", "--mode", "system")


@pytest.fixture(scope="module")
def iscsi_server(tgtd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("iscsi"), ISCSI_CONFIG, name="cinderblock-iscsi").start()
    try:
        yield running
    finally:
        # Never leave our targets in a tgtd that outlives us: delete whatever is left.
        for snap in running.api("GET", "/snapshots").json().get("snapshots", []):
            running.api("DELETE", f"/snapshots/{snap['id']}")
            running.wait_gone(f"/snapshots/{snap['id']}")
        for volume in running.api("GET", "/volumes").json().get("volumes", []):
            running.api("DELETE", f"/volumes/{volume['id']}")
            running.wait_gone(f"/volumes/{volume['id']}")
        running.stop()


def iscsi_url(data: dict[str, Any], password: str | None = None) -> str:
    return (f"iscsi://{data['auth_username']}%{password or data['auth_password']}@{data['target_portal']}/"
            f"{data['target_iqn']}/{data['target_lun']}")


def qemu_io(url: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "raw", "-c", command, url], capture_output=True, text=True,
                          timeout=60, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "failed" not in output and "Pattern verification" not in output, output
    return proc.stdout


def test_iscsi_connection_snapshot_and_delete(iscsi_server: Server) -> None:
    server = iscsi_server
    api = cinder_api(server)
    pools = server.ok("GET", "/scheduler-stats/get_pools?detail=true")["pools"]
    assert [p["capabilities"]["storage_protocol"] for p in pools] == ["iSCSI"]

    volume = server.create_volume(1, name="iscsi-data")
    assert volume["os-vol-host-attr:host"].split("#")[0].endswith("@iscsi")
    info = connect(api, volume["id"])
    assert info["driver_volume_type"] == "iscsi"
    data = info["data"]
    assert data["auth_method"] == "CHAP" and data["auth_username"] and data["auth_password"]
    assert data["target_portal"] == "127.0.0.1:3260" and data["target_lun"] == 1
    assert data["target_iqn"].endswith(f"volume-{volume['id']}") and data["volume_id"] == volume["id"]
    assert data["target_iqn"] in targets()
    url = iscsi_url(data)

    ok(qemu_io(url, "write -P 0x5a 0 1M"))
    ok(qemu_io(url, "write -P 0x3c 512M 64k"))
    ok(qemu_io(url, "read -P 0x5a 0 1M"))
    ok(qemu_io(url, "read -P 0x3c 512M 64k"))
    assert "1 GiB" in ok(qemu_io(url, "length"))
    refused = qemu_io(iscsi_url(data, password="WrongPassword123"), "read 0 4k")
    assert refused.returncode != 0 and "Authentication failure" in refused.stderr

    snapshot = server.create_snapshot(volume["id"], name="iscsi-snap")
    ok(qemu_io(url, "write -P 0xa5 0 1M"))
    ok(qemu_io(url, "read -P 0xa5 0 1M"))

    restored = server.create_volume(2, snapshot_id=snapshot["id"], name="iscsi-restored")
    restored_data = connect(api, restored["id"])["data"]
    assert restored_data["target_iqn"] != data["target_iqn"]
    assert restored_data["auth_username"] != data["auth_username"]  # one CHAP account per volume
    restored_url = iscsi_url(restored_data)
    ok(qemu_io(restored_url, "read -P 0x5a 0 1M"))  # the snapshot's bytes over iSCSI
    ok(qemu_io(restored_url, "read -P 0x3c 512M 64k"))
    assert "2 GiB" in ok(qemu_io(restored_url, "length"))
    ok(qemu_io(url, "read -P 0xa5 0 1M"))  # the source keeps its own

    # Deleting a volume withdraws its target.
    api.volumes.terminate_connection(restored["id"], CONNECTOR)
    server.ok("DELETE", f"/volumes/{restored['id']}")
    server.wait_gone(f"/volumes/{restored['id']}")
    listing = targets()
    assert restored_data["target_iqn"] not in listing
    assert data["target_iqn"] in listing
    assert qemu_io(restored_url, "read 0 4k").returncode != 0

    server.ok("DELETE", f"/snapshots/{snapshot['id']}")
    server.wait_gone(f"/snapshots/{snapshot['id']}")
    server.ok("DELETE", f"/volumes/{volume['id']}")
    server.wait_gone(f"/volumes/{volume['id']}")
    assert data["target_iqn"] not in targets()
