"""The `sql` MCP server: a thin adapter over `SqlService` (and, when wired in, the Text-to-SQL agent).

`ask` is injected by the composition root (`bastion.builtins`): tools do not depend on agents.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from bastion_sdk import current_caller
from embeddings.retrieval import MAX_QUESTION, TableFilters, TableHit
from governance import Classification
from governance.sqlguard import SUPPORTED_DIALECTS, Issue
from tools.sql.service import ReusableQuery, RunResult, SqlError, SqlService, TableDescription, Validation
from tools.wire import lean

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
MAX_SQL = 100_000


class TablesResponse(BaseModel):
    tables: list[TableHit]


class QueriesResponse(BaseModel):
    queries: list[ReusableQuery] = Field(description="Most trustworthy first; each re-validated against today")


class ValidationResponse(BaseModel):
    ok: bool = Field(description="Passed the guard and EXPLAIN")
    sql: str | None = Field(description="The query as it would run (engine dialect, LIMIT applied)")
    dialect: str
    errors: list[Issue]
    warnings: list[Issue]
    tables: list[str]
    columns: list[str]
    transpiled_from: str | None = None
    untranslated: list[str] = Field(default_factory=list, description="Constructs the engine dialect lacks")
    explain: str | None = None
    explain_error: str | None = None


Asker = Callable[[str, bool, Classification, str | None], BaseModel]


def _clearance() -> Classification:
    caller = current_caller()
    return caller.clearance if caller is not None else Classification.INTERNAL


def _fail(exc: SqlError) -> ToolError:
    details = "".join(f"\n- {issue}" for issue in exc.issues)
    return ToolError(f"{exc.code}: {exc.message}{details}")


def _check_dialect(dialect: str | None) -> None:
    if dialect is not None and dialect not in SUPPORTED_DIALECTS:
        raise ToolError(f"dialect: {dialect!r} is not supported; use one of {', '.join(SUPPORTED_DIALECTS)}")


def build(
    service: SqlService | None = None, asker: Asker | None = None, answer_model: type[BaseModel] | None = None
) -> MCPServer[Any]:
    service = service or SqlService()

    @asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[None]:
        if service.settings.warm_up:  # a daemon: a stop does not wait for a model still loading
            threading.Thread(target=service.warm, name="bastion-sql-warm-up", daemon=True).start()
        yield

    server: MCPServer[Any] = MCPServer(
        "dev.bastion/sql",
        title="Governed SQL",
        description="Find tables and verified past queries, validate SQL against governance, run read-only SQL.",
        lifespan=lifespan,
    )

    @server.tool(annotations=READ_ONLY)
    def search_tables(
        question: str = Field(max_length=MAX_QUESTION, description="What you want to know, in words"),
        k: int = Field(5, ge=1, le=50),
        tiers: list[int] | None = Field(None, description="Only these tiers (1 production … 3 staging)"),
        domains: list[str] | None = None,
        include_deprecated: bool = True,
        exclude_pii: bool = False,
    ) -> TablesResponse:
        """Tables that answer the question, ranked by meaning and governance (tier, freshness, ownership,
        documentation, usage), each with the reasons for its rank."""
        filters = TableFilters(tiers=tiers, domains=domains, include_deprecated=include_deprecated,
                               exclude_pii=exclude_pii)  # fmt: skip
        try:
            return TablesResponse(tables=service.search_tables(question, k, filters))
        except SqlError as exc:
            raise _fail(exc) from None

    @server.tool(annotations=READ_ONLY)
    def search_queries(
        question: str = Field(max_length=MAX_QUESTION), k: int = Field(5, ge=1, le=50)
    ) -> QueriesResponse:
        """Verified past queries whose analytical questions match, re-validated against today's schema."""
        try:
            return QueriesResponse(queries=service.search_queries(question, k, _clearance()))
        except SqlError as exc:
            raise _fail(exc) from None

    @server.tool(annotations=READ_ONLY)
    def describe_table(name: str = Field(min_length=1, max_length=300, description="schema.table")) -> TableDescription:
        """Columns (types, descriptions, glossary terms, PII tags, real values of low-cardinality columns),
        tier, owner, freshness, deprecation, join keys and filters mined from history."""
        try:
            return service.describe_table(name)
        except SqlError as exc:
            raise _fail(exc) from None

    @server.tool(annotations=READ_ONLY)
    def validate_sql(
        sql: str = Field(min_length=1, max_length=MAX_SQL),
        dialect: str | None = Field(None, description="The SQL's dialect; default: the engine's"),
    ) -> ValidationResponse:
        """Check a query without running it: one read-only statement, real tables and columns, no PII or
        data above your clearance, no deprecated tables, a partition filter on large tables, then EXPLAIN.
        Errors carry a code, a location and a hint."""
        _check_dialect(dialect)
        try:
            validation: Validation = service.validate(sql, dialect, _clearance())
        except SqlError as exc:
            raise _fail(exc) from None
        guard = validation.guard
        return ValidationResponse(
            ok=validation.ok, sql=guard.sql, dialect=guard.dialect, errors=guard.errors, warnings=guard.warnings,
            tables=guard.tables, columns=guard.columns, transpiled_from=validation.transpiled_from,
            untranslated=validation.untranslated, explain=validation.explain, explain_error=validation.explain_error,
        )  # fmt: skip

    @server.tool(annotations=READ_ONLY)
    def run_sql(
        sql: str = Field(min_length=1, max_length=MAX_SQL),
        dialect: str | None = None,
        limit: int | None = Field(None, ge=1, le=10_000, description="Rows to return (capped by the server)"),
    ) -> RunResult:
        """Run one read-only query that passes the guard, after EXPLAIN, with a statement timeout and a row cap."""
        _check_dialect(dialect)
        try:
            return service.run(sql, dialect, _clearance(), limit)
        except SqlError as exc:
            raise _fail(exc) from None

    if asker is not None:
        ask_impl = asker

        def ask(
            question: str = Field(min_length=1, max_length=MAX_QUESTION),
            execute: bool = Field(False, description="Also run the query and return up to 100 rows"),
            dialect: str | None = Field(None, description="Dialect of the SQL to return; default: the engine's"),
        ) -> Any:
            """Question in words → SQL you can trust: verified past queries first, otherwise generated by the
            configured LLM, validated and EXPLAINed (retried with the errors). Without an LLM: retrieval only."""
            _check_dialect(dialect)
            try:
                return ask_impl(question, execute, _clearance(), dialect)
            except SqlError as exc:
                raise _fail(exc) from None

        if answer_model is not None:
            ask.__annotations__["return"] = answer_model  # the output schema comes from the agent's model
        annotations = ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=True
        )
        server.tool(annotations=annotations)(ask)

    return lean(server)
