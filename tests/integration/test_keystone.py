"""auth_strategy = keystone: tokens validated by keystonemiddleware against a Keystone stand-in."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cinderblock.api.auth import authenticator
from cinderblock.config.settings import ConfigError, build_config, load_settings
from tests.conftest import Cloud
from tests.integration.keystone_standin import KeystoneStandin

V = {"OpenStack-API-Version": "volume 3.71"}


@pytest.fixture
def keystone() -> Iterator[KeystoneStandin]:
    with KeystoneStandin() as standin:
        yield standin


def keystone_config(url: str, extra: str = "") -> str:
    # token_cache_time = -1: every request asks Keystone, so a revocation applies at once (with the
    # default cache, a revoked token keeps working until its cache entry expires, as in Cinder).
    return f"""[DEFAULT]
auth_strategy = keystone
{extra}
[keystone_authtoken]
www_authenticate_uri = {url}/v3
auth_url = {url}/v3
auth_type = password
username = cinder
password = secret
project_name = service
user_domain_name = Default
project_domain_name = Default
service_token_roles_required = true
token_cache_time = -1
"""


@pytest.fixture
def cloud_on(make_cloud: Callable[..., Cloud], keystone: KeystoneStandin) -> Callable[..., Cloud]:
    def make(extra: str = "") -> Cloud:
        return make_cloud(keystone_config(keystone.url, extra))

    return make


def call(cloud: Cloud, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
    headers = {**V, **({"X-Auth-Token": token} if token is not None else {}), **kwargs.pop("headers", {})}
    return cloud.client.request(method, path, headers=headers, **kwargs)


def assert_401(response: Any, keystone: KeystoneStandin) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"unauthorized": {"code": 401, "message": response.json()["unauthorized"]["message"]}}
    assert response.headers["www-authenticate"] == f'Keystone uri="{keystone.url}/v3"'


def test_versions_need_no_token_and_everything_else_does(cloud_on: Callable[..., Cloud],
                                                         keystone: KeystoneStandin) -> None:
    cloud = cloud_on()
    assert call(cloud, "GET", "/", None).status_code == 300
    assert call(cloud, "GET", "/v3", None).status_code == 200
    assert call(cloud, "GET", "/v3/", None).status_code == 200
    for path in ("/v3/volumes", "/v3/types", "/v3/0123abcd/volumes"):
        assert_401(call(cloud, "GET", path, None), keystone)
    assert_401(call(cloud, "GET", "/v3/volumes", "not-a-token"), keystone)


def test_context_carries_user_project_and_roles(cloud_on: Callable[..., Cloud], keystone: KeystoneStandin) -> None:
    cloud = cloud_on()
    member = keystone.issue("alice", "0a0a", ["member", "reader"])
    created = call(cloud, "POST", "/v3/volumes", member, json={"volume": {"size": 1, "name": "v"}})
    assert created.status_code == 202, created.text
    volume = created.json()["volume"]
    assert volume["user_id"] == "alice-id"
    shown_to_member = call(cloud, "GET", f"/v3/volumes/{volume['id']}", member).json()["volume"]
    assert shown_to_member["os-vol-tenant-attr:tenant_id"] == "0a0a"
    assert "os-vol-host-attr:host" not in shown_to_member  # not an administrator
    # The project segment of the URL must be the token's project.
    assert call(cloud, "GET", "/v3/0a0a/volumes", member).status_code == 200
    assert call(cloud, "GET", "/v3/0b0b/volumes", member).status_code == 400
    # Another project's member neither sees nor reaches it.
    other = keystone.issue("bob", "0b0b", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", other).json()["volumes"] == []
    assert call(cloud, "GET", f"/v3/volumes/{volume['id']}", other).status_code == 404
    # A reader may look but not change; identity headers sent by the caller count for nothing.
    reader = keystone.issue("carol", "0a0a", ["reader"])
    assert call(cloud, "GET", f"/v3/volumes/{volume['id']}", reader).status_code == 200
    forged = {"X-Roles": "admin,member", "X-Project-Id": "0b0b", "X-Identity-Status": "Confirmed",
              "OpenStack-System-Scope": "all"}
    refused = call(cloud, "DELETE", f"/v3/volumes/{volume['id']}", reader, headers=forged)
    assert refused.status_code == 403, refused.text
    assert refused.json()["forbidden"]["message"] == "Policy doesn't allow volume:delete to be performed."
    assert call(cloud, "GET", "/v3/os-services", member, headers=forged).status_code == 403
    admin = keystone.issue("root", "0c0c", ["admin", "member", "reader"])
    shown = call(cloud, "GET", f"/v3/volumes/{volume['id']}", admin)
    assert shown.status_code == 200 and "os-vol-host-attr:host" in shown.json()["volume"]
    assert call(cloud, "GET", "/v3/os-services", admin).status_code == 200


def test_expired_and_revoked_tokens_are_refused(cloud_on: Callable[..., Cloud], keystone: KeystoneStandin) -> None:
    cloud = cloud_on()
    expired = keystone.issue("alice", "0a0a", ["member", "reader"], expires_in=-60)
    before = keystone.validations
    assert_401(call(cloud, "GET", "/v3/volumes", expired), keystone)
    assert keystone.validations == before + 1  # Keystone answered with the token: the middleware refused it
    token = keystone.issue("alice", "0a0a", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    keystone.revoke(token)
    assert_401(call(cloud, "GET", "/v3/volumes", token), keystone)


def test_system_scope_reaches_policy(cloud_on: Callable[..., Cloud], keystone: KeystoneStandin,
                                     tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('"volume_extension:services:index": "role:admin and system_scope:all"\n')
    cloud = cloud_on(f"[oslo_policy]\npolicy_file = {policy}\n")
    project_admin = keystone.issue("root", "0c0c", ["admin", "member", "reader"])
    system_admin = keystone.issue("root", None, ["admin", "member", "reader"], system=True)
    assert call(cloud, "GET", "/v3/os-services", project_admin).status_code == 403
    assert call(cloud, "GET", "/v3/os-services", system_admin).status_code == 200


def test_keystone_down_is_503(cloud_on: Callable[..., Cloud], keystone: KeystoneStandin) -> None:
    cloud = cloud_on()
    token = keystone.issue("alice", "0a0a", ["member", "reader"])
    assert call(cloud, "GET", "/v3/volumes", token).status_code == 200
    keystone.server.shutdown()
    keystone.server.server_close()
    response = call(cloud, "GET", "/v3/volumes", token)
    assert response.status_code == 503, response.text
    assert list(response.json()) == ["serviceUnavailable"]


def test_keystone_needs_a_service_user(tmp_path: Path) -> None:
    config = tmp_path / "c.conf"
    config.write_text("[DEFAULT]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_url = http://127.0.0.1:1/v3\n")
    settings = load_settings(build_config(config_files=[str(config)]), state_path=str(tmp_path / "s"))
    with pytest.raises(ConfigError, match="auth_type"):
        authenticator(settings)
