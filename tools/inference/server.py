"""The `inference` MCP server: a thin adapter over `InferenceService`. Read-only.

Scoring writes to the feature log (an append-only record of what was served, for parity audits),
which changes no model or registry state: the tools are annotated read-only.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.inference.contracts import ScoreResponse
from tools.inference.features import Candidate, Context, InferenceError, User
from tools.inference.registry import Artifact, ModelRegistry
from tools.wire import lean

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=False)


class InferenceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_INFERENCE_", extra="ignore", env_file=".env")

    models: Path | None = Field(None, description="Model registry directory; default DATA_DIR/models/conversion")
    feature_log: Path | None = Field(None, description="DuckDB feature log; default DATA_DIR/feature_log.duckdb")
    log_requests: bool = Field(True, description="Write every scored request to the feature log")
    log_interval: float = Field(
        5.0, gt=0, le=3600, description="Seconds between feature log writes (sooner when 100,000 rows wait)"
    )
    max_candidates: int = Field(1000, ge=1, le=5000, description="Candidates per request at most")
    threads: int = Field(1, ge=1, le=64, description="Torch intra-op threads (1: no tail latency from contention)")
    dedup: bool = Field(
        True, description="Request-level dedup (user-side work once per request); false scores per candidate (A/B)"
    )

    def under(self, data_dir: Path) -> InferenceSettings:
        return self.model_copy(
            update={
                "models": self.models or data_dir / "models" / "conversion",
                "feature_log": self.feature_log or data_dir / "feature_log.duckdb",
            }
        )


class ModelList(BaseModel):
    serving: str | None
    versions: list[str]


def build(settings: InferenceSettings, data_dir: Path) -> MCPServer[Any]:
    settings = settings.under(data_dir)
    assert settings.models is not None
    models = settings.models
    registry = ModelRegistry(models)

    @functools.cache
    def service() -> Any:
        # Torch loads with the first scored request, not when the gateway builds its servers.
        from tools.inference.serving import InferenceService

        log = settings.feature_log if settings.log_requests else None
        return InferenceService(
            models,
            log,
            settings.max_candidates,
            settings.threads,
            dedup=settings.dedup,
            log_interval=settings.log_interval,
        )

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if service.cache_info().currsize:  # scoring started: the feature log writes what it still holds
                await anyio.to_thread.run_sync(service().close)

    server: MCPServer[Any] = MCPServer(
        "dev.bastion/inference",
        title="Conversion model",
        description="Score ad/item candidates for a user: calibrated p(click) and p(conversion), per surface.",
        lifespan=lifespan,
    )

    @server.tool(annotations=READ_ONLY)
    def score_candidates(
        user: User,
        context: Context,
        candidates: list[Candidate] = Field(description="Item-side features per candidate (1 … the server's cap)"),
        model_version: str | None = Field(None, description="Default: the serving version"),
        schema_hash: str | None = Field(None, description="The feature schema the request was built for"),
    ) -> ScoreResponse:
        """Calibrated p(click) and p(conversion) per candidate; user-side work runs once per request."""
        try:
            response: ScoreResponse = service().score(
                user, context, candidates, model_version, log=True, schema_hash=schema_hash
            )
            return response
        except InferenceError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from None

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    def model_info(model_version: str | None = None) -> Artifact:
        """A version's feature schema (and hash), architecture, calibration, training metrics and code version."""
        try:
            return registry.artifact(model_version)
        except InferenceError as exc:
            raise ToolError(f"{exc.code}: {exc.message}") from None

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False))
    def list_models() -> ModelList:
        """Model versions in the registry and the one that serves."""
        return ModelList(serving=registry.serving(), versions=registry.versions())

    return lean(server)
