"""Inputs of an audit as DuckDB views: Parquet/CSV/JSON files, a table, or a query on the engine.

A source is a string: a file path (`.parquet`, `.csv`, `.tsv`, `.json`, `.jsonl`), `table:NAME` (a
table of the configured DuckDB engine), or `sql:SELECT …` (a read-only query on it). In-process
callers may also pass an Arrow table or a DataFrame. Every failure names the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from tools.parity.model import ParityError

FILE_READERS = {
    ".parquet": "read_parquet",
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".json": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}


def connect(engine: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB, with the engine's DuckDB file attached read-only when one is configured."""
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    if engine:
        path = Path(engine.removeprefix("duckdb:///"))
        if not path.exists():
            raise ParityError("engine", f"the DuckDB file {path} does not exist")
        try:
            con.execute(f"ATTACH '{_quote(str(path))}' AS engine (READ_ONLY)")
            con.execute("USE engine")
        except duckdb.Error as exc:
            raise ParityError("engine", f"cannot attach {path}: {exc}") from None
    return con


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _read_only(sql: str, name: str) -> str:
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        raise ParityError(name, f"the query does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ParityError(name, "`sql:` takes exactly one read-only query (SELECT … or WITH … SELECT …)")
    if any(
        True
        for _ in statements[0].find_all(exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command, exp.Copy)
    ):
        raise ParityError(name, "the query must not write")
    return sql


def register(con: duckdb.DuckDBPyConnection, name: str, source: Any) -> list[tuple[str, str]]:
    """Make `source` the view `name`; return its (column, type) pairs."""
    if not isinstance(source, str):
        try:
            con.register(f"{name}_data", source)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {name}_data")
        except (duckdb.Error, ValueError, TypeError) as exc:
            raise ParityError(name, f"cannot read the in-memory table: {exc}") from None
    elif source.startswith("sql:"):
        query = _read_only(source[4:].strip(), name)
        _create(con, name, f"({query})", "the query failed")
    elif source.startswith("table:"):
        table = source[6:].strip()
        if not table or not all(part.replace("_", "").isalnum() for part in table.split(".")):
            raise ParityError(name, f"{table!r} is not a table name")
        _create(con, name, table, "the table cannot be read")
    else:
        path = Path(source)
        reader = FILE_READERS.get(path.suffix.lower())
        if reader is None:
            raise ParityError(name, f"{source}: give a .parquet/.csv/.json file, table:NAME or sql:SELECT …")
        if not path.exists():
            raise ParityError(name, f"the file {source} does not exist")
        _create(con, name, f"{reader}('{_quote(str(path))}')", f"{source} does not parse")
    rows = con.execute(f"DESCRIBE {name}").fetchall()
    if not rows:
        raise ParityError(name, "no columns")
    return [(str(r[0]), str(r[1])) for r in rows]


def _create(con: duckdb.DuckDBPyConnection, name: str, relation: str, failure: str) -> None:
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT * FROM {relation}")
        con.execute(f"SELECT * FROM {name} LIMIT 0")
    except duckdb.Error as exc:
        raise ParityError(name, f"{failure}: {str(exc).splitlines()[0][:300]}") from None
