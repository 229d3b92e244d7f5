"""The `parity` MCP server: a thin adapter over the audit library. Read-only.

File inputs are confined to one directory (BASTION_PARITY_DATA_DIR): an MCP caller must not be able
to read arbitrary files through an audit. `table:`/`sql:` inputs read the configured engine, and
pass the same SQL guard as the `sql` tool's `run_sql`, with the caller's clearance: catalog tables only,
no file-reading functions, no PII or above-clearance columns (a `table:` input reads the columns the caller
may see; asking for a withheld one is refused). The audit itself runs in a sandboxed DuckDB (no file access
beyond the inputs), or on Spark when BASTION_PARITY_ENGINE is an sc:// or spark:// URL (files read by
Spark's reader, SQL unable to name a file), and findings show values of personal-data columns as digests,
never raw. Each call runs in a worker process with bounded memory (BASTION_PARITY_MEMORY_LIMIT), never in the
gateway's: an input's SQL passed the guard, but what it builds is not bounded by it (tools/engines/bounded.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bastion_sdk import current_caller
from governance import Classification
from governance.catalog import Catalog
from governance.sqlguard import GuardPolicy, check
from tools.engines import is_spark
from tools.engines.bounded import BoundedError, BoundedPool, MemoryLimit
from tools.parity.model import DEFAULT_PII_KEYS, AuditReport, ParityError, Redactor, Tolerances
from tools.parity.vectors import EmbeddingReport, FunnelReport
from tools.wire import lean

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
SOURCE_HELP = "A file name in the parity data directory (.parquet/.csv/.json), table:NAME, or sql:SELECT …"
MAX_SOURCE = 100_000
Column = Annotated[str, Field(min_length=1, max_length=200, description="A column name")]


class ParitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_PARITY_", extra="ignore", env_file=".env")

    data_dir: Path = Field(Path(".bastion/parity"), description="The only directory file inputs are read from")
    engine: str | None = Field(
        None,
        description="Where audits run and table:/sql: inputs are read: a DuckDB file (default the warehouse), "
        "or a Spark engine — sc://HOST:PORT (Spark Connect) or spark://HOST:PORT (a standalone master), "
        "which then runs every audit_parity call, file inputs included",
    )
    pii_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_PII_KEYS),
        description="Column-name fragments whose values findings show only as digests (with the catalog's PII)",
    )

    memory_limit: MemoryLimit | None = Field(
        "4GB",
        description="Memory each worker process of the parity tool may use (its data segment): a call that needs "
        "more fails with memory_exceeded, and the gateway is untouched. At least 512MB",
    )
    workers: int = Field(2, ge=1, le=64, description="Worker processes: parity calls run at once (more wait)")
    timeout: float = Field(600.0, gt=0, description="A parity call running longer is stopped, seconds")

    @field_validator("pii_keys", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


CatalogLoader = Callable[[], Catalog]


class ParityService:
    """Resolves each input (a confined file, or guarded SQL on the engine) and the redaction for a caller."""

    def __init__(self, settings: ParitySettings | None = None, default_engine: str | None = None,
                 catalog: CatalogLoader | None = None) -> None:  # fmt: skip
        self.settings = settings or ParitySettings()
        self.engine = self.settings.engine or default_engine
        self._catalog = catalog
        self._pool: BoundedPool | None = None
        self._lock = threading.Lock()

    def run(self, target: str, *args: Any, **kwargs: Any) -> Any:
        """`target` (module:function) called in a worker process with bounded memory, its result as plain data:
        an input's `sql:` is what a caller wrote (guarded, but what it builds is not bounded by the guard), and
        its files may be large; neither may take the gateway's memory (tools/engines/bounded.py)."""
        with self._lock:
            if self._pool is None:
                self._pool = BoundedPool(self.settings.memory_limit, self.settings.workers,
                                         "tools.engines.bounded:calls", setting="BASTION_PARITY_MEMORY_LIMIT",
                                         what="the parity call", grace=5.0)  # fmt: skip
        try:
            return self._pool.call(("call", target, args, kwargs), self.settings.timeout)
        except BoundedError as exc:
            if "ParityError" in exc.kinds:
                raise ToolError(exc.message[:2000]) from None
            if "EngineError" in exc.kinds:
                raise ToolError(f"the engine failed: {exc.message[:1000]}") from None
            raise ToolError(f"{exc.code}: {exc.message[:1000]}") from None

    def engine_path(self, engine: str | None) -> str | None:
        """An engine a worker can open from its own directory (a DuckDB file's path made absolute)."""
        if not engine or engine in ("duckdb:", "duckdb://", ":memory:", "duckdb:///:memory:"):
            return engine
        path = engine.removeprefix("duckdb:///")
        return str(Path(path).resolve()) if "://" not in path else engine

    def catalog(self, name: str) -> Catalog:
        if self._catalog is None:
            raise ParityError(name, "table:/sql: inputs need the warehouse catalog to be checked against, and this "
                              "server has none; use files in the parity data directory")  # fmt: skip
        try:
            return self._catalog()
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise ParityError(name, f"the warehouse catalog is not available ({str(exc)[:200]}); build the index "
                              "(bastion index) to audit tables") from None  # fmt: skip

    def source(self, name: str, value: str, needed: list[str] | None = None,
               clearance: Classification = Classification.INTERNAL) -> str:  # fmt: skip
        if value.startswith(("table:", "sql:")):
            if not self.engine:
                raise ParityError(name, "table:/sql: inputs need an engine (BASTION_PARITY_ENGINE)")
            return "sql:" + self.guarded(name, value, [c for c in needed or [] if c], clearance)
        root = self.settings.data_dir.resolve()
        path = (root / value).resolve()
        if root not in path.parents:
            raise ParityError(name, f"files are read from {root} only; {value[:120]!r} is outside it")
        return str(path)

    def guarded(self, name: str, value: str, needed: list[str], clearance: Classification) -> str:
        """The SQL guard, as for run_sql: what the caller may read of the catalog, and nothing else."""
        catalog = self.catalog(name)
        policy = GuardPolicy(clearance=clearance, add_limit=False)
        if value.startswith("table:"):
            reference = value[6:].strip()
            table = catalog.table(reference) if reference else None
            if table is None:
                raise ParityError(name, f"{reference[:120]!r} is not a table of the catalog")
            visible = [c.name for c in table.columns if not c.pii and c.classification.rank <= clearance.rank]
            for column in needed:
                meta = table.column(column)
                if meta is not None and column not in visible:
                    why = (
                        f"it holds personal data ({meta.pii})"
                        if meta.pii
                        else f"it is {meta.classification.value} and your clearance is {clearance.value}"
                    )
                    raise ParityError(name, f"column {column!r} of {table.name} is withheld: {why}", column)
            if not visible:
                raise ParityError(name, f"no column of {table.name} is visible at clearance {clearance.value}")
            sql = "SELECT " + ", ".join(_quoted(c) for c in visible) + f" FROM {table.name}"
        else:
            sql = value[4:].strip()
        result = check(sql, catalog, "duckdb", policy)
        if not result.ok or result.sql is None:
            issues = "; ".join(str(issue) for issue in result.errors[:5])
            raise ParityError(name, f"the SQL guard refused the input: {issues}")
        return result.sql

    def redactor(self, clearance: Classification = Classification.INTERNAL) -> Redactor:
        """Personal-data columns by name, plus every column the catalog (if any) tags PII or above clearance."""
        withheld: set[str] = set()
        if self._catalog is not None:
            try:
                catalog = self._catalog()
            except (FileNotFoundError, OSError, ValueError):
                catalog = None
            if catalog is not None:
                withheld = {c.name for t in catalog.tables.values() for c in t.columns
                            if c.pii or c.classification.rank > clearance.rank}  # fmt: skip
        return Redactor(self.settings.pii_keys, withheld)

    def engine_for(self, *values: str, distributed: bool = False) -> str | None:
        """The engine a call runs on, as its worker opens it (`engine_path`). A Spark engine runs the audit
        whatever its inputs (`distributed`); the
        embedding and funnel checks run on DuckDB, so their table:/sql: inputs need a DuckDB engine."""
        tables = any(v.startswith(("table:", "sql:")) for v in values)
        if is_spark(self.engine):
            if distributed:
                return self.engine
            if tables:
                raise ParityError("engine", "this check runs on DuckDB, and BASTION_PARITY_ENGINE is a Spark "
                                  "engine: give file inputs from the parity data directory")  # fmt: skip
            return None
        return self.engine_path(self.engine) if tables else None


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _clearance() -> Classification:
    caller = current_caller()
    return caller.clearance if caller is not None else Classification.INTERNAL


