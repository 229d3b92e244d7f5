"""The query engine adapter: DuckDB files and Spark through the engine layer (`tools.engines`), SQLite files and
any SQLAlchemy URL (PostgreSQL, Trino, MySQL) through SQLAlchemy.

Only this module talks to an engine. It runs what the guard passed — EXPLAIN first, then the query
with a statement timeout and a row cap — and turns engine failures into `EngineError`s with a code.
The engine layer runs the query as written, in the engine's dialect (the one the guard checked):
DuckDB (a file, `duckdb:///PATH`) or Spark (`sc://HOST:PORT` Spark Connect, `spark://HOST:PORT` a master).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field

from tools import engines


class EngineError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Rows(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int = Field(description="Rows returned (after the cap)")
    truncated: bool = Field(description="More rows existed than the cap allowed")
    elapsed_ms: float


# Dialects whose engines the engine layer runs (the rest go through SQLAlchemy).
LAYER_DIALECTS = ("duckdb", "spark")


def dialect_of(url: str) -> str:
    """The guard's dialect for an engine URL; an unknown scheme stays as it is (the guard refuses it)."""
    if engines.is_spark(url):
        return "spark"
    if "://" not in url:
        path = Path(url)
        if path.suffix in (".sqlite", ".sqlite3", ".db") and path.exists():
            with path.open("rb") as f:
                if f.read(16).startswith(b"SQLite format 3"):
                    return "sqlite"
        return "duckdb"
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    return {"postgresql": "postgres", "postgres": "postgres", "trino": "trino", "mysql": "mysql",
            "mariadb": "mysql", "sqlite": "sqlite", "duckdb": "duckdb"}.get(scheme, scheme)  # fmt: skip


