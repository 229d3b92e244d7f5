"""Application factory: one ASGI app serving the registry APIs (and, later, the gateway)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import registry.api
from bastion import __version__
from registry.context import RegistryContext
from registry.settings import RegistrySettings


def create_app(settings: RegistrySettings | None = None, ctx: RegistryContext | None = None) -> FastAPI:
    settings = settings or RegistrySettings()
    ctx = ctx or RegistryContext.create(settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.db.dispose()

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="Governed MCP tool registry and gateway.",
        lifespan=lifespan,
    )
    app.state.registry = ctx
    registry.api.install(app)
    return app
