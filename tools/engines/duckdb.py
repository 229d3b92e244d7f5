"""Embedded DuckDB: the default engine. SQL runs as written (it is the dialect tools write in)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb

from tools.engines.base import (
    BATCH_ROWS,
    Aggregate,
    BatchFunction,
    Capabilities,
    ColumnInfo,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    Fetched,
    Histogram,
    TableInfo,
    arrow_schema,
    conform,
)

FILE_READERS = {
    ".parquet": "read_parquet",
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".json": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}

CAPABILITIES = Capabilities(
    name="duckdb",
    dialect="duckdb",
    distributed=False,
    native_asof_join=True,
    temp_tables=True,
    seeded_sampling=True,
    exact_quantiles=True,
    quantile_rank_error=0.0,
    file_formats=tuple(sorted(FILE_READERS)),
)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return text.replace("'", "''")


class DuckDBEngine:
    """An in-memory DuckDB connection, with a DuckDB file attached read-only when one is given."""

    capabilities = CAPABILITIES

    def __init__(self, con: duckdb.DuckDBPyConnection, database: str | None = None) -> None:
        self.con = con
        self._database = database  # the attached file's catalog: each cursor of a caller's query uses it

    @classmethod
    def open(cls, database: str | None = None) -> DuckDBEngine:
        # No progress bar: DuckDB draws one on stdout for a query past two seconds, which would interleave with
        # a tool's output (an MCP server on stdio speaks JSON-RPC there).
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = false")
        if database:
            path = Path(database)
            if not path.exists():
                con.close()
                raise EngineUnavailable(f"the DuckDB file {path} does not exist")
            try:
                con.execute(f"ATTACH '{_literal(str(path))}' AS engine (READ_ONLY)")
                con.execute("USE engine")
            except duckdb.Error as exc:
                con.close()
                raise EngineUnavailable(f"cannot attach {path}: {exc}") from None
        return cls(con, "engine" if database else None)

    # -- running SQL ----------------------------------------------------------------------------------

    def execute(self, sql: str) -> None:
        try:
            self.con.execute(sql)
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in self.con.execute(sql).fetchall()]
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None

    def one(self, sql: str) -> tuple[Any, ...]:
        try:
            row = self.con.execute(sql).fetchone()
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None
        if row is None:
            raise EngineError("the query returned no row")
        return tuple(row)

    def arrow(self, sql: str) -> Any:
        try:
            return self.con.execute(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None

    def columns(self, relation: str) -> list[tuple[str, str]]:
        return [(str(r[0]), str(r[1])) for r in self.rows(f"DESCRIBE {relation}")]

    # -- inputs ---------------------------------------------------------------------------------------

    def register_arrow(self, name: str, data: Any) -> None:
        try:
            self.con.register(f"{name}_data", data)
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_data")
        except (duckdb.Error, ValueError, TypeError) as exc:
            raise EngineError(str(exc)) from None

    def register_file(self, name: str, path: str) -> None:
        reader = FILE_READERS.get(Path(path).suffix.lower())
        if reader is None:
            raise EngineError(f"{Path(path).name[:120]}: no reader for this kind of file")
        self.register_query(name, f"SELECT * FROM {reader}('{_literal(path)}')")

    def register_query(self, name: str, sql: str) -> None:
        self.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM ({sql})")
        self.execute(f"SELECT * FROM {name} LIMIT 0")

    # -- where dialects differ ------------------------------------------------------------------------

    def materialize(self, name: str, sql: str) -> None:
        self.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def sample(self, name: str, relation: str, columns: list[str], rows: int, total: int, seed: int) -> None:
        # System sampling reads only the sampled vectors of the file (reservoir would scan all of it).
        share = min(100.0, 100.0 * rows / max(total, 1))
        clause = f"USING SAMPLE {share:.4f}% (system, {int(seed)})" if share < 100 else ""
        self.materialize(name, f"SELECT {', '.join(quote(c) for c in columns)} FROM {relation} {clause}")

    def map_batches(
        self,
        name: str,
        relation: str,
        function: BatchFunction,
        columns: list[tuple[str, str]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        schema = arrow_schema(columns)
        source = self._read(relation)

        def mapped() -> Iterator[Any]:
            done = 0
            for batch in source.to_batches(max_chunksize=BATCH_ROWS):
                yield conform(function(batch), schema)
                done += batch.num_rows
                if progress is not None:
                    progress(done, source.num_rows)

        self._fill(name, mapped(), schema)

    def with_columns(self, name: str, relation: str, function: BatchFunction, columns: list[tuple[str, str]]) -> None:
        import pyarrow as pa

        added = arrow_schema(columns)
        source = self._read(relation)
        clash = sorted(set(source.schema.names) & set(added.names))
        if clash:
            raise EngineError(f"{relation[:80]} already has the column(s) {', '.join(clash)[:200]}")
        schema = pa.schema([*source.schema, *added])

        def joined(batch: Any) -> Any:
            extra = conform(function(batch), added)
            if extra.num_rows != batch.num_rows:
                raise EngineError(f"a batch function gave {extra.num_rows} rows for {batch.num_rows}")
            return pa.RecordBatch.from_arrays([*batch.columns, *extra.columns], schema=schema)

        self._fill(name, (joined(b) for b in source.to_batches(max_chunksize=BATCH_ROWS)), schema)

    def _read(self, relation: str) -> Any:
        """A relation as a pyarrow.Table (no copy of it beyond Arrow's)."""
        try:
            return self.con.sql(f"SELECT * FROM {relation}").to_arrow_table()
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None

    def _fill(self, name: str, batches: Any, schema: Any) -> None:
        """The temporary table `name` of `schema`, filled batch by batch (DuckDB spills what memory cannot hold)."""
        import pyarrow as pa

        staging = f"{name}_batch"
        try:
            self.con.register(staging, pa.Table.from_batches([], schema=schema))
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {staging}")
            for batch in batches:
                self.con.register(staging, batch)
                self.con.execute(f"INSERT INTO {name} SELECT * FROM {staging}")
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None
        finally:
            with contextlib.suppress(duckdb.Error):
                self.con.unregister(staging)

    def first_per_key(self, name: str, relation: str, keys: list[str]) -> None:
        partition = ", ".join(quote(k) for k in keys)
        self.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM "
            f"(SELECT * FROM {relation} QUALIFY row_number() OVER (PARTITION BY {partition}) = 1)"
        )

    def quantiles(self, expression: str, quantiles: list[float], exact: bool) -> str:
        return f"quantile_cont({expression}, {[float(q) for q in quantiles]})"

    def quantile(self, expression: str, quantile: float, exact: bool) -> str:
        return f"quantile_cont({expression}, {float(quantile)!r})"

    def asof_join(self, left: str, right: str, time: str, by: list[str], columns: list[str]) -> str:
        on = "".join(f" AND l.{quote(k)} = r.{quote(k)}" for k in by)
        picked = "".join(f", r.{quote(c)}" for c in columns)
        return f"(SELECT l.*{picked} FROM {left} l ASOF JOIN {right} r ON r.{quote(time)} <= l.{quote(time)}{on})"

    def aggregate(self, relation: str, aggregates: list[Aggregate]) -> tuple[Any, ...]:
        parts = [f"histogram({a.expression})" if isinstance(a, Histogram) else a for a in aggregates]
        row = self.one(f"SELECT {', '.join(parts)} FROM {relation}")
        return tuple(dict(v or {}) if isinstance(a, Histogram) else v for a, v in zip(aggregates, row, strict=True))

    # -- a caller's query ----------------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        """A connection of its own for one query (threads may run queries at once; each can be interrupted)."""
        cursor = self.con.cursor()
        if self._database:
            cursor.execute(f"USE {self._database}")
        return cursor

    def plan_native(self, sql: str, timeout: float) -> str:
        plan = self.fetch_native(f"EXPLAIN {sql}", 200, timeout)
        return "\n".join(" ".join(str(v) for v in row) for row in plan.rows)

    def fetch_native(
        self, sql: str, max_rows: int, timeout: float, check: Callable[[list[str]], None] | None = None
    ) -> Fetched:
        cursor = self._cursor()
        timer = threading.Timer(timeout, cursor.interrupt)
        timer.start()
        try:
            cursor.execute(sql)
            columns = [str(d[0]) for d in cursor.description or []]
            if check is not None:
                check(columns)
            return Fetched(columns, [tuple(r) for r in cursor.fetchmany(max_rows + 1)])
        except duckdb.InterruptException:
            raise EngineTimeout(f"the query ran longer than {timeout:g}s and was cancelled") from None
        except duckdb.Error as exc:
            raise EngineError(str(exc)) from None
        finally:
            timer.cancel()
            cursor.close()

    def tables(self) -> list[TableInfo]:
        columns: dict[tuple[str, str], list[ColumnInfo]] = {}
        for schema, table, column, kind in self.rows(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY table_schema, table_name, ordinal_position"
        ):
            columns.setdefault((str(schema), str(table)), []).append(ColumnInfo(str(column), str(kind)))
        stats: dict[tuple[str, str], tuple[int | None, str | None]] = {
            (str(s), str(t)): (None if n is None else int(n), str(comment) if comment else None)
            for s, t, n, comment in self.rows(
                "SELECT schema_name, table_name, estimated_size, comment FROM duckdb_tables() "
                "WHERE database_name = current_database()"
            )
        }
        return [
            TableInfo(schema=schema, name=table, columns=found, row_count=stats.get((schema, table), (None, None))[0],
                      description=stats.get((schema, table), (None, None))[1])
            for (schema, table), found in columns.items()
        ]  # fmt: skip

    def denied_functions(self) -> frozenset[str]:
        return frozenset()

    def confine(self, files: list[str], memory: str | None = None) -> None:
        """File system access off except for `files`, and the configuration locked: nothing a query says —
        `read_text('/etc/passwd')`, `FROM 'secrets.csv'`, `glob('/*')`, `ATTACH` — can reach another file.

        `memory` sets DuckDB's memory limit for this engine's instance (its own: `open` connects an in-memory
        database and attaches the file), and as much for what it spills to the private directory below. It
        covers DuckDB's buffer-managed memory (aggregates, joins, sorts), not strings built while a result
        streams: the `sql` tool bounds those with its engine process's limit (tools/sql/sandbox.py)."""
        # DuckDB may always write where it spills (temp_directory, by default ./.tmp): a private directory of
        # this connection's own, removed with it, so the one writable place is nobody else's.
        spill = tempfile.mkdtemp(prefix="bastion-parity-")
        weakref.finalize(self.con, shutil.rmtree, spill, True)
        listed = ", ".join(f"'{_literal(f)}'" for f in files)
        self.execute(f"SET temp_directory = '{_literal(spill)}'")
        if memory is not None:  # and as much on disk, where it spills (by default: 90% of the free space)
            self.execute(f"SET memory_limit = '{_literal(memory)}'")
            self.execute(f"SET max_temp_directory_size = '{_literal(memory)}'")
        self.execute(f"SET allowed_paths = [{listed}]")
        self.execute("SET enable_external_access = false")
        self.execute("SET lock_configuration = true")

    def close(self) -> None:
        self.con.close()
