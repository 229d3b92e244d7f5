"""Application factory: one ASGI app serving the registry APIs and the MCP gateway."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from opentelemetry.trace import TracerProvider

import registry.api
import registry.api.docs
from bastion import __version__
from bastion.builtins import build_all
from bastion.chat_api import ChatRuntime
from bastion.chat_api import router as chat_router
from registry.context import RegistryContext
from registry.gateway import Gateway
from registry.settings import RegistrySettings


def create_app(
    settings: RegistrySettings | None = None,
    ctx: RegistryContext | None = None,
    builtins: dict[str, MCPServer[Any]] | None = None,
    freeze_heap: bool = False,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    settings = settings or RegistrySettings()
    ctx = ctx or RegistryContext.create(settings)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = Gateway(
        ctx,
        builtins if builtins is not None else build_all(ctx),
        version=__version__,
        freeze_heap=freeze_heap,
        tracer_provider=tracer_provider,
    )

    chat = ChatRuntime(ctx)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with gateway.run(), anyio.create_task_group() as tasks:
            await tasks.start(chat.run)
            yield
            tasks.cancel_scope.cancel()
        ctx.db.dispose()

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="Governed MCP tool registry and gateway.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets: registry.api.docs
        redoc_url=None,
    )
    app.state.registry = ctx
    registry.api.install(app)
    registry.api.docs.install(app)
    gateway.install(app)
    app.state.chat = chat
    app.include_router(chat_router)
    return app
