"""One engine layer for the SQL the tools issue: embedded DuckDB by default, Apache Spark by URL.

`connect(url)` picks the engine from the URL:

- none, `duckdb:` or a DuckDB file (`/path/warehouse.duckdb`, `duckdb:///path/warehouse.duckdb`) → an
  embedded DuckDB (the file attached read-only);
- `sc://host:port` → a new session on a Spark Connect server;
- `spark://host:port` → a session of an in-process SparkContext on that standalone master.

Tools write SQL once, in DuckDB's dialect; `Engine` (base.py) names every place where the dialects differ.
"""

from __future__ import annotations

from tools.engines.base import (
    Aggregate,
    Capabilities,
    ColumnInfo,
    Engine,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    Fetched,
    Histogram,
    TableInfo,
    display_url,
)

__all__ = [
    "Aggregate",
    "Capabilities",
    "ColumnInfo",
    "Engine",
    "EngineError",
    "EngineTimeout",
    "EngineUnavailable",
    "Fetched",
    "Histogram",
    "TableInfo",
    "connect",
    "display_url",
    "is_spark",
]


def is_spark(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("sc://", "spark://"))


def connect(url: str | None = None, timeout: float = 10.0) -> Engine:
    """The engine a URL names; EngineUnavailable (with what to do) when it cannot be reached."""
    if url and url.startswith("sc://"):
        from tools.engines.spark import SparkEngine

        return SparkEngine.remote(url, timeout)
    if url and url.startswith("spark://"):
        from tools.engines.spark import SparkEngine

        return SparkEngine.in_process(url, timeout)
    from tools.engines.duckdb import DuckDBEngine

    if not url or url in ("duckdb:", "duckdb://", "duckdb:///:memory:", ":memory:"):
        return DuckDBEngine.open()
    if "://" in url and not url.startswith("duckdb://"):
        raise EngineUnavailable(
            f"unknown engine URL {url[:80]!r}: give a DuckDB file, duckdb:///PATH, sc://HOST:PORT or spark://HOST:PORT"
        )
    # SQLAlchemy's form: duckdb:///relative/path, duckdb:////absolute/path.
    return DuckDBEngine.open(url.removeprefix("duckdb:///"))
