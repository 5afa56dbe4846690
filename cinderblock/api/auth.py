"""Who is calling: noauth tokens, or Keystone tokens validated by keystonemiddleware.

The middleware asks an authenticator for an Identity; None means 401. Policy (api/policy.py) then
decides what that identity may do.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from anyio import CapacityLimiter, to_thread

from cinderblock.config.settings import ConfigError, Settings
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import RequestContext

# Keystone's default implied roles: whoever holds admin also holds member and reader.
IMPLIED_ROLES = {"admin": ("member", "reader"), "member": ("reader",)}


@dataclass(frozen=True)
class Identity:
    user_id: str
    project_id: str
    roles: tuple[str, ...]
    system_scope: str | None = None


class Authenticator(Protocol):
    # Sent with every 401 (Keystone: where to get a token).
    challenge: list[tuple[bytes, bytes]]

    async def identify(self, headers: Mapping[str, str], method: str, path: str) -> Identity | None: ...


def with_implied(roles: Iterable[str]) -> tuple[str, ...]:
    result: list[str] = []
    for role in roles:
        for name in (role, *IMPLIED_ROLES.get(role, ())):
            if name not in result:
                result.append(name)
    return tuple(result)


def parse_noauth_token(token: str) -> RequestContext:
    """`user:project[:role1,role2]`; a project-less token means project = user. No roles: admin (as
    Cinder's noauth, which cinderclient's noauth plugin relies on)."""
    user, _, rest = token.partition(":")
    project, _, roles_text = rest.partition(":")
    project = project or user
    named = [r.strip() for r in roles_text.split(",") if r.strip()] if roles_text else ["admin"]
    roles = with_implied(named)
    return RequestContext(user_id=user, project_id=project, is_admin="admin" in roles, roles=roles)


class NoAuth:
    challenge: list[tuple[bytes, bytes]] = []

    async def identify(self, headers: Mapping[str, str], method: str, path: str) -> Identity | None:
        token = headers.get("x-auth-token")
        if not token:
            return None
        context = parse_noauth_token(token)
        return Identity(context.user_id, context.project_id, context.roles)


class KeystoneAuth:
    """keystonemiddleware's AuthProtocol, used for its token validation only.

    It is WSGI middleware: we hand its `process_request` a WebOb request that carries nothing but the
    caller's tokens (so no identity header can be forged), in a worker thread because validation may
    call Keystone, and read the identity headers it sets.
    """

    def __init__(self, config_files: Iterable[str]) -> None:
        import webob.exc
        from keystonemiddleware import auth_token
        from keystonemiddleware.auth_token import _request

        from cinderblock.api.policy import library_conf

        self._request_class: Any = _request._AuthTokenRequest  # the request class AuthProtocol expects
        self._webob_exc: Any = webob.exc
        conf = library_conf(config_files)
        self.protocol = auth_token.AuthProtocol(_never_called, {"oslo_config_config": conf})
        if not conf.keystone_authtoken.auth_type:
            # Without a service user keystonemiddleware cannot ask Keystone about any token.
            raise ConfigError("auth_strategy = keystone needs [keystone_authtoken] auth_type (e.g. password) "
                              "with auth_url, username, password, project_name and their domains.")
        # Its own threads: validations wait on Keystone and must not queue behind API handlers.
        self._limiter = CapacityLimiter(8)
        self.challenge = [(b"www-authenticate", f'Keystone uri="{self.protocol.www_authenticate_uri}"'.encode())]

    async def identify(self, headers: Mapping[str, str], method: str, path: str) -> Identity | None:
        if not headers.get("x-auth-token"):
            return None
        return await to_thread.run_sync(self._validate, headers, method, path, limiter=self._limiter)

    def _validate(self, headers: Mapping[str, str], method: str, path: str) -> Identity | None:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
                   "SERVER_NAME": "cinderblock", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                   "wsgi.url_scheme": "http", "HTTP_X_AUTH_TOKEN": headers["x-auth-token"]}
        if headers.get("x-service-token"):
            environ["HTTP_X_SERVICE_TOKEN"] = headers["x-service-token"]
        request = self._request_class(environ)
        try:
            if self.protocol.process_request(request) is not None:
                return None
        except self._webob_exc.HTTPUnauthorized:
            return None
        except self._webob_exc.HTTPServiceUnavailable:
            raise ServiceUnavailable("The identity service cannot validate tokens right now.") from None
        found = request.headers
        # With delay_auth_decision = true an invalid token gets here marked Invalid.
        if found.get("X-Identity-Status") != "Confirmed" or not found.get("X-User-Id"):
            return None
        roles = tuple(r.strip() for r in (found.get("X-Roles") or "").split(",") if r.strip())
        return Identity(found["X-User-Id"], found.get("X-Project-Id") or "", roles,
                        found.get("OpenStack-System-Scope") or None)


def authenticator(settings: Settings) -> Authenticator:
    if settings.auth_strategy == "keystone":
        return KeystoneAuth(settings.config_files)
    return NoAuth()


def _never_called(environ: Any, start_response: Any) -> Any:  # AuthProtocol wants a WSGI app below it
    raise AssertionError("keystonemiddleware is used for token validation only")
