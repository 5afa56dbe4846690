"""Boolean extra specs (`replication_enabled='<is> True'`...) read one way by the API, the scheduler,
the group rules and the drivers (issue 12 §1).

On a file backend with a real replication target directory: for each spelling the type is either
refused with 400 (showing the accepted form), or the volume's `replication_status` says exactly
whether the driver copies its data to the target.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cinderblock.db import tables
from cinderblock.volume.drivers.file.driver import FileDriver
from tests.api.helpers import assert_fault
from tests.conftest import Cloud

SPELLINGS = ("<is> True", "<is>True", "<is> true", "<is> yes", "True", "<is>  TRUE")
# What the one parser decides (model/specs.py): whitespace-separated `<is>` and a boolean word, any case.
ACCEPTED = {"<is> True": True, "<is> true": True, "<is> yes": True, "<is>  TRUE": True}
PATTERN = b"\x5a\xa5" * 2048


@pytest.fixture
def site(make_cloud: Callable[..., Cloud], tmp_path: Path) -> Cloud:
    return make_cloud(f"""
[DEFAULT]
enabled_backends = site-a
host = cinderblock
[site-a]
volume_driver = file
file_pool_paths = main:{tmp_path}/site-a
replication_device = backend_id:site-b, path:{tmp_path}/site-b
replication_interval = 3600
""")


def file_driver(cloud: Cloud) -> FileDriver:
    (service,) = cloud.running.volume_services
    assert isinstance(service.manager.driver, FileDriver)
    return service.manager.driver


def data_on_target(cloud: Cloud, tmp_path: Path, volume_id: str) -> bool:
    """Write PATTERN on the primary, run one replication cycle: is it in the target's copy?"""
    with open(tmp_path / "site-a" / f"volume-{volume_id}", "r+b") as primary:
        os.pwrite(primary.fileno(), PATTERN, 4096)
        os.fsync(primary.fileno())
    file_driver(cloud).replicate_now()
    copy = tmp_path / "site-b" / "main" / f"volume-{volume_id}"
    if not copy.exists():
        return False
    with open(copy, "rb") as target:
        return os.pread(target.fileno(), len(PATTERN), 4096) == PATTERN


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("how", ["create", "set"])
def test_replication_status_and_driver_agree_or_type_is_refused(site: Cloud, tmp_path: Path, spelling: str,
                                                                 how: str) -> None:
    if how == "create":
        response = site.request("POST", "/v3/types", json={"volume_type": {
            "name": "rep", "extra_specs": {"replication_enabled": spelling}}})
    else:
        assert site.request("POST", "/v3/types", json={"volume_type": {"name": "rep"}}).status_code == 200
        response = site.request("POST", "/v3/types/rep/extra_specs",
                                json={"extra_specs": {"replication_enabled": spelling}})
    if response.status_code == 200:
        volume = site.create_volume(volume_type="rep")
        assert volume["status"] == "available"
        replicated = data_on_target(site, tmp_path, volume["id"])
        # What the operator reads is what the driver does...
        assert volume["replication_status"] == ("enabled" if replicated else "disabled")
        # ...and it is what the grammar says.
        assert replicated == ACCEPTED.get(spelling), f"{spelling!r} was stored and read as {replicated}"
        return
    assert spelling not in ACCEPTED
    assert_fault(response, 400, "badRequest", contains="'<is> True'")
    specs = site.request("GET", "/v3/types/rep/extra_specs")
    assert specs.status_code == 404 or "replication_enabled" not in specs.json()["extra_specs"]


