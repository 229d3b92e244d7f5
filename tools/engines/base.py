"""The engine contract: what a tool may ask of the SQL engine it runs on, and where the dialects differ.

SQL is written once, in DuckDB's dialect. An engine runs it as is (DuckDB) or transpiled with sqlglot
(Spark). Where the dialects do not agree — temporary tables, sampling, quantiles, per-value histograms,
one row per key, ASOF joins, reading files — a tool asks the engine through a method below, so that the
difference is stated here and in each engine's module, never as `if spark` branches in the tools.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit


class EngineError(Exception):
    """The engine refused or failed a statement: the first line of its message, bounded."""

    def __init__(self, message: str) -> None:
        first = (message.strip().splitlines() or [""])[0]
        super().__init__(first[:400])


def display_url(url: str) -> str:
    """An engine URL fit to show: no credentials (a Spark Connect URL's `;token=…` parameters, a user's password)."""
    if url.startswith(("sc://", "spark://")):
        parts = urlsplit(url)
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:
            port = ":?"
        return f"{parts.scheme}://{parts.hostname or ''}{port}"
    return url.rsplit("@", 1)[-1] if "://" in url else url


class EngineUnavailable(EngineError):
    """The engine cannot be reached (or is not installed): a configuration problem, not a bad query."""


class EngineTimeout(EngineError):
    """A statement ran past its timeout and was interrupted on the engine."""


@dataclass(frozen=True)
class Capabilities:
    """What differs between engines, in one place (the README's "Scaling out" section quotes it)."""

    name: str
    dialect: str  # sqlglot's name for the engine's dialect
    distributed: bool
    native_asof_join: bool  # else emulated with a window over the union of both sides
    temp_tables: bool  # else a cached temporary view
    seeded_sampling: bool  # a sample is the same on every run
    # Quantiles of a whole relation: exact (DuckDB) or approximate (Spark's percentile_approx, whose
    # rank error is at most 1/accuracy of the rows). Quantiles of a sample are exact on both.
    exact_quantiles: bool
    quantile_rank_error: float
    file_formats: tuple[str, ...]


@dataclass(frozen=True)
class Fetched:
    """A query's column names and its first rows (at most the cap asked for plus one: the caller can tell
    that there were more)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # in the engine's own vocabulary (Spark: STRING, BIGINT, ARRAY<STRING>, …): what its users write
    description: str | None = None


@dataclass(frozen=True)
class TableInfo:
    """A table (or view) of the engine's catalog, as the knowledge index needs it."""

    schema: str  # the database (Spark) or schema (DuckDB)
    name: str
    columns: list[ColumnInfo]
    description: str | None = None
    partition_columns: list[str] = field(default_factory=list)
    last_partition: str | None = None  # the greatest value of the first partition column
    row_count: int | None = None  # the engine's statistics, else counted; None for views


@dataclass(frozen=True)
class Histogram:
    """An aggregate that counts each value of `expression` (non-null values only) → {value: count}."""

    expression: str


Aggregate = str | Histogram

# A function over Arrow record batches (pyarrow.RecordBatch in, pyarrow.RecordBatch out), run by `map_batches`
# and `with_columns`: in this process on DuckDB, in the cluster's Python workers on Spark (an Arrow UDF), so it
# must pickle — an instance of a module-level class, its module importable where it runs.
BatchFunction = Callable[[Any], Any]
# Rows per batch handed to a BatchFunction on DuckDB (Spark uses spark.sql.execution.arrow.maxRecordsPerBatch).
BATCH_ROWS = 50_000
# The column types a BatchFunction may produce, in DuckDB's vocabulary, as Arrow and Spark types.
BATCH_TYPES = {
    "VARCHAR": ("string", "string"),
    "BIGINT": ("int64", "bigint"),
    "INTEGER": ("int32", "int"),
    "DOUBLE": ("float64", "double"),
    "BOOLEAN": ("bool_", "boolean"),
}


def arrow_schema(columns: list[tuple[str, str]]) -> Any:
    """(column, type) pairs of BATCH_TYPES as a pyarrow.Schema; EngineError for another type."""
    import pyarrow as pa

    fields = []
    for name, kind in columns:
        if kind not in BATCH_TYPES:
            raise EngineError(
                f"column {name[:60]!r}: a batch function yields {', '.join(BATCH_TYPES)}, not {kind[:40]!r}"
            )
        fields.append(pa.field(name, getattr(pa, BATCH_TYPES[kind][0])()))
    return pa.schema(fields)


def conform(batch: Any, schema: Any) -> Any:
    """A batch function's output as a RecordBatch of exactly `schema` (columns by name, types cast)."""
    import pyarrow as pa

    if not isinstance(batch, pa.RecordBatch):
        raise EngineError(f"a batch function returned {type(batch).__name__[:60]}, not a pyarrow.RecordBatch")
    try:
        arrays = [batch.column(f.name).cast(f.type) for f in schema]
    except (KeyError, pa.ArrowException) as exc:
        raise EngineError(f"a batch function's output does not match its declared columns: {exc}") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@runtime_checkable
class Engine(Protocol):
    capabilities: Capabilities

    def execute(self, sql: str) -> None:
        """Run a statement (DuckDB dialect) whose result is not needed."""

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Run a query (DuckDB dialect); all its rows as tuples of Python values."""

    def one(self, sql: str) -> tuple[Any, ...]:
        """Run a query that returns exactly one row."""

    def arrow(self, sql: str) -> Any:
        """Run a query; the result as a pyarrow.Table."""

    def columns(self, relation: str) -> list[tuple[str, str]]:
        """(column, type) of a relation, types in DuckDB's vocabulary (BIGINT, DOUBLE, VARCHAR, DOUBLE[], …)."""

    def register_arrow(self, name: str, data: Any) -> None:
        """An in-memory table (pyarrow.Table or pandas.DataFrame) as the temporary view `name`."""

    def register_file(self, name: str, path: str) -> None:
        """A Parquet/CSV/JSON file as the temporary view `name`."""

    def register_query(self, name: str, sql: str) -> None:
        """A query (DuckDB dialect) as the temporary view `name`; reads it once to surface errors."""

    def materialize(self, name: str, sql: str) -> None:
        """A query's result kept for reuse: a temporary table, or a cached view where there is none."""

    def sample(self, name: str, relation: str, columns: list[str], rows: int, total: int, seed: int) -> None:
        """About `rows` rows of `relation` (of `total` rows), kept as `name`; all of them if `total` <= `rows`."""

    def map_batches(
        self,
        name: str,
        relation: str,
        function: BatchFunction,
        columns: list[tuple[str, str]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """`function` over `relation`, batch by batch, kept as `name` (it runs once per row): each batch of the
        relation's rows in, a batch of `columns` ((name, a BATCH_TYPES type)) out, of any number of rows. DuckDB
        runs it here, calling `progress(rows done, rows)` after each batch; Spark as an Arrow UDF (mapInArrow) in
        its Python workers, when the relation is first read (no progress: the work is in the cluster)."""

    def with_columns(self, name: str, relation: str, function: BatchFunction, columns: list[tuple[str, str]]) -> None:
        """The view `name`: every column of `relation`, then `columns`, which `function` computes for each batch
        (a batch of `columns` with the input batch's rows, in order). DuckDB computes it now (a temporary table);
        Spark whenever the view is read (an Arrow UDF in its Python workers), so a whole log stays in the cluster."""

    def first_per_key(self, name: str, relation: str, keys: list[str]) -> None:
        """The view `name`: one (arbitrary) row of `relation` per distinct value of `keys`."""

    def quantiles(self, expression: str, quantiles: list[float], exact: bool) -> str:
        """An aggregate giving the interpolated quantiles of `expression` as a list (exact or approximate)."""

    def quantile(self, expression: str, quantile: float, exact: bool) -> str:
        """An aggregate giving one quantile of `expression`."""

    def asof_join(self, left: str, right: str, time: str, by: list[str], columns: list[str]) -> str:
        """A query: every row of `left` with `columns` of the latest `right` row whose `time` is at or before
        the left row's `time` (and equal `by` columns); left rows without one are dropped (an inner ASOF join).
        `left` and `right` are relations (names or parenthesised queries); `columns` must not clash with
        `left`'s."""

    def aggregate(self, relation: str, aggregates: list[Aggregate]) -> tuple[Any, ...]:
        """One row of aggregates over `relation`: SQL expressions, and Histograms as {value: count} dicts."""

    # -- a caller's query, in the engine's own dialect (`capabilities.dialect`), run as written: what a guard
    # checked in that dialect is what runs, never transpiled again.

    def plan_native(self, sql: str, timeout: float) -> str:
        """The engine's plan of a query (EXPLAIN); EngineError when it does not plan (unknown table, bad types),
        EngineTimeout past `timeout` seconds."""

    def fetch_native(
        self, sql: str, max_rows: int, timeout: float, check: Callable[[list[str]], None] | None = None
    ) -> Fetched:
        """Run a query: its columns and at most `max_rows` + 1 rows, interrupted on the engine after `timeout`
        seconds (EngineTimeout). `check` sees the column names before any row is fetched; what it raises
        propagates, and nothing is fetched."""

    def tables(self) -> list[TableInfo]:
        """Every table and view of the engine's catalog (system schemas left out)."""

    def denied_functions(self) -> frozenset[str]:
        """Functions this engine must never run for a caller (beyond the guard's list): file or JVM access."""

    def confine(self, files: list[str], memory: str | None = None) -> None:
        """From now on, queries may read no file but these (registered inputs are read already); with `memory`
        (e.g. "2GB"), the engine's own memory for queries is bounded where the engine lives in this process
        (DuckDB); a remote engine's memory is its cluster's setting."""

    def close(self) -> None: ...
