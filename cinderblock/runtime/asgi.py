"""The API as an ASGI application, for one process or for each of several uvicorn workers.

`cinderblock api` with `osapi_volume_workers` > 1 hands uvicorn the import string
`cinderblock.runtime.asgi:create_app` (uvicorn starts workers by importing the app, so nothing can
be handed over as an object). cli.py first puts its own command line in CINDERBLOCK_API_ARGV; each
worker parses it again, so every worker reads the same configuration as the command, and builds its
own database engine and broker connection (nothing is shared across processes).
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from cinderblock.runtime.wiring import Core, build_api, build_core

ENV = "CINDERBLOCK_API_ARGV"  # set by cli.py


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


def create_app() -> FastAPI:
    """uvicorn's factory in each worker process."""
    from cinderblock import cli  # cli imports this module

    argv = json.loads(os.environ[ENV])
    args = cli.parse(argv)
    cli.configure_logging(args.debug)
    return build(build_core(cli.settings_of(args)))
