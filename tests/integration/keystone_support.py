"""What the Keystone tests share: a real Keystone for the session, the cinder.conf for
auth_strategy = keystone, and request helpers.

`real_keystone(request)` returns the session's Keystone (PyPI keystone 30.0.0, started once by
cinderblock/devtools/keystone_server.py, which installs it into its own venv on first use) and
registers its teardown at the end of the session. When Keystone cannot be installed (no network, no
PyPI) the tests skip on a developer machine and FAIL when CI or CINDERBLOCK_REQUIRE_KEYSTONE is set;
a Keystone that is installed but does not start fails them everywhere.
"""
from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cinderblock.devtools import keystone_server
from tests.conftest import Cloud

V = {"OpenStack-API-Version": "volume 3.71"}
DEFAULT_DOMAIN = "default"  # the id keystone-manage bootstrap gives the Default domain


def keystone_config(url: str, extra: str = "", authtoken: str = "", password: str = "secret") -> str:
    """cinder.conf for a Keystone at `url` (without /v3), service user `cinder`. `extra` goes to
    [DEFAULT] (and may open further sections), `authtoken` to [keystone_authtoken].

    token_cache_time = -1: every request asks Keystone, so a revocation applies at once (with the
    default cache, a revoked token keeps working until its cache entry expires, as in Cinder)."""
    return f"""[DEFAULT]
auth_strategy = keystone
{extra}
[keystone_authtoken]
www_authenticate_uri = {url}/v3
auth_url = {url}/v3
auth_type = password
username = cinder
password = {password}
project_name = service
user_domain_name = Default
project_domain_name = Default
service_token_roles_required = true
token_cache_time = -1
{authtoken}
"""


