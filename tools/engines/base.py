"""The engine contract: what a tool may ask of the SQL engine it runs on, and where the dialects differ.

SQL is written once, in DuckDB's dialect. An engine runs it as is (DuckDB) or transpiled with sqlglot
(Spark). Where the dialects do not agree — temporary tables, sampling, quantiles, per-value histograms,
one row per key, ASOF joins, reading files — a tool asks the engine through a method below, so that the
difference is stated here and in each engine's module, never as `if spark` branches in the tools.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


class EngineError(Exception):
    """The engine refused or failed a statement: the first line of its message, bounded."""

    def __init__(self, message: str) -> None:
        first = (message.strip().splitlines() or [""])[0]
        super().__init__(first[:400])


class EngineUnavailable(EngineError):
    """The engine cannot be reached (or is not installed): a configuration problem, not a bad query."""


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
class Histogram:
    """An aggregate that counts each value of `expression` (non-null values only) → {value: count}."""

    expression: str


Aggregate = str | Histogram


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

    def denied_functions(self) -> frozenset[str]:
        """Functions this engine must never run for a caller (beyond the guard's list): file or JVM access."""

    def confine(self, files: list[str]) -> None:
        """From now on, queries may read no file but these (registered inputs are read already)."""

    def close(self) -> None: ...
