"""FileDriver exporting through a real tgtd, read and written over iSCSI with qemu-io (libiscsi).

Needs root, tgt and qemu-utils + qemu-block-extra (libiscsi block driver). tgtd is started when
not running and stopped at the end only if these tests started it.
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cinderblock.model.errors import DriverError
from cinderblock.volume.driver import (
    ConnectionInfo,
    Connector,
    DriverOptions,
    ModelUpdate,
    SnapshotRef,
    VolumeRef,
)
from cinderblock.volume.drivers.file.driver import FileDriver

pytestmark = pytest.mark.root

GiB = 1024**3
PREFIX = "iqn.2010-10.org.openstack:"
CONNECTOR = Connector({"host": "compute-1", "initiator": "iqn.1993-08.org.debian:01:cb-test", "ip": "127.0.0.1"})
DATA_KEYS = {
    "target_discovered", "target_iqn", "target_portal", "target_lun", "volume_id", "auth_method",
    "auth_username", "auth_password", "encrypted", "qos_specs", "access_mode",
}


def tgtadm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tgtadm", "--lld", "iscsi", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tgtd() -> Iterator[None]:
    started = False
    if tgtadm("--op", "show", "--mode", "target").returncode != 0:
        subprocess.run(["tgtd"], check=True)  # daemonises
        started = True
        deadline = time.monotonic() + 15
        while tgtadm("--op", "show", "--mode", "target").returncode != 0:
            assert time.monotonic() < deadline, "tgtd did not come up"
            time.sleep(0.2)
    assert shutil.which("qemu-io"), "qemu-io (qemu-utils) is required"
    try:
        yield
    finally:
        if started:
            tgtadm("--op", "delete", "--mode", "system")


def make_driver(tmp_path: Path, **extra: Any) -> FileDriver:
    options = {
        "file_pool_paths": [f"p:{tmp_path / 'pool'}"],
        "target_helper": "tgtadm",
        "target_ip_address": "127.0.0.1",
        "target_port": 3260,
        "target_prefix": PREFIX,
        "use_chap_auth": True,
        **extra,
    }
    driver = FileDriver("file1", DriverOptions(options), str(tmp_path / "state"))
    driver.do_setup()
    driver.check_for_setup_error()
    return driver


@pytest.fixture
def driver(tgtd: None, tmp_path: Path) -> Iterator[FileDriver]:
    drv = make_driver(tmp_path)
    yield drv
    # Never leave our targets in a tgtd that outlives the test.
    for volume_file in (tmp_path / "pool").glob("volume-*"):
        drv.target.remove_export(volume_file.name[len("volume-"):])


def apply(ref: Any, update: ModelUpdate) -> Any:
    changes = {k: v for k, v in vars(update).items() if v is not None}
    return type(ref)(**{**vars(ref), **changes})


def vref(size_gb: int = 1) -> VolumeRef:
    return VolumeRef(id=str(uuid.uuid4()), size_gb=size_gb, pool="p")


def url(info: ConnectionInfo, password: str | None = None) -> str:
    data = info.data
    creds = f"{data['auth_username']}%{password or data['auth_password']}@" if "auth_username" in data else ""
    return f"iscsi://{creds}{data['target_portal']}/{data['target_iqn']}/{data['target_lun']}"


def qemu_io(target: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-io", "-f", "raw", "-c", command, target],
                          capture_output=True, text=True, timeout=60, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "failed" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    return proc.stdout


def exported(driver: FileDriver, volume: VolumeRef) -> tuple[VolumeRef, ConnectionInfo]:
    volume = apply(volume, driver.create_export(volume, CONNECTOR))
    return volume, driver.initialize_connection(volume, CONNECTOR)


def test_reports_iscsi(driver: FileDriver) -> None:
    assert driver.get_stats().storage_protocol == "iSCSI"


def test_iscsi_roundtrip_snapshot_and_restore(driver: FileDriver, tmp_path: Path) -> None:
    volume = vref(1)
    volume = apply(volume, driver.create_volume(volume))
    assert not driver.export_exists(volume)
    volume, info = exported(driver, volume)
    assert volume.provider_auth and volume.provider_auth.startswith("CHAP ")
    assert driver.export_exists(volume)

    # Exactly Cinder's iSCSI connection_info.
    assert info.driver_volume_type == "iscsi"
    assert set(info.data) == DATA_KEYS
    _, user, password = volume.provider_auth.split()
    assert info.data["target_iqn"] == f"{PREFIX}volume-{volume.id}"
    assert info.data["target_portal"] == "127.0.0.1:3260"
    assert (info.data["target_lun"], info.data["volume_id"]) == (1, volume.id)
    assert (info.data["auth_method"], info.data["auth_username"], info.data["auth_password"]) == (
        "CHAP", user, password)
    assert info.data["target_discovered"] is False and info.data["encrypted"] is False
    assert info.data["qos_specs"] is None and info.data["access_mode"] == "rw"

    # Idempotent: the persisted credentials are kept, no second target appears.
    again = driver.create_export(volume, CONNECTOR)
    assert again.provider_auth == volume.provider_auth
    assert tgtadm("--op", "show", "--mode", "target").stdout.count(info.data["target_iqn"]) == 1

    ok(qemu_io(url(info), "write -P 0x5a 0 1M"))
    ok(qemu_io(url(info), "read -P 0x5a 0 1M"))
    with open(volume.provider_location or "", "rb") as f:  # the same bytes through the file
        assert f.read(1 << 20) == b"\x5a" * (1 << 20)

    # Wrong or missing CHAP secret: tgtd refuses the login.
    for bad in (url(info, password="WrongPassword123"), url(info).replace(f"{user}%{password}@", "")):
        refused = qemu_io(bad, "read 0 4k")
        assert refused.returncode != 0
        assert "Authentication failure" in refused.stderr

    snap = SnapshotRef(id=str(uuid.uuid4()), volume=volume, size_gb=1)
    snap = apply(snap, driver.create_snapshot(snap))
    ok(qemu_io(url(info), "write -P 0xa5 0 1M"))
    ok(qemu_io(url(info), "read -P 0xa5 0 1M"))

    restored = vref(2)
    restored = apply(restored, driver.create_volume_from_snapshot(restored, snap))
    restored, restored_info = exported(driver, restored)
    assert restored_info.data["auth_username"] != user  # one account per volume
    ok(qemu_io(url(restored_info), "read -P 0x5a 0 1M"))
    assert "2 GiB" in ok(qemu_io(url(restored_info), "length"))

    # Revert and extend while exported: tgtd must serve the new file and size, not the old inode.
    driver.revert_to_snapshot(volume, snap)
    ok(qemu_io(url(info), "read -P 0x5a 0 1M"))
    driver.extend_volume(volume, 3)
    assert "3 GiB" in ok(qemu_io(url(info), "length"))
    ok(qemu_io(url(info), "read -P 0x5a 0 1M"))

    # A restarted service finds the exports in tgtd and keeps their credentials.
    reborn = make_driver(tmp_path)
    assert reborn.export_exists(volume) and reborn.export_exists(restored)
    assert reborn.create_export(volume, CONNECTOR).provider_auth == volume.provider_auth
    ok(qemu_io(url(info), "read -P 0x5a 0 1M"))

    reborn.remove_export(volume)
    assert not reborn.export_exists(volume)
    assert info.data["target_iqn"] not in tgtadm("--op", "show", "--mode", "target").stdout
    assert user not in tgtadm("--op", "show", "--mode", "account").stdout
    reborn.remove_export(volume)  # nothing left: not an error
    with pytest.raises(DriverError):
        reborn.initialize_connection(volume, CONNECTOR)

    reborn.delete_volume(restored)  # deleting withdraws the export too
    assert not reborn.export_exists(restored)
    assert restored_info.data["target_iqn"] not in tgtadm("--op", "show", "--mode", "target").stdout


def test_lost_credentials_are_replaced(driver: FileDriver) -> None:
    volume = vref(1)
    volume = apply(volume, driver.create_volume(volume))
    first, info = exported(driver, volume)
    ok(qemu_io(url(info), "write -P 0x33 0 64k"))
    # The database lost provider_auth (crash before it was saved): new secret, old one refused.
    second, info2 = exported(driver, volume)
    assert second.provider_auth != first.provider_auth
    ok(qemu_io(url(info2), "read -P 0x33 0 64k"))
    assert qemu_io(url(info), "read 0 4k").returncode != 0
    accounts = tgtadm("--op", "show", "--mode", "account").stdout
    assert info.data["auth_username"] not in accounts and info2.data["auth_username"] in accounts


def test_export_without_chap(tgtd: None, tmp_path: Path) -> None:
    driver = make_driver(tmp_path, use_chap_auth=False)
    volume = vref(1)
    volume = apply(volume, driver.create_volume(volume))
    try:
        volume, info = exported(driver, volume)
        assert volume.provider_auth is None
        assert "auth_method" not in info.data
        ok(qemu_io(url(info), "write -P 0x42 0 64k"))
        ok(qemu_io(url(info), "read -P 0x42 0 64k"))
    finally:
        driver.remove_export(volume)
    assert not driver.export_exists(volume)
