"""A Keystone stand-in on 127.0.0.1: just enough of the Identity v3 API for keystonemiddleware.

- `GET /` and `GET /v3`: version discovery (keystoneauth reads these before anything else).
- `POST /v3/auth/tokens`: password authentication of the service user (scoped to its project);
  answers 201 with the token id in `X-Subject-Token` and the token body, catalog included.
- `GET /v3/auth/tokens`: validation of the token in `X-Subject-Token` for a caller holding a valid
  service token in `X-Auth-Token`; 404 for an unknown or revoked token, as Keystone. An expired token is
  returned with its `expires_at` in the past: keystonemiddleware must refuse it by itself.

Tests issue user tokens directly (`issue`) and revoke them (`revoke`), choose which interfaces the
identity service's catalog lists (`interfaces`), stop it and start it again on the same port (`stop`,
`start`) and make it slow (`delay`).
"""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DOMAIN = {"id": "default", "name": "Default"}


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class KeystoneStandin:
    def __init__(self, service_user: str = "cinder", service_password: str = "secret",
                 service_project: str = "service",
                 interfaces: tuple[str, ...] = ("public", "internal", "admin")) -> None:
        self.service = (service_user, service_password, service_project)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.validations = 0  # GET /v3/auth/tokens answered, for tests on caching
        self.interfaces = list(interfaces)  # the identity endpoints in the catalog of tokens issued next
        self.delay = 0.0  # seconds every answer waits
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "KeystoneStandin":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        """Serve (again, on the same port after `stop`)."""
        if self._thread is not None:
            return
        if self.server.fileno() == -1:  # closed by stop()
            self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Keystone down: the port refuses connections until `start`."""
        if self._thread is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()
        self._thread = None

    # --- tokens ----------------------------------------------------------------------------
    def issue(self, user: str, project: str | None, roles: list[str], expires_in: float = 3600,
              system: bool = False, domain: bool = False) -> str:
        """A token of `user`, scoped to `project` (or to the system, or the Default domain), with exactly
        these roles."""
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        body: dict[str, Any] = {
            "methods": ["password"], "audit_ids": [uuid.uuid4().hex[:22]],
            "user": {"id": f"{user}-id", "name": user, "domain": DOMAIN, "password_expires_at": None},
            "roles": [{"id": f"{role}-id", "name": role} for role in roles],
            "issued_at": _stamp(now), "expires_at": _stamp(now + dt.timedelta(seconds=expires_in)),
            "catalog": self._catalog(), "is_domain": False,
        }
        if system:
            body["system"] = {"all": True}
        elif domain:
            body["domain"] = DOMAIN
        elif project is not None:
            body["project"] = {"id": project, "name": f"{project}-name", "domain": DOMAIN}
        token = uuid.uuid4().hex
        with self._lock:
            self.tokens[token] = body
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self.tokens.pop(token, None)

    def _catalog(self) -> list[dict[str, Any]]:
        endpoints = [{"id": uuid.uuid4().hex, "interface": interface, "region": "RegionOne",
                      "region_id": "RegionOne", "url": f"{self.url}/v3"}
                     for interface in self.interfaces]
        return [{"id": "identity-id", "type": "identity", "name": "keystone", "endpoints": endpoints}]

    def _version(self) -> dict[str, Any]:
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": f"{self.url}/v3/"}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}

    def _password_auth(self, request: dict[str, Any]) -> tuple[int, dict[str, Any], str | None]:
        identity = request.get("auth", {}).get("identity", {})
        user = identity.get("password", {}).get("user", {})
        scope = request.get("auth", {}).get("scope", {}).get("project", {})
        name, password, project = self.service
        given = (user.get("name"), user.get("password"))
        if "password" not in identity.get("methods", []) or given != (name, password):
            return 401, {"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made "
                                  "requires authentication."}}, None
        if scope.get("name", scope.get("id")) not in (project, f"{project}-id"):
            return 401, {"error": {"code": 401, "title": "Unauthorized", "message": "Bad scope."}}, None
        token = self.issue(name, project, ["service", "admin"])
        return 201, {"token": self.tokens[token]}, token

    def _validate(self, service_token: str | None, subject: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.validations += 1
            caller = self.tokens.get(service_token or "")
            body = self.tokens.get(subject or "")
        if caller is None or caller["user"]["name"] != self.service[0]:
            return 401, {"error": {"code": 401, "title": "Unauthorized", "message": "Bad service token."}}
        if body is None:
            return 404, {"error": {"code": 404, "title": "Not Found", "message": f"Could not find token: {subject}."}}
        return 200, {"token": body}

    # --- HTTP ------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: dict[str, Any], token: str | None = None) -> None:
                if standin.delay:
                    time.sleep(standin.delay)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if token is not None:
                    self.send_header("X-Subject-Token", token)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?")[0].rstrip("/")
                if path == "":
                    self._reply(300, {"versions": {"values": [standin._version()]}})
                elif path == "/v3":
                    self._reply(200, {"version": standin._version()})
                elif path == "/v3/auth/tokens":
                    self._reply(*standin._validate(self.headers.get("X-Auth-Token"),
                                                   self.headers.get("X-Subject-Token")))
                else:
                    self._reply(404, {"error": {"code": 404, "title": "Not Found", "message": self.path}})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    request = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    request = {}
                if self.path.split("?")[0].rstrip("/") == "/v3/auth/tokens":
                    status, body, token = standin._password_auth(request)
                    self._reply(status, body, token)
                else:
                    self._reply(404, {"error": {"code": 404, "title": "Not Found", "message": self.path}})

        return Handler
