"""One pure-ASGI middleware for what every request needs before routing.

Request ids, microversion negotiation and echo, the optional `{project_id}` URL segment (stripped
here so each route exists once), authentication (noauth or Keystone, api/auth.py) into the request
context, the content-type rule, the body size limit (osapi_max_request_body_size: 413 before parsing) and
the refusal of text no database can store (api/guard.py: NUL, lone surrogates).
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cinderblock.api import guard, microversions
from cinderblock.api.auth import Authenticator, NoAuth, parse_noauth_token
from cinderblock.api.faults import fault_body
from cinderblock.api.policy import Policy
from cinderblock.model.errors import InvalidInput, ServiceUnavailable
from cinderblock.model.records import RequestContext

__all__ = ["CinderMiddleware", "parse_noauth_token"]

JSON_TYPES = ("application/json", "application/vnd.openstack.volume+json")
UNAUTHENTICATED_PATHS = {"/", "/v3", "/v3/", "/healthcheck", "/openapi.json", "/docs"}
DEFAULT_MAX_BODY = 114688  # Cinder's osapi_max_request_body_size


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None as soon as it passes `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the body already read to the application, then defers to the server's."""
    sent = False

    async def receive_again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


class CinderMiddleware:
    def __init__(self, app: ASGIApp, project_id_regex: str, policy: Policy,
                 authenticator: Authenticator | None = None, max_body_size: int = DEFAULT_MAX_BODY) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.project_re = re.compile(rf"^/v3/({project_id_regex})(/.*)?$")
        self.policy = policy
        self.authenticator: Authenticator = authenticator or NoAuth()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = f"req-{uuid.uuid4()}"
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        echo = microversions.fmt(microversions.MIN)
        extra = [(b"x-openstack-request-id", request_id.encode()), (b"x-compute-request-id", request_id.encode())]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra,
                                      (b"openstack-api-version", f"volume {echo}".encode()),
                                      (b"vary", b"OpenStack-API-Version")]
            await send(message)

        async def reply(status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            body = json.dumps(fault_body(status, message)).encode()
            await send_with_headers({"type": "http.response.start", "status": status,
                                     "headers": [(b"content-type", b"application/json"),
                                                 (b"content-length", str(len(body)).encode()), *(headers or [])]})
            await send_with_headers({"type": "http.response.body", "body": body})

        try:
            version = microversions.negotiate(headers.get(microversions.HEADER))
        except microversions.VersionNotAcceptable as error:
            echo = error.requested
            await reply(406, str(error))
            return
        except InvalidInput as error:
            await reply(400, error.message)
            return
        echo = str(version)
        state["api_version"] = version

        path: str = scope["path"]
        prefix = "/v3"
        url_project = None
        match = self.project_re.match(path)
        if match and match.group(2):
            url_project = match.group(1)
            prefix = f"/v3/{url_project}"
            scope = {**scope, "path": "/v3" + match.group(2), "raw_path": ("/v3" + match.group(2)).encode()}
        state["url_prefix"] = prefix

        problem = guard.url_problem(scope["path"], scope.get("query_string", b""))
        if problem is not None:
            await reply(400, problem)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_size:
            await reply(413, self._too_large())
            return

        if scope["path"] not in UNAUTHENTICATED_PATHS:
            if not headers.get("x-auth-token"):
                await reply(401, "Authentication required: send an X-Auth-Token header.",
                            self.authenticator.challenge)
                return
            try:
                identity = await self.authenticator.identify(headers, scope["method"], path)
            except ServiceUnavailable as error:
                await reply(503, error.message)
                return
            if identity is None:
                await reply(401, "The request you have made requires authentication.", self.authenticator.challenge)
                return
            if url_project is not None and url_project != identity.project_id:
                await reply(400, "Malformed request url")
                return
            # Who counts as an administrator is itself a policy rule (context_is_admin), as in Cinder.
            is_admin = self.policy.is_admin(identity.user_id, identity.project_id, identity.roles,
                                            identity.system_scope)
            state["context"] = RequestContext(identity.user_id, identity.project_id, is_admin, identity.roles,
                                              request_id, identity.system_scope)

        if scope["method"] in ("POST", "PUT", "PATCH"):
            content_type = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") not in ("", "0") or "transfer-encoding" in headers
            if has_body and content_type and content_type not in JSON_TYPES:
                await reply(415, f"Unsupported Content-Type {content_type!r}: send application/json.")
                return
            body = await read_body(receive, self.max_body_size)
            if body is None:
                await reply(413, self._too_large())
                return
            problem = guard.body_problem(body)
            if problem is not None:
                await reply(400, problem)
                return
            receive = replay(body, receive)
        await self.app(scope, receive, send_with_headers)

    def _too_large(self) -> str:
        # oslo.middleware's sizelimit wording (Cinder's paste pipeline).
        return f"Request is too large. Larger than {self.max_body_size}."
