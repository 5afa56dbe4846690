"""The API as an ASGI application, for one process or for each of several uvicorn workers.

`cinderblock api` with `osapi_volume_workers` > 1 hands uvicorn the import string
`cinderblock.cli:create_app` (uvicorn starts workers by importing the app, so nothing can be handed
over as an object): each worker parses the command line again there and builds its app here.
"""
from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from cinderblock.runtime.wiring import Core, build_api


def build(core: Core) -> FastAPI:
    """The API of core; core's connections close when the server shuts the app down."""
    app = build_api(core)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        async with inner(application) as state:
            yield state
        core.close()

    app.router.lifespan_context = lifespan
    return app