def build(service: ParityService | None = None) -> MCPServer[Any]:
    service = service or ParityService()
    server: MCPServer[Any] = MCPServer(
        "dev.bastion/parity",
        title="Training/serving parity",
        description="Audit training vs serving feature logs, embeddings and funnel stages; findings with causes.",
    )

    def fail(exc: ParityError) -> ToolError:
        return ToolError(str(exc)[:2000])

    @server.tool(annotations=READ_ONLY)
    def audit_parity(
        training: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        serving: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        keys: list[Column] = Field(min_length=1, max_length=16, description="Join key columns"),
        features: list[Column] | None = Field(
            None, max_length=2000, description="Features to compare; default every non-key column"
        ),
        time_column: Column | None = Field(None, description="Timestamp column: enables the staleness diagnosis"),
        prediction: Column | None = Field(None, description="A score column on both sides: prediction parity"),
        version_columns: list[Column] | None = Field(
            None, max_length=16, description="Model/embedding version stamp columns"
        ),
        precision: str = Field("fp16", pattern="^(fp64|fp32|fp16|bf16)$", description="Lowest stored precision"),
        min_mismatch_rate: float = Field(0.001, ge=0, le=1),
    ) -> AuditReport:
        """Key coverage and duplicates, per-feature equality on joined keys (precision-aware), null/default
        rates, features on one side only, distribution distances, and the likely cause of each finding."""
        clearance = _clearance()
        needed = [*keys, *(features or []), time_column or "", prediction or "", *(version_columns or [])]
        try:
            tolerances = Tolerances(precision=precision, min_mismatch_rate=min_mismatch_rate)
            report = service.run(
                "tools.parity.audit:audit",
                service.source("training", training, needed, clearance),
                service.source("serving", serving, needed, clearance),
                keys,
                features,
                tolerances,
                time_column,
                service.engine_for(training, serving, distributed=True),
                prediction,
                version_columns,
                redactor=service.redactor(clearance),
            )
            return AuditReport.model_validate(report)
        except ParityError as exc:
            raise fail(exc) from None

    @server.tool(name="compare_embeddings", annotations=READ_ONLY)
    def compare_embeddings_tool(
        training: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        serving: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        key: Column = Field(),
        column: Column = Field(description="The embedding column (a list of floats)"),
        version_column: Column | None = None,
        min_cosine: float = Field(0.99, ge=-1, le=1),
    ) -> EmbeddingReport:
        """Embedding parity: version tags, per-entity cosine, norm ratio, nearest-neighbour overlap."""
        clearance = _clearance()
        needed = [key, column, version_column or ""]
        try:
            report = service.run(
                "tools.parity.vectors:compare_embeddings",
                service.source("training", training, needed, clearance),
                service.source("serving", serving, needed, clearance),
                key,
                column,
                version_column,
                min_cosine,
                engine=service.engine_for(training, serving),
                redactor=service.redactor(clearance),
            )
            return EmbeddingReport.model_validate(report)
        except ParityError as exc:
            raise fail(exc) from None

    @server.tool(name="funnel_alignment", annotations=READ_ONLY)
    def funnel_alignment_tool(
        retrieval: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        ranking: str = Field(min_length=1, max_length=MAX_SOURCE, description=SOURCE_HELP),
        request_key: Column = Field(),
        item_key: Column = Field(),
        retrieval_score: Column = Field(),
        ranking_score: Column = Field(),
        k: int = Field(10, ge=1, le=1000),
    ) -> FunnelReport:
        """How much of the ranker's top-K the retrieval stage supplies, and how well the stages agree on order."""
        clearance = _clearance()
        needed = [request_key, item_key, retrieval_score, ranking_score]
        try:
            report = service.run(
                "tools.parity.vectors:funnel_alignment",
                service.source("retrieval", retrieval, needed, clearance),
                service.source("ranking", ranking, needed, clearance),
                request_key,
                item_key,
                retrieval_score,
                ranking_score,
                k,
                engine=service.engine_for(retrieval, ranking),
            )
            return FunnelReport.model_validate(report)
        except ParityError as exc:
            raise fail(exc) from None

    return lean(server)