def _jsonable(value: Any) -> Any:
    """A value as JSON holds it: plain numbers, strings, lists and objects (an engine's LIST of DATE too)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime | dt.time | dt.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def check_shape(columns: list[str], expect: list[str] | None) -> None:
    """The result has the columns the guard checked, or nothing is returned.

    The guard expands `*` against the catalog; if the engine's table has gained a column since the catalog
    was indexed, `SELECT *` would return a column nobody checked (a new PII column, say). Unnamed
    expressions (`_col_N`) are compared by position only: engines name them differently.
    """
    if expect is None:
        return
    drift = len(columns) != len(expect) or any(
        not want.startswith("_col_") and got.lower() != want.lower() for got, want in zip(columns, expect, strict=False)
    )
    if drift:
        shown = ", ".join(columns[:20]) + (", …" if len(columns) > 20 else "")
        raise EngineError(
            "catalog_drift",
            f"the engine returned {len(columns)} columns ({shown}) where the guard checked {len(expect)}: the "
            "catalog is out of date with the warehouse; nothing was returned (rebuild the index: bastion index)",
        )


def _layer_error(exc: engines.EngineError, timeout: float) -> EngineError:
    """An engine layer failure with the codes the SQLAlchemy path gives (the same for every engine)."""
    if isinstance(exc, engines.EngineTimeout):
        return EngineError("timeout", f"the query ran longer than {timeout:g}s and was cancelled")
    if isinstance(exc, engines.EngineUnavailable):
        return EngineError("engine_down", f"the engine is unreachable: {exc}")
    if "Out of Memory" in str(exc):  # DuckDB, at its memory limit or at its process's (tools/sql/sandbox.py)
        return _memory_error()
    return EngineError("execution_failed", str(exc))


def _memory_error() -> EngineError:
    return EngineError("memory_exceeded", "the query needed more memory than the sql tool allows "
                       "(BASTION_SQL_MEMORY_LIMIT): select fewer or narrower values, or aggregate")  # fmt: skip


def _values(rows: list[list[Any]], most: int) -> int:
    """JSON values in `rows` (each list, object, key and scalar), counted up to just past `most`."""
    count, stack = 0, [rows]
    while stack and count <= most:
        item = stack.pop()
        count += 1
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            count += len(item)
            stack.extend(item.values())
    return count


def check_size(rows: list[list[Any]], max_bytes: int | None) -> None:
    """A result wider than `max_bytes` as JSON is refused (the row cap bounds rows, not their width), and so is
    one of more than `max_bytes / 16` values: a million empty lists are 3 MB of JSON and 80 MB of objects."""
    if max_bytes is None:
        return
    most = max_bytes // 16
    if _values(rows, most) > most:
        message = f"the result holds more than {most:,} values; at most that many are returned "
        raise EngineError("result_too_large", message + "(BASTION_SQL_MAX_RESULT_BYTES / 16): select fewer values, "
                          "or aggregate")  # fmt: skip
    try:
        size = len(orjson.dumps(rows, default=str))
    except orjson.JSONEncodeError:  # an integer beyond 64 bits (DuckDB's HUGEINT): the standard library's JSON
        size = len(json.dumps(rows, default=str))
    if size > max_bytes:
        raise EngineError("result_too_large", f"the result is {size:,} bytes as JSON; at most {max_bytes:,} are "
                          "returned (BASTION_SQL_MAX_RESULT_BYTES): select fewer or narrower columns, "
                          "or aggregate")  # fmt: skip


class Engine:
    def __init__(self, url: str, memory: str | None = None) -> None:
        self.url = url
        self.memory = memory  # the engine's own memory bound, where it runs in this process (DuckDB)
        self.dialect = dialect_of(url)
        self._layer: engines.Engine | None = None
        self._sqlalchemy: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        if "://" not in self.url:
            return f"{self.dialect} file {self.url}"
        if self.dialect in LAYER_DIALECTS:
            return engines.display_url(self.url)
        from sqlalchemy.engine import make_url

        return make_url(self.url).render_as_string(hide_password=True)

    # -- connections ---------------------------------------------------------------------------

    def _engine_layer(self) -> engines.Engine:
        with self._lock:
            if self._layer is None:
                try:
                    layer = engines.connect(self.url)  # a DuckDB file is attached read-only
                except engines.EngineError as exc:
                    raise EngineError("engine_down", f"cannot open {engines.display_url(self.url)}: {exc}") from None
                try:
                    # Behind the guard, the engine itself lets no query read a file: what the guard's function
                    # lists miss, the engine refuses.
                    layer.confine([], memory=self.memory)
                except engines.EngineError as exc:
                    layer.close()
                    raise EngineError("engine_down", f"cannot confine {engines.display_url(self.url)}: {exc}") from None
                self._layer = layer
            return self._layer

    def _engine(self) -> Any:
        with self._lock:
            if self._sqlalchemy is None:
                from sqlalchemy import create_engine

                url = self.url
                if url.startswith("postgresql://") or url.startswith("postgres://"):
                    url = "postgresql+psycopg://" + url.split("://", 1)[1]
                elif "://" not in url:
                    url = f"sqlite:///{url}"
                self._sqlalchemy = create_engine(url, pool_pre_ping=True)
            return self._sqlalchemy

    # -- operations ----------------------------------------------------------------------------

    def explain(self, sql: str, timeout: float = 30.0) -> str:
        prefix = "EXPLAIN QUERY PLAN " if self.dialect == "sqlite" else "EXPLAIN "
        try:
            if self.dialect in LAYER_DIALECTS:
                try:
                    return self._engine_layer().plan_native(sql, timeout)[:4000]
                except engines.EngineError as exc:
                    raise _layer_error(exc, timeout) from None
            result = self._execute(prefix + sql, max_rows=200, timeout=timeout)
        except EngineError as exc:
            if exc.code == "execution_failed":
                raise EngineError("explain_failed", exc.message) from None
            raise
        return "\n".join(" ".join(str(v) for v in row) for row in result.rows)[:4000]

    def run(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None = None, max_bytes: int | None = None
    ) -> Rows:
        """Run `sql`; with `expect` (the guard's output columns), refuse a result shaped differently, and with
        `max_bytes` one wider than that as JSON."""
        return self._execute(sql, max_rows=max_rows, timeout=timeout, expect=expect, max_bytes=max_bytes)

    def _execute(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None = None, max_bytes: int | None = None
    ) -> Rows:
        started = time.perf_counter()
        if self.dialect in LAYER_DIALECTS:
            columns, rows = self._run_layer(sql, max_rows, timeout, expect)
        else:
            columns, rows = self._run_sqlalchemy(sql, max_rows, timeout, expect)
        truncated = len(rows) > max_rows
        values = [[_jsonable(v) for v in row] for row in rows[:max_rows]]
        check_size(values, max_bytes)
        return Rows(columns=columns, rows=values, row_count=len(values),
                    truncated=truncated, elapsed_ms=round((time.perf_counter() - started) * 1000, 2))  # fmt: skip

    def _run_layer(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None
    ) -> tuple[list[str], list[Any]]:
        layer = self._engine_layer()
        try:
            fetched = layer.fetch_native(sql, max_rows, timeout, check=lambda columns: check_shape(columns, expect))
        except engines.EngineError as exc:
            raise _layer_error(exc, timeout) from None
        return fetched.columns, [list(row) for row in fetched.rows]

    def _run_sqlalchemy(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None
    ) -> tuple[list[str], list[Any]]:
        from sqlalchemy import text
        from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

        try:
            with self._engine().connect() as conn:
                if self.dialect == "postgres":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
                elif self.dialect == "mysql":
                    conn.exec_driver_sql(f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
                result = conn.execute(text(sql.replace(":", r"\:")))
                columns = list(result.keys())
                check_shape(columns, expect)
                rows = [list(r) for r in result.fetchmany(max_rows + 1)]
                conn.rollback()
                return columns, rows
        except OperationalError as exc:
            message = str(exc.orig if exc.orig is not None else exc).split("\n")[0][:500]
            if "timeout" in message.lower() or "canceling statement" in message.lower():
                raise EngineError("timeout", f"the query ran longer than {timeout:g}s and was cancelled") from None
            if exc.connection_invalidated or "connect" in message.lower():
                raise EngineError("engine_down", f"the engine is unreachable: {message}") from None
            if "out of memory" in message.lower():  # SQLite, at its process's limit (tools/sql/sandbox.py)
                raise _memory_error() from None
            raise EngineError("execution_failed", message) from None
        except DBAPIError as exc:
            message = str(exc.orig if exc.orig is not None else exc).split("\n")[0][:500]
            if "canceling statement due to statement timeout" in message:
                raise EngineError("timeout", f"the query ran longer than {timeout:g}s and was cancelled") from None
            raise EngineError("execution_failed", message) from None
        except SQLAlchemyError as exc:
            raise EngineError("engine_down", f"the engine is unreachable: {str(exc)[:300]}") from None

    def close(self) -> None:
        if self._layer is not None:
            self._layer.close()
        if self._sqlalchemy is not None:
            self._sqlalchemy.dispose()
