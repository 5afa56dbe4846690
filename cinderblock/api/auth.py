"""Who is calling: noauth tokens, or Keystone tokens validated by keystonemiddleware.

The middleware asks an authenticator for an Identity; None means 401. Policy (api/policy.py) then
decides what that identity may do. While Keystone cannot be used (down, slow, or its catalog has no
identity endpoint for `[keystone_authtoken] interface`) identify raises ServiceUnavailable with the
reason (503), and `check_identity` says so at service start.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from anyio import CapacityLimiter, to_thread

from cinderblock.config.settings import ConfigError, Settings
from cinderblock.model.errors import ServiceUnavailable
from cinderblock.model.records import RequestContext

LOG = logging.getLogger(__name__)

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

        from keystoneauth1 import exceptions as ksa_exceptions

        self._request_class: Any = _request._AuthTokenRequest  # the request class AuthProtocol expects
        self._webob_exc: Any = webob.exc
        self._ksa_error: type[Exception] = ksa_exceptions.ClientException
        self.conf = conf = library_conf(config_files)
        self.protocol = auth_token.AuthProtocol(_never_called, {"oslo_config_config": conf})
        if not conf.keystone_authtoken.auth_type:
            # Without a service user keystonemiddleware cannot ask Keystone about any token.
            raise ConfigError("auth_strategy = keystone needs [keystone_authtoken] auth_type (e.g. password) "
                              "with auth_url, username, password, project_name and their domains.")
        self.interface: str = conf.keystone_authtoken.interface
        # Its own threads: validations wait on Keystone and must not queue behind API handlers.
        self._limiter = CapacityLimiter(8)
        self.challenge = [(b"www-authenticate", f'Keystone uri="{self.protocol.www_authenticate_uri}"'.encode())]
        self._trouble: str | None = None  # the reason of the last 503, logged once per change
        self._trouble_lock = threading.Lock()

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
            refused = self.protocol.process_request(request) is not None
        except self._webob_exc.HTTPUnauthorized:
            refused = True
        except self._webob_exc.HTTPServiceUnavailable as error:
            # keystonemiddleware's own 503 (Keystone unreachable, or answering it cannot use) says no
            # more than "temporarily unavailable": the reason is the error it was raised from.
            raise self._unavailable(error.__context__) from None
        except self._ksa_error as error:
            # What keystonemiddleware lets through: no endpoint for the configured interface in the
            # catalog (EndpointNotFound), a timeout (ConnectTimeout), TLS failures... were bare 500s.
            raise self._unavailable(error) from None
        self._recovered()
        if refused:
            return None
        found = request.headers
        # With delay_auth_decision = true an invalid token gets here marked Invalid.
        if found.get("X-Identity-Status") != "Confirmed" or not found.get("X-User-Id"):
            return None
        roles = tuple(r.strip() for r in (found.get("X-Roles") or "").split(",") if r.strip())
        return Identity(found["X-User-Id"], found.get("X-Project-Id") or "", roles,
                        found.get("OpenStack-System-Scope") or None)


    def _unavailable(self, error: BaseException | None) -> ServiceUnavailable:
        message = unavailable_reason(error, self.interface)
        with self._trouble_lock:
            changed, self._trouble = message != self._trouble, message
        if changed:  # once per change, not once per request: keystonemiddleware logs each one already
            LOG.error("Keystone cannot validate tokens, requests answer 503 until it can: %s (%s: %s)",
                      message, type(error).__name__, error)
        return ServiceUnavailable(message)

    def _recovered(self) -> None:
        if self._trouble is not None:
            with self._trouble_lock:
                was, self._trouble = self._trouble, None
            if was is not None:
                LOG.warning("Keystone validates tokens again (after: %s)", was)

    def check(self, timeout: float = 5.0) -> str | None:
        """At service start: can the service user authenticate, does the catalog have the identity
        endpoint keystonemiddleware will use (`interface`, `region_name`), and does it answer? Returns
        the problem (logged: an error when the configuration cannot work with this Keystone, a warning
        when Keystone is merely unreachable), None when all is well. Never stops the start: requests
        answer 503 with the reason until the problem is gone, and no restart is needed then."""
        from keystoneauth1 import exceptions as ksa
        from keystoneauth1 import loading
        from keystoneauth1.identity.base import BaseIdentityPlugin

        options = self.conf.keystone_authtoken
        group = options.auth_section or "keystone_authtoken"
        where = f"[{group}] auth_url = {getattr(self.conf[group], 'auth_url', None)}"
        auth = loading.load_auth_from_conf_options(self.conf, group)
        if not isinstance(auth, BaseIdentityPlugin):  # no auth_type, or not one of Keystone's
            problem = (f"[{group}] auth_type = {getattr(self.conf[group], 'auth_type', None)} does not log the "
                       "service user in to Keystone (use password, or another Keystone identity plugin)")
            LOG.error("configuration error: %s; every request answers 503 until this is fixed", problem)
            return problem
        configured = options.http_connect_timeout
        session = loading.session.Session().load_from_options(
            cacert=options.cafile, insecure=options.insecure, cert=options.certfile, key=options.keyfile,
            timeout=min(configured, timeout) if configured else timeout)
        try:
            access = auth.get_access(session)
        except ksa.Unauthorized as error:
            problem = (f"Keystone at {where} refused the service user ([keystone_authtoken] username, password, "
                       f"project_name and their domains): {error}")
            LOG.error("%s; every request answers 503 until it is accepted", problem)
            return problem
        except ksa.ClientException as error:
            problem = f"{unavailable_reason(error, self.interface)} ({where}: {error})"
            LOG.warning("%s; starting anyway, requests answer 503 until Keystone can be used", problem)
            return problem
        region = options.region_name
        catalog = access.service_catalog
        found = (catalog.get_endpoints(service_type="identity", region_name=region) or {}).get("identity", [])
        have = sorted({str(e.get("interface")) for e in found if e})
        try:
            url = catalog.url_for(service_type="identity", interface=self.interface, region_name=region)
            if not url:
                raise ksa.EndpointNotFound()
        except ksa.EndpointNotFound:
            problem = (f"[keystone_authtoken] interface = {self.interface}: Keystone's catalog has no identity "
                       f"endpoint with that interface{f' in region {region}' if region else ''} (it has: "
                       f"{', '.join(have) or 'none'}); set interface to one it has, or add the endpoint")
            LOG.error("configuration error: %s; every request answers 503 until this is fixed", problem)
            return problem
        try:
            session.get(url, authenticated=False, raise_exc=False, connect_retries=0)
        except ksa.ClientException as error:
            problem = (f"the identity endpoint for interface {self.interface}, {url}, cannot be used from here: "
                       f"{error}")
            LOG.warning("%s; starting anyway, requests answer 503 until it can", problem)
            return problem
        LOG.info("Keystone: validating tokens at %s (interface %s)", url, self.interface)
        return None


UNREACHABLE = "The identity service (Keystone) cannot be reached."
TIMED_OUT = "The identity service (Keystone) did not answer in time."


def unavailable_reason(error: BaseException | None, interface: str) -> str:
    """Why tokens cannot be validated, for the caller: no hosts or addresses (those go to the log)."""
    from keystoneauth1 import exceptions as ksa
    from keystonemiddleware.auth_token import ServiceError

    if isinstance(error, ksa.EndpointNotFound):
        return (f"The identity service's catalog has no identity endpoint for [keystone_authtoken] interface = "
                f"{interface}: configure an interface it has (public, internal or admin).")
    if isinstance(error, (ksa.ConnectTimeout, ksa.RequestTimeout)):
        return TIMED_OUT
    if isinstance(error, ksa.SSLError):
        return "The TLS connection to the identity service (Keystone) failed."
    if isinstance(error, ksa.ConnectionError):
        return UNREACHABLE
    if isinstance(error, ksa.DiscoveryFailure):
        return "The identity service (Keystone) could not be discovered at [keystone_authtoken] auth_url."
    if isinstance(error, ServiceError):  # keystonemiddleware's own messages name no host
        return f"The identity service (Keystone) cannot validate tokens: {error}."
    if isinstance(error, ksa.HttpError):
        return f"The identity service (Keystone) answered {error.http_status}."
    return "The identity service (Keystone) cannot validate tokens right now."


def check_identity(settings: Settings) -> str | None:
    """The start-up check of `check` for auth_strategy = keystone; nothing to check otherwise."""
    if settings.auth_strategy != "keystone":
        return None
    return KeystoneAuth(settings.config_files).check()


def authenticator(settings: Settings) -> Authenticator:
    if settings.auth_strategy == "keystone":
        return KeystoneAuth(settings.config_files)
    return NoAuth()


def _never_called(environ: Any, start_response: Any) -> Any:  # AuthProtocol wants a WSGI app below it
    raise AssertionError("keystonemiddleware is used for token validation only")
