"""What the Keystone tests share: the cinder.conf for auth_strategy = keystone and request helpers."""
from __future__ import annotations

from typing import Any

from tests.conftest import Cloud

V = {"OpenStack-API-Version": "volume 3.71"}


def keystone_config(url: str, extra: str = "", authtoken: str = "", password: str = "secret") -> str:
    """`extra` goes to [DEFAULT] (and may open further sections), `authtoken` to [keystone_authtoken].

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
