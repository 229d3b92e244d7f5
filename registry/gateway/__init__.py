"""The gateway: one governed MCP endpoint for every approved tool a caller may use."""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.routing import Route

from governance.assertion import JWKS_PATH
from registry.context import RegistryContext
from registry.errors import Forbidden, RegistryError
from registry.gateway.audit_writer import AuditWriter
from registry.gateway.core import GatewayCore
from registry.gateway.heap import HeapFreezer
from registry.gateway.http import WELL_KNOWN, GatewayEndpoint, resource_metadata
from registry.gateway.identity import UpstreamIdentity
from registry.gateway.metrics import GatewayMetrics
from registry.gateway.ratelimit import create_limiter
from registry.gateway.server import SessionTracker, build_server
from registry.gateway.tracing import Tracing
from registry.gateway.upstreams import BuiltinUpstream, RemoteUpstream, Upstream
from registry.gateway.wirejson import install as install_fast_json
from registry.schemas.errors import ErrorOut
from registry.services.facts import ServerEntry

log = logging.getLogger("bastion.gateway")

METHODS = ["GET", "POST", "DELETE"]


class Gateway:
    def __init__(
        self,
        ctx: RegistryContext,
        builtins: dict[str, MCPServer[Any]],
        version: str = "",
        freeze_heap: bool = False,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        settings = ctx.settings
        # Traces: the provider given, else one the OTEL_* variables describe, else none (the default).
        self.tracing = Tracing.create(tracer_provider, version)
        self.heap = HeapFreezer(freeze_heap)
        self.ctx = ctx
        self.metrics = GatewayMetrics()
        self.audit = AuditWriter(ctx.db, spool=settings.data_dir / "audit-spool", metrics=self.metrics,
                                 max_rows=settings.audit_queue_max_rows)  # fmt: skip
        self.limiter = create_limiter(settings.redis_url)
        token = settings.upstream_token.get_secret_value() if settings.upstream_token else None
        self.identity = UpstreamIdentity.from_settings(settings)

        def remote(entry: ServerEntry) -> Upstream:
            assert entry.endpoint is not None
            return RemoteUpstream(
                entry.name,
                entry.endpoint,
                token,
                settings.upstream_timeout,
                self.identity,
                entry.identity,
                self.tracing,
            )

        upstreams: dict[str, Upstream] = {
            name: BuiltinUpstream(name, server, self.heap) for name, server in builtins.items()
        }
        self.core = GatewayCore(ctx, upstreams, self.limiter, self.audit, self.metrics, remote, self.tracing)
        self.sessions = SessionTracker(self.core)
        self.server = build_server(self.core, self.sessions, version)
        install_fast_json()  # orjson in the SDK's transport (registry/gateway/wirejson.py)
        self.manager = StreamableHTTPSessionManager(self.server, stateless=settings.gateway_stateless)
        self.endpoint = GatewayEndpoint(self.core, self.manager)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as builtins, self.manager.run(), anyio.create_task_group() as tg:
            for upstream in self.core.builtins.values():
                if isinstance(upstream, BuiltinUpstream):
                    await builtins.enter_async_context(upstream.running())
            self.core.task_group = tg
            await tg.start(self.audit.run)
            tg.start_soon(self._health_loop)
            tg.start_soon(self.sessions.run)
            self.heap.freeze("started")
            try:
                yield
            finally:
                for upstream in [*self.core.builtins.values(), *self.core.remotes.values()]:
                    await upstream.close()
                await self.identity.close()
                if self.tracing.owned:
                    await anyio.to_thread.run_sync(self.tracing.shutdown)
                tg.cancel_scope.cancel()
                self.heap.release()
        await self.limiter.close()

    async def _health_loop(self) -> None:
        while True:
            try:
                await self.core.probe()
            except Exception:
                log.exception("health probe round failed")
            await anyio.sleep(self.ctx.settings.health_interval)

    def install(self, app: FastAPI) -> None:
        # First in the route table: the MCP endpoints are the hottest paths by far.
        app.router.routes.insert(0, Route("/mcp", endpoint=self.endpoint, methods=METHODS))
        app.router.routes.insert(1, Route("/servers/{short}/mcp", endpoint=self.endpoint, methods=METHODS))
        app.state.flush_audit = self.audit.flush
        app.state.gateway = self

        @app.get(WELL_KNOWN, tags=["gateway"], summary="RFC 9728 metadata of the gateway (/mcp)")
        @app.get(WELL_KNOWN + "/mcp", tags=["gateway"], include_in_schema=False)
        async def protected_resource() -> JSONResponse:
            return JSONResponse(resource_metadata(self.core, "/mcp"))

        @app.get(WELL_KNOWN + "/servers/{short}/mcp", tags=["gateway"], summary="RFC 9728 metadata of one server")
        async def protected_server(short: str) -> JSONResponse:
            return JSONResponse(resource_metadata(self.core, f"/servers/{short}/mcp"))

        @app.get(JWKS_PATH, tags=["gateway"], summary="Public keys of the caller assertions sent to upstreams (JWKS)")
        async def jwks() -> JSONResponse:
            # Upstreams cache it; a rotated key stays listed while BASTION_ASSERTION_KEYS names it.
            return JSONResponse(self.identity.signer.jwks(), headers={"Cache-Control": "public, max-age=300"})

        @app.get(
            "/metrics",
            tags=["gateway"],
            summary="Prometheus metrics (BASTION_METRICS_TOKEN or an admin credential)",
            response_class=Response,
            responses={
                200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                      "description": "Metrics in the Prometheus text format"},
                401: {"model": ErrorOut, "description": "No valid credential"},
                403: {"model": ErrorOut, "description": "Neither the metrics token nor an admin credential"},
            },
        )  # fmt: skip
        async def metrics(request: Request) -> Response:
            denial = await self.metrics_access(request.headers.get("authorization"))
            if denial is not None:
                return denial
            # The gateway's own series, then the process-wide ones (the builtins' own, e.g. the feature log's lag).
            body = generate_latest(self.metrics.registry) + generate_latest(REGISTRY)
            return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def metrics_access(self, header: str | None) -> Response | None:
        """Metrics name every server and tool and show who is busy: the metrics token or an admin only."""
        token = self.ctx.settings.metrics_token
        if token is not None and header is not None:
            expected = f"Bearer {token.get_secret_value()}".encode()
            if hmac.compare_digest(header.encode("utf-8", "replace"), expected):
                return None
        try:
            principal = await self.endpoint.authenticate(header)
        except RegistryError as exc:
            headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if exc.status == 401 else None
            return JSONResponse(exc.body(), status_code=exc.status, headers=headers)
        if not principal.is_admin:
            denied = Forbidden("metrics are for the metrics token (BASTION_METRICS_TOKEN) or admins")
            return JSONResponse(denied.body(), status_code=403)
        return None


__all__ = ["Gateway"]
