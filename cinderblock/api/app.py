"""build_app: the FastAPI application from its parts."""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI

from cinderblock import __version__
from cinderblock.api import faults
from cinderblock.api.auth import authenticator
from cinderblock.api.deps import ApiServices
from cinderblock.api.middleware import CinderMiddleware
from cinderblock.api.routers import cgsnapshots, consistencygroups, group_snapshots, group_types, groups
from cinderblock.api.routers import messages, quotas, services, snapshots, types, versions, volume_actions, volumes

DESCRIPTION = """OpenStack Cinder v3 compatible block storage API.

Every `/v3/...` route is also served as `/v3/{project_id}/...` (project ids match `project_id_regex`).
Send `OpenStack-API-Version: volume 3.N` (3.0–3.71) to choose a microversion; without it 3.0 applies.
"""


def build_app(services_: ApiServices) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync handlers run in anyio's pool; a small pool avoids a convoy on the GIL.
        to_thread.current_default_thread_limiter().total_tokens = services_.settings.api_threads
        yield

    # redirect_slashes=False: `volumes/` is `volumes/{id}` with an empty id, a 404 as in Cinder, not
    # a redirect to the collection (Tempest's *_without_passing_volume_id tests).
    app = FastAPI(title="cinderblock", version=__version__, description=DESCRIPTION,
                  redoc_url=None, exception_handlers=faults.HANDLERS, lifespan=lifespan, redirect_slashes=False)
    app.state.services = services_
    for module in (versions, volumes, volume_actions, snapshots, types, services, quotas, messages,
                   group_types, groups, group_snapshots, consistencygroups, cgsnapshots):
        app.include_router(module.router)
    app.add_middleware(CinderMiddleware, project_id_regex=services_.settings.project_id_regex,
                       policy=services_.policy, authenticator=authenticator(services_.settings),
                       max_body_size=services_.settings.max_request_body_size)
    return app
