"""The `parity` MCP server: a thin adapter over the audit library. Read-only.

File inputs are confined to one directory (BASTION_PARITY_DATA_DIR): an MCP caller must not be able
to read arbitrary files through an audit. `table:`/`sql:` inputs read the configured DuckDB engine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.parity.audit import audit
from tools.parity.model import AuditReport, ParityError, Tolerances
from tools.parity.vectors import EmbeddingReport, FunnelReport, compare_embeddings, funnel_alignment

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
SOURCE_HELP = "A file name in the parity data directory (.parquet/.csv/.json), table:NAME, or sql:SELECT …"


class ParitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_PARITY_", extra="ignore", env_file=".env")

    data_dir: Path = Field(Path(".bastion/parity"), description="The only directory file inputs are read from")
    engine: str | None = Field(None, description="DuckDB file that table:/sql: inputs read; default the warehouse")


class ParityService:
    def __init__(self, settings: ParitySettings | None = None, default_engine: str | None = None) -> None:
        self.settings = settings or ParitySettings()
        self.engine = self.settings.engine or default_engine

    def source(self, name: str, value: str) -> str:
        if value.startswith(("table:", "sql:")):
            if not self.engine:
                raise ParityError(name, "table:/sql: inputs need an engine (BASTION_PARITY_ENGINE)")
            return value
        root = self.settings.data_dir.resolve()
        path = (root / value).resolve()
        if root not in path.parents:
            raise ParityError(name, f"files are read from {root} only; {value!r} is outside it")
        return str(path)

    def engine_for(self, *values: str) -> str | None:
        return self.engine if any(v.startswith(("table:", "sql:")) for v in values) else None


def build(service: ParityService | None = None) -> MCPServer[Any]:
    service = service or ParityService()
    server: MCPServer[Any] = MCPServer(
        "dev.bastion/parity",
        title="Training/serving parity",
        description="Audit training vs serving feature logs, embeddings and funnel stages; findings with causes.",
    )

    def fail(exc: ParityError) -> ToolError:
        return ToolError(str(exc))

    @server.tool(annotations=READ_ONLY)
    def audit_parity(
        training: str = Field(description=SOURCE_HELP),
        serving: str = Field(description=SOURCE_HELP),
        keys: list[str] = Field(min_length=1, description="Join key columns"),
        features: list[str] | None = Field(None, description="Features to compare; default every non-key column"),
        time_column: str | None = Field(None, description="Timestamp column: enables the staleness diagnosis"),
        prediction: str | None = Field(None, description="A score column on both sides: prediction parity"),
        version_columns: list[str] | None = Field(None, description="Model/embedding version stamp columns"),
        precision: str = Field("fp16", pattern="^(fp64|fp32|fp16|bf16)$", description="Lowest stored precision"),
        min_mismatch_rate: float = Field(0.001, ge=0, le=1),
    ) -> AuditReport:
        """Key coverage and duplicates, per-feature equality on joined keys (precision-aware), null/default
        rates, features on one side only, distribution distances, and the likely cause of each finding."""
        try:
            tolerances = Tolerances(precision=precision, min_mismatch_rate=min_mismatch_rate)
            return audit(
                service.source("training", training),
                service.source("serving", serving),
                keys,
                features,
                tolerances,
                time_column,
                service.engine_for(training, serving),
                prediction,
                version_columns,
            )
        except ParityError as exc:
            raise fail(exc) from None

    @server.tool(name="compare_embeddings", annotations=READ_ONLY)
    def compare_embeddings_tool(
        training: str = Field(description=SOURCE_HELP),
        serving: str = Field(description=SOURCE_HELP),
        key: str = Field(min_length=1),
        column: str = Field(min_length=1, description="The embedding column (a list of floats)"),
        version_column: str | None = None,
        min_cosine: float = Field(0.99, ge=-1, le=1),
    ) -> EmbeddingReport:
        """Embedding parity: version tags, per-entity cosine, norm ratio, nearest-neighbour overlap."""
        try:
            return compare_embeddings(
                service.source("training", training),
                service.source("serving", serving),
                key,
                column,
                version_column,
                min_cosine,
                engine=service.engine_for(training, serving),
            )
        except ParityError as exc:
            raise fail(exc) from None

    @server.tool(name="funnel_alignment", annotations=READ_ONLY)
    def funnel_alignment_tool(
        retrieval: str = Field(description=SOURCE_HELP),
        ranking: str = Field(description=SOURCE_HELP),
        request_key: str = Field(min_length=1),
        item_key: str = Field(min_length=1),
        retrieval_score: str = Field(min_length=1),
        ranking_score: str = Field(min_length=1),
        k: int = Field(10, ge=1, le=1000),
    ) -> FunnelReport:
        """How much of the ranker's top-K the retrieval stage supplies, and how well the stages agree on order."""
        try:
            return funnel_alignment(
                service.source("retrieval", retrieval),
                service.source("ranking", ranking),
                request_key,
                item_key,
                retrieval_score,
                ranking_score,
                k,
                engine=service.engine_for(retrieval, ranking),
            )
        except ParityError as exc:
            raise fail(exc) from None

    return server
