"""The `sql` tool's engine in processes of its own, with their memory bounded (tools/engines/bounded.py).

A query that needs more than `BASTION_SQL_MEMORY_LIMIT` fails in its worker with `memory_exceeded`; the
gateway process never holds more than a result the size caps let through. Each worker keeps one `Engine`
(one DuckDB instance or Spark Connect session, opened on its first query); DuckDB's buffer manager gets half
the bound, and as much disk to spill to.
"""

from __future__ import annotations

from typing import Any

from tools.engines.bounded import BoundedError, BoundedPool, half_the_data_limit, size_bytes
from tools.sql.engine import Engine, EngineError, Rows, dialect_of

__all__ = ["SandboxedEngine", "size_bytes"]

SETTING = "BASTION_SQL_MEMORY_LIMIT"


class _Queries:
    """A worker's handler: its engine, and the two requests the sql tool makes of it."""

    def __init__(self, url: str) -> None:
        self.engine = Engine(url, memory=half_the_data_limit())

    def __call__(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        try:
            if request[0] == "explain":
                return ("ok", self.engine.explain(request[1], timeout=request[2]))
            sql, max_rows, timeout, expect, max_bytes = request[1:]
            rows = self.engine.run(sql, max_rows, timeout, expect=expect, max_bytes=max_bytes)
            return ("ok", rows.model_dump())  # plain values only (`_jsonable`)
        except EngineError as exc:
            return ("error", exc.code, exc.message)

    def close(self) -> None:
        self.engine.close()


class SandboxedEngine:
    """`Engine`'s operations, run by worker processes with bounded memory (one query per worker at a time)."""

    def __init__(self, url: str, memory: str | None = None, workers: int = 2) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.workers = workers
        self.pool = BoundedPool(memory, workers, "tools.sql.sandbox:_Queries", (url,), setting=SETTING,
                                what="the query")  # fmt: skip

    def describe(self) -> str:
        return Engine(self.url).describe()

    def explain(self, sql: str, timeout: float = 30.0) -> str:
        return str(self._call(("explain", sql, timeout), timeout))

    def run(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None = None, max_bytes: int | None = None
    ) -> Rows:
        # The worker checked the result's JSON size; its message may be somewhat larger (pickle's framing).
        most = None if max_bytes is None else 2 * max_bytes + 1_000_000
        return Rows.model_validate(self._call(("run", sql, max_rows, timeout, expect, max_bytes), timeout, most))

    def _call(self, request: tuple[Any, ...], timeout: float, most: int | None = None) -> Any:
        try:
            return self.pool.call(request, timeout, most)
        except BoundedError as exc:
            raise EngineError(*_sql_error(exc, timeout, self.workers)) from None

    def pids(self) -> list[int]:
        return self.pool.pids()

    def close(self) -> None:
        self.pool.close()


def _sql_error(exc: BoundedError, timeout: float, workers: int) -> tuple[str, str]:
    """The sql tool's codes and wording for what went wrong around a query."""
    if exc.code == "busy":
        return "busy", (f"the sql tool was running {workers} queries for {timeout:g}s; try again later "
                        "(BASTION_SQL_WORKERS)")  # fmt: skip
    if exc.code == "reply_too_large":
        return "result_too_large", ("the result is larger than the sql tool returns (BASTION_SQL_MAX_RESULT_BYTES): "
                                    "select fewer or narrower columns")  # fmt: skip
    if exc.code == "failed":
        return "execution_failed", exc.message
    return exc.code, exc.message.replace("the worker process", "the sql tool's engine process")
