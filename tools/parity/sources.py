"""Inputs of an audit as DuckDB views: Parquet/CSV/JSON files, a table, or a query on the engine.

A source is a string: a file path (`.parquet`, `.csv`, `.tsv`, `.json`, `.jsonl`), `table:NAME` (a
table of the configured DuckDB engine), or `sql:SELECT …` (a read-only query on it). In-process
callers may also pass an Arrow table or a DataFrame. Every failure names the input.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from governance.sqlguard.functions import DENIED
from tools.parity.model import ParityError

FILE_READERS = {
    ".parquet": "read_parquet",
    ".csv": "read_csv_auto",
    ".tsv": "read_csv_auto",
    ".json": "read_json_auto",
    ".jsonl": "read_json_auto",
    ".ndjson": "read_json_auto",
}


def connect(engine: str | None = None, *sources: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB, with the engine's DuckDB file attached read-only when one is configured.

    Then the connection is sandboxed: file system access is switched off except for the file inputs among
    `sources`, and the configuration is locked, so nothing an input's SQL says — `read_text('/etc/passwd')`,
    `FROM 'secrets.csv'`, `glob('/*')`, `ATTACH` — can reach another file, whatever checked it before.
    """
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
    files = [s for s in sources if isinstance(s, str) and not s.startswith(("sql:", "table:"))]
    listed = ", ".join(f"'{_quote(f)}'" for f in files)
    # DuckDB may always write where it spills (temp_directory, by default ./.tmp): a private directory of
    # this connection's own, removed with it, so the one writable place is nobody else's.
    spill = tempfile.mkdtemp(prefix="bastion-parity-")
    weakref.finalize(con, shutil.rmtree, spill, True)
    con.execute(f"SET temp_directory = '{_quote(spill)}'")
    con.execute(f"SET allowed_paths = [{listed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(text: str) -> str:
    return text.replace("'", "''")


def _read_only(sql: str, name: str) -> str:
    """A last line of defence for in-process callers: one query that neither writes nor reads files.

    MCP callers never get here with their own text: the parity service passes their `sql:`/`table:` inputs
    through the SQL guard first (catalog tables only, the caller's clearance, no PII) and hands on the
    guard's output."""
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except (sqlglot.errors.SqlglotError, RecursionError) as exc:
        raise ParityError(name, f"the query does not parse: {str(exc).splitlines()[0][:200]}") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ParityError(name, "`sql:` takes exactly one read-only query (SELECT … or WITH … SELECT …)")
    tree = statements[0]
    writes = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Command, exp.Copy, exp.Merge,
              exp.Alter, exp.Pragma, exp.Set, exp.Use, exp.Into, exp.TruncateTable, exp.Transaction)  # fmt: skip
    if any(True for _ in tree.find_all(*writes)):
        raise ParityError(name, "the query must not write")
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or (table.this.quoted and "/" in table.name):
            raise ParityError(name, "the query may read tables only, not files or table functions")
    for func in tree.find_all(exp.Func):
        called = str(func.this).lower() if isinstance(func, exp.Anonymous) else func.sql_name().lower()
        if called in DENIED:
            raise ParityError(name, f"function {called[:60]} is not allowed: it reads files or reaches outside")
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
            raise ParityError(name, f"{path.name[:120]}: give a .parquet/.csv/.json file, table:NAME or sql:SELECT …")
        if not path.exists():
            raise ParityError(name, f"the file {path.name[:120]} does not exist")
        _create(con, name, f"{reader}('{_quote(str(path))}')", f"{path.name[:120]} does not parse")
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
