"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp.server.mcpserver import MCPServer
from opentelemetry.trace import TracerProvider

from bastion.app import create_app
from bastion.live import free_port
from registry.context import RegistryContext
from registry.settings import RegistrySettings
from tests.gateway_harness import Gateway, LiveServer, RemoteUpstream, ops_server, ops_state

GATEWAY_TOKEN = "gateway-own-credential-" + "z" * 20


def start_gateway(
    tmp_path: Path,
    db_url: str,
    *,
    tracer_provider: TracerProvider | None = None,
    builtins: dict[str, MCPServer[Any]] | None = None,
    **overrides: Any,
) -> tuple[Gateway, RegistryContext]:
    port = free_port()
    fields: dict[str, Any] = {
        "data_dir": tmp_path / f"data-{port}",
        "database_url": db_url,
        "jwt_secret": "test-secret-" + "x" * 40,
        "public_url": f"http://127.0.0.1:{port}",
        "health_interval": 0.3,
        "upstream_timeout": 2.0,
        "upstream_token": GATEWAY_TOKEN,
        "gateway_state_keys": ["state-key-" + "k" * 40],
        "registry_cache_ttl": 0.2,
    }
    fields.update(overrides)
    settings = RegistrySettings(**fields)
    ctx = RegistryContext.create(settings)
    servers = {"ops": ops_server(), **(builtins or {})}
    app = create_app(settings, ctx, builtins=servers, tracer_provider=tracer_provider)
    live = LiveServer(app, port).start()
    return Gateway(settings, live), ctx


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def gw(tmp_path: Path, sqlite_url: str) -> Iterator[Gateway]:
    ops_state.paused.clear()
    gateway, ctx = start_gateway(tmp_path, sqlite_url)
    yield gateway
    gateway.live.stop()
    ctx.db.dispose()


@pytest.fixture
def remote() -> Iterator[RemoteUpstream]:
    upstream = RemoteUpstream()
    upstream.live.start()
    yield upstream
    upstream.live.stop()