def call(cloud: Cloud, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
    headers = {**V, **({"X-Auth-Token": token} if token is not None else {}), **kwargs.pop("headers", {})}
    return cloud.client.request(method, path, headers=headers, **kwargs)


def assert_401(response: Any, url: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == {"unauthorized": {"code": 401, "message": response.json()["unauthorized"]["message"]}}
    assert response.headers["www-authenticate"] == f'Keystone uri="{url}/v3"'


def assert_503(response: Any, *words: str) -> str:
    """A 503 in Cinder's fault envelope whose message says each of `words`; returns the message."""
    assert response.status_code == 503, response.text
    body = response.json()
    assert list(body) == ["serviceUnavailable"] and body["serviceUnavailable"]["code"] == 503, body
    message: str = body["serviceUnavailable"]["message"]
    for word in words:
        assert word in message, message
    return message


# -- the real Keystone ------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    id: str
    name: str
    password: str


class RealKeystone:
    """The session's Keystone, and what the tests ask of its identity API (as its admin)."""

    def __init__(self, server: keystone_server.Keystone) -> None:
        self.server = server
        self.url = server.url.removesuffix("/v3")  # as the stand-in's url: without /v3
        self.http = httpx.Client(base_url=self.url, timeout=60)
        self._admin_token = server.token()
        self._roles: dict[str, str] = {}
        self.admin_user = User(self.api("GET", f"/users?name={server.admin_username}")["users"][0]["id"],
                               server.admin_username, server.admin_password)

    def config(self, extra: str = "", authtoken: str = "") -> str:
        return keystone_config(self.url, extra, authtoken, password=self.server.service_password)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None,
            expect: Iterable[int] = (200, 201, 204)) -> Any:
        response = self.http.request(method, "/v3" + path, json=body,
                                     headers={"X-Auth-Token": token or self._admin_token})
        if response.status_code not in tuple(expect):
            raise AssertionError(f"Keystone: {method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def role(self, name: str) -> str:
        if name not in self._roles:
            self._roles[name] = self.api("GET", f"/roles?name={name}")["roles"][0]["id"]
        return self._roles[name]

    def project(self, label: str) -> str:
        """A new project (its id)."""
        body = {"project": {"name": f"{label}-{uuid.uuid4().hex[:8]}", "domain_id": DEFAULT_DOMAIN}}
        return str(self.api("POST", "/projects", body)["project"]["id"])

    def user(self, label: str, roles: Iterable[str], project_id: str | None = None, domain: bool = False,
             system: bool = False) -> User:
        """A new user holding `roles` on the project, the Default domain or the system."""
        password = secrets.token_urlsafe(12)
        body = {"user": {"name": f"{label}-{uuid.uuid4().hex[:8]}", "password": password, "domain_id": DEFAULT_DOMAIN}}
        user = User(self.api("POST", "/users", body)["user"]["id"], body["user"]["name"], password)
        target = (f"/projects/{project_id}" if project_id else f"/domains/{DEFAULT_DOMAIN}" if domain
                  else "/system" if system else None)
        assert target is not None, "a user needs roles somewhere"
        for role in roles:
            self.api("PUT", f"{target}/users/{user.id}/roles/{self.role(role)}")
        return user

    def token(self, user: User, project_id: str | None = None, domain: bool = False, system: bool = False) -> str:
        scope: dict[str, Any] = ({"project": {"id": project_id}} if project_id else
                                 {"domain": {"id": DEFAULT_DOMAIN}} if domain else {"system": {"all": True}})
        assert project_id or domain or system
        return self._issue({"methods": ["password"], "password": {"user": {"id": user.id, "password": user.password}}},
                           scope)

    def short_lived_token(self, user: User, project_id: str, seconds: float) -> tuple[str, float]:
        """A token that expires in `seconds` (and when, as time.time()): Keystone caps the lifetime of a
        token issued for an application credential at the credential's expiry."""
        own = self.token(user, project_id)
        expires = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
        body = {"application_credential": {"name": f"short-{uuid.uuid4().hex[:8]}",
                                           "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%f")}}
        credential = self.api("POST", f"/users/{user.id}/application_credentials", body, token=own)
        credential = credential["application_credential"]
        token = self._issue({"methods": ["application_credential"],
                             "application_credential": {"id": credential["id"], "secret": credential["secret"]}})
        return token, expires.timestamp()

    def revoke(self, token: str) -> None:
        response = self.http.delete("/v3/auth/tokens", headers={"X-Auth-Token": self._admin_token,
                                                                "X-Subject-Token": token})
        assert response.status_code == 204, response.text

    def identity_endpoints(self) -> list[dict[str, Any]]:
        service = self.api("GET", "/services?type=identity")["services"][0]["id"]
        return list(self.api("GET", f"/endpoints?service_id={service}")["endpoints"])

    def _issue(self, identity: dict[str, Any], scope: dict[str, Any] | None = None) -> str:
        auth: dict[str, Any] = {"identity": identity}
        if scope is not None:
            auth["scope"] = scope
        response = self.http.post("/v3/auth/tokens", json={"auth": auth})
        assert response.status_code == 201, response.text
        return response.headers["X-Subject-Token"]


_lock = threading.Lock()
_keystone: RealKeystone | None = None
_error: str | None = None
_missing: str | None = None


def keystone_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("CINDERBLOCK_REQUIRE_KEYSTONE"))


def real_keystone(request: pytest.FixtureRequest) -> RealKeystone:
    """The session's Keystone, started on first use."""
    global _keystone, _error, _missing
    with _lock:
        if _keystone is not None:
            return _keystone
        if _error is not None:
            pytest.fail(f"Keystone did not start: {_error}")
        if _missing is None:
            try:
                keystone_server.ensure_venv()
            except (keystone_server.KeystoneError, OSError, subprocess.SubprocessError) as exc:
                _missing = f"Keystone {keystone_server.KEYSTONE_VERSION} could not be installed: {exc}"
        if _missing is not None:
            if keystone_required():
                pytest.fail(_missing + " -- CI/CINDERBLOCK_REQUIRE_KEYSTONE is set, so this is a failure")
            pytest.skip(_missing)
        base = Path(tempfile.mkdtemp(prefix="cb-keystone-"))
        began = time.monotonic()
        try:
            keystone = RealKeystone(keystone_server.start(base))
        except Exception as exc:
            _error = f"{type(exc).__name__}: {exc}"
            keystone_server.stop(base)
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail(f"Keystone did not start: {_error}")

        def teardown() -> None:
            global _keystone
            keystone.http.close()
            keystone_server.stop(base)
            shutil.rmtree(base, ignore_errors=True)
            _keystone = None

        request.config.add_cleanup(teardown)
        print(f"\nKeystone {keystone.server.url} ready in {time.monotonic() - began:.1f}s")
        _keystone = keystone
        return keystone