@pytest.mark.parametrize("spelling", ["<is> False", "<is> no", "<IS>   false"])
def test_false_spellings_go_to_a_backend_without_replication(make_cloud: Callable[..., Cloud], tmp_path: Path,
                                                             spelling: str) -> None:
    """Cinder's scheduler reads `<is> False` as "a backend that does not replicate"."""
    cloud = make_cloud(f"""
[DEFAULT]
enabled_backends = site-a,plain
host = cinderblock
[site-a]
volume_driver = file
file_pool_paths = main:{tmp_path}/site-a
replication_device = backend_id:site-b, path:{tmp_path}/site-b
[plain]
volume_driver = file
file_pool_paths = main:{tmp_path}/plain
""")
    response = cloud.request("POST", "/v3/types", json={"volume_type": {
        "name": "norep", "extra_specs": {"replication_enabled": spelling}}})
    assert response.status_code == 200, response.text
    volume = cloud.create_volume(volume_type="norep")
    assert (volume["status"], volume["replication_status"]) == ("available", "disabled")
    assert (tmp_path / "plain" / f"volume-{volume['id']}").exists()
    assert not (tmp_path / "site-b" / "main" / f"volume-{volume['id']}").exists()


@pytest.mark.parametrize(("key", "value"), [
    ("multiattach", "True"), ("multiattach", "<is>true"), ("capabilities:replication_enabled", "yes"),
    ("thin_provisioning_support", "<is> maybe"), ("cacheable", "<is> True <is> False"),
])
def test_other_boolean_keys_are_refused_when_malformed(site: Cloud, key: str, value: str) -> None:
    response = site.request("POST", "/v3/types", json={"volume_type": {"name": "t", "extra_specs": {key: value}}})
    message = assert_fault(response, 400, "badRequest", contains="'<is> True'")
    assert key in message and repr(value) in message
    assert site.request("POST", "/v3/types", json={"volume_type": {"name": "t"}}).status_code == 200
    response = site.request("PUT", f"/v3/types/t/extra_specs/{key}", json={key: value})
    assert_fault(response, 400, "badRequest", contains="'<is> True'")


def test_non_boolean_keys_keep_any_value(site: Cloud) -> None:
    specs = {"volume_backend_name": "site-a", "tier": "True", "replication:interval": "60", "vendor:x": "<is>True"}
    response = site.request("POST", "/v3/types", json={"volume_type": {"name": "free", "extra_specs": specs}})
    assert response.status_code == 200, response.text
    assert site.request("GET", "/v3/types/free/extra_specs").json()["extra_specs"] == specs


@pytest.mark.parametrize(("key", "value"), [
    ("group_replication_enabled", "<is>True"), ("consistent_group_snapshot_enabled", "True"),
    ("consistent_group_replication_enabled", "<is> si"),
])
def test_group_specs_are_refused_when_malformed(site: Cloud, key: str, value: str) -> None:
    response = site.request("POST", "/v3/group_types", json={"group_type": {"name": "g", "group_specs": {key: value}}})
    assert_fault(response, 400, "badRequest", contains="'<is> True'")
    assert site.request("POST", "/v3/group_types", json={"group_type": {"name": "g"}}).status_code == 202
    response = site.request("POST", "/v3/group_types/g/group_specs", json={"group_specs": {key: value}})
    assert_fault(response, 400, "badRequest", contains="'<is> True'")
    response = site.request("POST", "/v3/group_types/g/group_specs", json={"group_specs": {key: "<is>   TRUE"}})
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("legacy", ["<is>True", "True", "<is> maybe"])
def test_a_malformed_spec_already_stored_reads_as_false_everywhere(site: Cloud, tmp_path: Path, legacy: str) -> None:
    """A database written before the check may hold a malformed spelling: it is not-true for the API,
    the scheduler (no requirement) and the driver alike."""
    assert site.request("POST", "/v3/types", json={"volume_type": {"name": "old"}}).status_code == 200
    with site.running.core.db.write() as session:
        type_id = session.query(tables.VolumeType.id).filter_by(name="old").scalar()
        session.add(tables.VolumeTypeExtraSpec(volume_type_id=type_id, key="replication_enabled", value=legacy))
        session.add(tables.VolumeTypeExtraSpec(volume_type_id=type_id, key="multiattach", value=legacy))
    volume = site.create_volume(volume_type="old")
    assert volume["status"] == "available"
    assert (volume["replication_status"], volume["multiattach"]) == ("disabled", False)
    assert not data_on_target(site, tmp_path, volume["id"])
