"""Request-scoped values the middleware put on the request, as FastAPI dependencies.

They are async on purpose: FastAPI runs a sync dependency in the thread pool, a costly hop for a lookup.
"""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from cinderblock.api.microversions import Version
from cinderblock.model.errors import Forbidden, VersionNotFound
from cinderblock.model.records import RequestContext


async def get_context(request: Request) -> RequestContext:
    context: RequestContext = request.state.context
    return context


async def get_version(request: Request) -> Version:
    version: Version = request.state.api_version
    return version


Ctx = Annotated[RequestContext, Depends(get_context)]
Ver = Annotated[Version, Depends(get_version)]


def min_version(minimum: tuple[int, int]):  # type: ignore[no-untyped-def]
    """A route dependency: below `minimum` the route does not exist (404), as in Cinder."""

    async def check(version: Ver) -> None:
        if not version.at_least(minimum):
            raise VersionNotFound("The resource could not be found.")

    return Depends(check)


def require_admin(context: RequestContext) -> None:
    """Prefer a policy rule (`svc.policy.authorize`): operators can override those."""
    if not context.is_admin:
        raise Forbidden("Policy doesn't allow this operation to be performed.")


def base_url(request: Request, public_endpoint: str | None) -> str:
    """scheme://host[:port] of links (public_endpoint wins when configured)."""
    if public_endpoint:
        return public_endpoint.rstrip("/")
    # From the scope directly: building request.url parses the whole URL on every call.
    host = request.headers.get("host")
    if host is None:
        server = request.scope.get("server") or ("localhost", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{request.scope.get('scheme', 'http')}://{host}"
