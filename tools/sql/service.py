"""The `sql` tool's service: search the knowledge index, describe tables, validate and run governed SQL.

Holds the knowledge index (loaded lazily: the MCP server starts without it) and the engine. Every
query the service runs has passed the guard first and EXPLAIN second; nothing else reaches the engine.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from embeddings.embedder import make_embedder
from embeddings.index import Snapshot
from embeddings.retrieval import QueryHit, RetrievalError, Retriever, TableFilters, TableHit
from embeddings.settings import IndexSettings
from embeddings.store import VectorStore, client_for
from governance.catalog import Catalog
from governance.classification import Classification
from governance.sqlguard import GuardPolicy, GuardResult, Issue, check, transpile
from tools.engines.bounded import MemoryLimit
from tools.sql.engine import EngineError, Rows
from tools.sql.sandbox import SandboxedEngine

log = logging.getLogger("bastion.sql")


class SqlSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_SQL_", extra="ignore", env_file=".env")

    url: str | None = Field(None, description="Engine URL; default: the indexed warehouse (the demo DuckDB)")
    timeout: float = Field(30.0, gt=0, description="Statement timeout, seconds")
    default_limit: int = Field(100, ge=1, description="LIMIT added to a query without one")
    max_rows: int = Field(1000, ge=1, description="Rows returned at most (a larger LIMIT is capped)")
    memory_limit: MemoryLimit | None = Field(
        "2GB",
        description="Memory each engine process of the sql tool may use (its data segment; DuckDB's buffer manager "
        "gets half): a query that needs more fails with memory_exceeded. At least 512MB",
    )
    workers: int = Field(2, ge=1, le=64, description="Engine processes: queries the sql tool runs at once")
    max_result_bytes: int = Field(
        16_000_000, ge=1000, description="A result larger than this (as JSON) is refused: the row cap bounds rows"
    )
    partition_min_rows: int | None = Field(1_000_000, description="Partition filter required from this size")
    warm_up: bool = Field(
        True,
        description="When served (`bastion serve`): load the index and the embedding model in the background at "
        "start, so the first search does not wait for them (a few seconds)",
    )


class SqlError(Exception):
    """A request the service refuses, with a code the MCP layer turns into a tool error."""

    def __init__(self, code: str, message: str, issues: list[Issue] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.issues = issues or []


class ColumnInfo(BaseModel):
    name: str
    type: str
    description: str | None
    glossary_term: str | None
    pii: str | None
    classification: str
    values: list[str] | None = Field(None, description="All values of a low-cardinality column, as stored")


class TableDescription(BaseModel):
    name: str
    description: str | None
    tier: int | None
    owner: str | None
    domain: str | None
    deprecated: bool
    successor: str | None
    partition_column: str | None
    row_count: int | None
    freshness_days: int | None
    retention_days: int | None
    columns: list[ColumnInfo]
    join_keys: list[str]
    common_filters: list[str]
    usage: dict[str, Any]


class ReusableQuery(BaseModel):
    hit: QueryHit
    valid_today: bool
    sql: str | None = Field(None, description="Re-validated SQL (LIMIT applied) when valid today")
    issues: list[Issue] = Field(default_factory=list)


class Validation(BaseModel):
    guard: GuardResult
    transpiled_from: str | None = None
    untranslated: list[str] = Field(default_factory=list)
    explain: str | None = None
    explain_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.guard.ok and self.explain_error is None


class RunResult(BaseModel):
    sql: str
    dialect: str
    tables: list[str]
    warnings: list[str]
    result: Rows


class SqlService:
    def __init__(self, settings: SqlSettings | None = None, index: IndexSettings | None = None) -> None:
        self.settings = settings or SqlSettings()
        self.index = index or IndexSettings()
        self._lock = threading.Lock()
        self._retriever: Retriever | None = None
        self._stamp: tuple[int, int] | None = None
        self._engine: SandboxedEngine | None = None

    # -- lazily loaded parts ---------------------------------------------------------------------

    def retriever(self) -> Retriever:
        """The index as last built: a rebuild (`bastion index`, here or by another process sharing the data
        directory and the Chroma server) is picked up at the next call, the model kept loaded. While a rebuild
        swaps its snapshot in, or if the new one cannot be read, the previous one keeps serving."""
        with self._lock:
            directory = Snapshot.directory(self.index)
            stamp = Snapshot.stamp(directory)
            if self._retriever is not None and (stamp is None or stamp == self._stamp):
                return self._retriever
            try:
                snapshot = Snapshot.read(directory)
            except (OSError, ValueError) as exc:
                if self._retriever is not None:
                    if isinstance(exc, ValueError):
                        self._stamp = stamp  # unreadable, not half-swapped: not re-read until the next build
                    return self._retriever
                if isinstance(exc, FileNotFoundError):
                    raise SqlError("no_index", str(exc)) from None
                raise
            if Snapshot.stamp(directory) != stamp:  # swapped while being read: maybe half old, half new
                if self._retriever is not None:
                    return self._retriever
                snapshot = Snapshot.read(directory)
                stamp = Snapshot.stamp(directory)
            if self._retriever is None:
                embedder = make_embedder(self.index)
                store = VectorStore(client_for(self.index.chroma_url, self.index.chroma_dir()), embedder)
            else:
                embedder, store = self._retriever.embedder, self._retriever.store
                store.forget_counts()
            self._retriever = Retriever(snapshot, store, embedder)
            self._stamp = stamp
            return self._retriever

    def warm(self) -> bool:
        """What the first search needs, loaded now: the index snapshot, the embedding model, the vector store, and
        one query embedded and searched. False (logged) when there is nothing to load yet: the first search says
        why, as it would have."""
        started = time.perf_counter()
        try:
            self.retriever().search_tables("warm up", k=1)
        except Exception as exc:  # best effort, off the request path: a search reports its own errors
            log.info("no warm-up (%s)", str(exc)[:200])
            return False
        log.info("warm-up: index and embedding model loaded in %.1f s", time.perf_counter() - started)
        return True

    @property
    def catalog(self) -> Catalog:
        return self.retriever().catalog

    def engine(self) -> SandboxedEngine:
        """The engine, run by processes of its own with bounded memory (tools/sql/sandbox.py)."""
        with self._lock:
            if self._engine is None:
                url = self.settings.url or self.index.source()
                self._engine = SandboxedEngine(url, memory=self.settings.memory_limit, workers=self.settings.workers)
            return self._engine

    def policy(self, clearance: Classification = Classification.INTERNAL, limit: int | None = None) -> GuardPolicy:
        return GuardPolicy(
            default_limit=min(limit or self.settings.default_limit, self.settings.max_rows),
            max_limit=self.settings.max_rows, partition_filter_min_rows=self.settings.partition_min_rows,
            clearance=clearance,
        )  # fmt: skip

    # -- search and describe -----------------------------------------------------------------------

    def search_tables(self, question: str, k: int = 5, filters: TableFilters | None = None) -> list[TableHit]:
        try:
            return self.retriever().search_tables(question, k=k, filters=filters)
        except RetrievalError as exc:
            raise SqlError("bad_question", str(exc)) from None

    def search_queries(
        self, question: str, k: int = 5, clearance: Classification = Classification.INTERNAL
    ) -> list[ReusableQuery]:
        try:
            hits = self.retriever().search_queries(question, k=k)
        except RetrievalError as exc:
            raise SqlError("bad_question", str(exc)) from None
        return [self.revalidate(hit, clearance) for hit in hits]

    def revalidate(self, hit: QueryHit, clearance: Classification = Classification.INTERNAL) -> ReusableQuery:
        """A past query checked against today's catalog and the caller's policy (asset first, but safe)."""
        validation = self.validate(hit.sql, self.index.query_dialect, clearance, explain=False)
        result = validation.guard
        return ReusableQuery(hit=hit, valid_today=result.ok, sql=result.sql, issues=result.errors)

    def describe_table(self, name: str) -> TableDescription:
        catalog = self.catalog
        table = catalog.table(name.strip())
        if table is None:
            hits = [h.table for h in self.search_tables(name, k=3)] if name.strip() else []
            raise SqlError("unknown_table", f"table {name!r} is not in the catalog"
                           + (f"; similar: {', '.join(hits)}" if hits else ""))  # fmt: skip
        return TableDescription(
            name=table.name, description=table.description, tier=table.tier, owner=table.owner,
            domain=table.domain, deprecated=table.deprecated, successor=table.successor,
            partition_column=table.partition_column, row_count=table.row_count,
            freshness_days=catalog.freshness_days(table), retention_days=table.retention_days,
            columns=[ColumnInfo(name=c.name, type=c.type, description=c.description,
                                glossary_term=c.glossary_term or (t.name if (t := catalog.term_for(c.name)) else None),
                                pii=c.pii, classification=c.classification.value, values=c.values)
                     for c in table.columns],
            join_keys=[f"{k.left} = {k.right} ({k.queries} queries)" for k in table.join_keys],
            common_filters=[f"{f.example} ({f.queries} queries)" for f in table.common_filters],
            usage=table.usage.model_dump(mode="json"),
        )  # fmt: skip

    # -- validate and run ----------------------------------------------------------------------------

    def validate(
        self,
        sql: str,
        dialect: str | None = None,
        clearance: Classification = Classification.INTERNAL,
        limit: int | None = None,
        explain: bool = True,
    ) -> Validation:
        """The guard in the engine's dialect (transpiling from `dialect` first), then EXPLAIN on the engine."""
        engine_dialect = self.engine().dialect
        source = dialect or engine_dialect
        transpiled_from: str | None = None
        untranslated: list[str] = []
        if source != engine_dialect:
            translated = transpile(sql, source, engine_dialect)
            if translated.sql is None:
                guard = GuardResult(ok=False, dialect=source, errors=[Issue(code="syntax_error",
                                    message="; ".join(translated.unsupported))])  # fmt: skip
                return Validation(guard=guard, transpiled_from=source)
            sql, transpiled_from, untranslated = translated.sql, source, translated.unsupported
        guard = check(sql, self.catalog, engine_dialect, self.policy(clearance, limit))
        validation = Validation(guard=guard, transpiled_from=transpiled_from, untranslated=untranslated)
        if guard.ok and guard.sql is not None and explain:
            try:
                validation.explain = self.engine().explain(guard.sql, timeout=self.settings.timeout)
            except EngineError as exc:
                if exc.code != "explain_failed":
                    raise SqlError(exc.code, exc.message) from None
                validation.explain_error = exc.message
        return validation

    def run(
        self,
        sql: str,
        dialect: str | None = None,
        clearance: Classification = Classification.INTERNAL,
        limit: int | None = None,
    ) -> RunResult:
        validation = self.validate(sql, dialect, clearance, limit)
        if not validation.guard.ok or validation.guard.sql is None:
            raise SqlError("refused", "the guard refused the query", validation.guard.errors)
        if validation.explain_error is not None:
            raise SqlError("explain_failed", f"EXPLAIN failed: {validation.explain_error}")
        try:
            rows = self.engine().run(validation.guard.sql, max_rows=self.settings.max_rows,
                                     timeout=self.settings.timeout, expect=validation.guard.output_columns,
                                     max_bytes=self.settings.max_result_bytes)  # fmt: skip
        except EngineError as exc:
            raise SqlError(exc.code, exc.message) from None
        warnings = [w.message for w in validation.guard.warnings] + validation.untranslated
        return RunResult(sql=validation.guard.sql, dialect=validation.guard.dialect, tables=validation.guard.tables,
                         warnings=warnings, result=rows)  # fmt: skip
