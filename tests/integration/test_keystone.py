"""auth_strategy = keystone against a real Keystone (PyPI keystone 30.0.0, one for the session, see
keystone_support.py): tokens validated by keystonemiddleware, roles and scopes from the tokens Keystone
issues, its service catalog. What a real Keystone cannot be made to do within a test (be down, then
back on the same address; answer slowly) runs against the stand-in in test_keystone_unavailable.py.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import openstack
import pytest
import uvicorn

from cinderblock.api.auth import authenticator, check_identity
from cinderblock.config.settings import ConfigError, build_config, load_settings
from cinderblock.volume.loading import driver_options
from cinderblock.devtools import keystone_server
from tests.conftest import Cloud
from tests.integration.keystone_support import (RealKeystone, User, assert_401, assert_503, call, keystone_config,
                                                real_keystone)


@pytest.fixture(scope="session")
def keystone(request: pytest.FixtureRequest) -> RealKeystone:
    return real_keystone(request)


@dataclass(frozen=True)
class People:
    """Projects a, b, c: alice a member of a, bob of b, carol a reader of a, root an admin of c."""
    a: str
    b: str
    c: str
    alice: User
    bob: User
    carol: User
    root: User


@pytest.fixture(scope="session")
def people(keystone: RealKeystone) -> People:
    a, b, c = keystone.project("a"), keystone.project("b"), keystone.project("c")
    return People(a, b, c, alice=keystone.user("alice", ["member"], a), bob=keystone.user("bob", ["member"], b),
                  carol=keystone.user("carol", ["reader"], a), root=keystone.user("root", ["admin"], c))


@pytest.fixture
def cloud_on(make_cloud: Callable[..., Cloud], keystone: RealKeystone) -> Callable[..., Cloud]:
    def make(extra: str = "", authtoken: str = "", state: str = "state") -> Cloud:
        return make_cloud(keystone.config(extra, authtoken), state=state)

    return make


def test_versions_need_no_token_and_everything_else_does(cloud_on: Callable[..., Cloud],
                                                         keystone: RealKeystone) -> None:
    cloud = cloud_on()
    assert call(cloud, "GET", "/", None).status_code == 300
    assert call(cloud, "GET", "/v3", None).status_code == 200
    assert call(cloud, "GET", "/v3/", None).status_code == 200
    for path in ("/v3/volumes", "/v3/types", "/v3/0123abcd/volumes"):
        assert_401(call(cloud, "GET", path, None), keystone.url)
    assert_401(call(cloud, "GET", "/v3/volumes", "not-a-token"), keystone.url)


def test_context_carries_user_project_and_roles(cloud_on: Callable[..., Cloud], keystone: RealKeystone,
                                                people: People) -> None:
    cloud = cloud_on()
    member = keystone.token(people.alice, people.a)
    created = call(cloud, "POST", "/v3/volumes", member, json={"volume": {"size": 1, "name": "v"}})
    assert created.status_code == 202, created.text
    volume = created.json()["volume"]
    assert volume["user_id"] == people.alice.id
    shown_to_member = call(cloud, "GET", f"/v3/volumes/{volume['id']}", member).json()["volume"]
    assert shown_to_member["os-vol-tenant-attr:tenant_id"] == people.a
    assert "os-vol-host-attr:host" not in shown_to_member  # not an administrator
    # The project segment of the URL must be the token's project.
    assert call(cloud, "GET", f"/v3/{people.a}/volumes", member).status_code == 200
    assert call(cloud, "GET", f"/v3/{people.b}/volumes", member).status_code == 400
    # Another project's member neither sees nor reaches it.
    other = keystone.token(people.bob, people.b)
    assert call(cloud, "GET", "/v3/volumes", other).json()["volumes"] == []
    assert call(cloud, "GET", f"/v3/volumes/{volume['id']}", other).status_code == 404
    # A reader may look but not change; identity headers sent by the caller count for nothing.
    reader = keystone.token(people.carol, people.a)
    assert call(cloud, "GET", f"/v3/volumes/{volume['id']}", reader).status_code == 200
    forged = {"X-Roles": "admin,member", "X-Project-Id": people.b, "X-Identity-Status": "Confirmed",
              "OpenStack-System-Scope": "all"}
    refused = call(cloud, "DELETE", f"/v3/volumes/{volume['id']}", reader, headers=forged)
    assert refused.status_code == 403, refused.text
    assert refused.json()["forbidden"]["message"] == "Policy doesn't allow volume:delete to be performed."
    assert call(cloud, "GET", "/v3/os-services", member, headers=forged).status_code == 403
    # Keystone's implied roles: the admin role alone is also member and reader.
    admin = keystone.token(people.root, people.c)
    shown = call(cloud, "GET", f"/v3/volumes/{volume['id']}", admin)
    assert shown.status_code == 200 and "os-vol-host-attr:host" in shown.json()["volume"]
    assert call(cloud, "GET", "/v3/os-services", admin).status_code == 200


def test_expired_token_is_refused(cloud_on: Callable[..., Cloud], keystone: RealKeystone, people: People) -> None:
    cloud = cloud_on()
    token, expires = keystone.short_lived_token(people.alice, people.a, seconds=4)
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 1)
    assert_401(call(cloud, "GET", "/v3/volumes", token), keystone.url)


def test_revoked_token_is_refused(cloud_on: Callable[..., Cloud], keystone: RealKeystone, people: People) -> None:
    cloud = cloud_on()  # token_cache_time = -1: every request asks Keystone
    token = keystone.token(people.alice, people.a)
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    keystone.revoke(token)  # DELETE /v3/auth/tokens
    assert_401(call(cloud, "GET", "/v3/volumes", token), keystone.url)


def test_system_scope_reaches_policy(cloud_on: Callable[..., Cloud], keystone: RealKeystone, people: People,
                                     tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"volume_extension:services:index": "role:admin and system_scope:all"\n')
    cloud = cloud_on(f"[oslo_policy]\npolicy_file = {policy}\n")
    project_admin = keystone.token(people.root, people.c)
    system_admin = keystone.token(keystone.admin_user, system=True)  # bootstrap's admin holds admin on the system
    assert call(cloud, "GET", "/v3/os-services", project_admin).status_code == 403
    assert call(cloud, "GET", "/v3/os-services", system_admin).status_code == 200


def test_tokens_without_a_project_own_nothing(cloud_on: Callable[..., Cloud], keystone: RealKeystone) -> None:
    # Were 202: a domain-scoped member created volumes in the project "", shared by every token without
    # a project (another domain's member, a system reader listed them).
    cloud = cloud_on()
    domain_member = keystone.token(keystone.user("dora", ["member"], domain=True), domain=True)
    refused = call(cloud, "POST", "/v3/volumes", domain_member, json={"volume": {"size": 1}})
    assert refused.status_code == 403, refused.text
    assert call(cloud, "GET", "/v3/volumes", domain_member).status_code == 403
    system_admin = keystone.token(keystone.admin_user, system=True)
    refused = call(cloud, "POST", "/v3/volumes", system_admin, json={"volume": {"size": 1}})
    assert refused.status_code == 403 and "project-scoped token" in refused.json()["forbidden"]["message"]
    refused = call(cloud, "POST", "/v3/groups", system_admin,
                   json={"group": {"group_type": "default", "volume_types": ["__DEFAULT__"]}})
    assert refused.status_code == 403, refused.text
    assert call(cloud, "GET", "/v3/volumes?all_tenants=1", system_admin).status_code == 200


def test_interface_must_be_one_the_catalog_has(cloud_on: Callable[..., Cloud], keystone: RealKeystone,
                                               people: People, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    # Issue 11: Keystone bootstrapped with public and admin identity endpoints only, the README's
    # [keystone_authtoken] (keystonemiddleware's default interface, internal): every request answered a
    # bare 500 (EndpointNotFound). Now 503 naming `interface`, an error at start, and no restart needed
    # once the catalog has the endpoint.
    internal = next(e for e in keystone.identity_endpoints() if e["interface"] == "internal")
    keystone.api("DELETE", f"/endpoints/{internal['id']}")
    try:
        token = keystone.token(people.alice, people.a)
        default = cloud_on()
        assert_503(call(default, "GET", "/v3/volumes", token), "interface = internal")
        config = tmp_path / "check.conf"
        config.write_text(keystone.config())
        settings = load_settings(build_config(config_files=[str(config)]), driver_options,
                                 state_path=str(tmp_path / "check"))
        problem = check_identity(settings)
        assert problem is not None and problem.startswith("[keystone_authtoken] interface = internal:")
        assert "(it has: admin, public)" in problem
        assert [r.levelname for r in caplog.records if r.name == "cinderblock.api.auth"][:1] == ["ERROR"]
        public = cloud_on(authtoken="interface = public\n", state="public")
        assert call(public, "GET", "/v3/volumes", token).status_code == 200
        assert_401(call(public, "GET", "/v3/volumes", "not-a-token"), keystone.url)
    finally:
        keystone.api("POST", "/endpoints", {"endpoint": {key: internal[key] for key in
                                                         ("service_id", "interface", "url", "region_id")}})
    assert call(default, "GET", "/v3/volumes", token).status_code == 200
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="cinderblock.api.auth"):
        assert check_identity(settings) is None
    assert f"{keystone.url}/v3 (interface internal)" in caplog.text


def test_start_check_refused_service_user_is_an_error(tmp_path: Path, keystone: RealKeystone,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "check.conf"
    config.write_text(keystone_config(keystone.url, password="wrong"))
    problem = check_identity(load_settings(build_config(config_files=[str(config)]), driver_options,
                                           state_path=str(tmp_path / "s")))
    assert problem is not None and "refused the service user" in problem and "password" in problem
    assert [r.levelname for r in caplog.records if r.name == "cinderblock.api.auth"] == ["ERROR"]


@pytest.fixture
def served(cloud_on: Callable[..., Cloud]) -> Iterator[str]:
    """An embedded cinderblock served over HTTP (a client finds it in the catalog); its /v3 URL."""
    cloud = cloud_on()
    server = uvicorn.Server(uvicorn.Config(cloud.running.app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v3"
    server.should_exit = True
    thread.join(10)


def test_clients_find_cinderblock_in_the_catalog(served: str, keystone: RealKeystone, people: People) -> None:
    keystone_server.register_volume_service(keystone.server, served + "/$(project_id)s")
    connection = openstack.connect(auth_url=keystone.server.url, username=people.alice.name,
                                   password=people.alice.password, project_id=people.a, user_domain_id="default",
                                   region_name=keystone.server.region, interface="public")
    try:
        access = connection.session.auth.get_access(connection.session)
        catalog = {entry["type"] for entry in access.service_catalog.catalog}
        assert {"block-storage", "volumev3", "identity"} <= catalog
        volume = connection.block_storage.create_volume(size=1, name="from-the-catalog")
        # Cinder's create answer has no tenant attribute; the volume's show does.
        assert connection.block_storage.get_volume(volume.id).project_id == people.a
        assert "from-the-catalog" in [v.name for v in connection.block_storage.volumes()]
    finally:
        connection.close()


def test_keystone_needs_a_service_user(tmp_path: Path) -> None:
    config = tmp_path / "c.conf"
    config.write_text("[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_url = http://127.0.0.1:1/v3\n")
    settings = load_settings(build_config(config_files=[str(config)]), driver_options, state_path=str(tmp_path / "s"))
    with pytest.raises(ConfigError, match="auth_type"):
        authenticator(settings)
