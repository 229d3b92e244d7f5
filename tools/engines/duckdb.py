"""Embedded DuckDB: the default engine. SQL runs as written (it is the dialect tools write in)."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import duckdb

from tools.engines.base import Aggregate, Capabilities, EngineError, EngineUnavailable, Histogram

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

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    @classmethod
    def open(cls, database: str | None = None) -> DuckDBEngine:
        con = duckdb.connect()
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
        return cls(con)

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

    def denied_functions(self) -> frozenset[str]:
        return frozenset()

    def confine(self, files: list[str]) -> None:
        """File system access off except for `files`, and the configuration locked: nothing a query says —
        `read_text('/etc/passwd')`, `FROM 'secrets.csv'`, `glob('/*')`, `ATTACH` — can reach another file."""
        # DuckDB may always write where it spills (temp_directory, by default ./.tmp): a private directory of
        # this connection's own, removed with it, so the one writable place is nobody else's.
        spill = tempfile.mkdtemp(prefix="bastion-parity-")
        weakref.finalize(self.con, shutil.rmtree, spill, True)
        listed = ", ".join(f"'{_literal(f)}'" for f in files)
        self.execute(f"SET temp_directory = '{_literal(spill)}'")
        self.execute(f"SET allowed_paths = [{listed}]")
        self.execute("SET enable_external_access = false")
        self.execute("SET lock_configuration = true")

    def close(self) -> None:
        self.con.close()
