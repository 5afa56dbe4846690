"""One pure-ASGI middleware for what every request needs before routing.

Request ids, microversion negotiation and echo, the optional `{project_id}` URL segment (stripped
here so each route exists once), authentication (noauth or Keystone, api/auth.py) into the request
context, and the content-type rule.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cinderblock.api import microversions
from cinderblock.api.auth import Authenticator, NoAuth, parse_noauth_token
from cinderblock.api.faults import fault_body
from cinderblock.api.policy import Policy
from cinderblock.model.errors import InvalidInput, ServiceUnavailable
from cinderblock.model.records import RequestContext

__all__ = ["CinderMiddleware", "parse_noauth_token"]

JSON_TYPES = ("application/json", "application/vnd.openstack.volume+json")
UNAUTHENTICATED_PATHS = {"/", "/v3", "/v3/", "/healthcheck", "/openapi.json", "/docs"}


class CinderMiddleware:
    def __init__(self, app: ASGIApp, project_id_regex: str, policy: Policy,
                 authenticator: Authenticator | None = None) -> None:
        self.app = app
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
        await self.app(scope, receive, send_with_headers)
