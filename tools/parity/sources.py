"""Inputs of an audit as views on its engine: Parquet/CSV/JSON files, a table, or a query on the engine.

A source is a string: a file path (`.parquet`, `.csv`, `.tsv`, `.json`, `.jsonl`), `table:NAME` (a
table of the configured engine: a DuckDB file, or Spark's catalog), or `sql:SELECT …` (a read-only query
on it, DuckDB's dialect). In-process callers may also pass an Arrow table or a DataFrame. Every failure
names the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

from governance.sqlguard.functions import DENIED
from tools.engines import Engine, EngineError, EngineUnavailable, is_spark
from tools.engines import connect as connect_engine
from tools.engines.bounded import half_the_data_limit
from tools.engines.duckdb import FILE_READERS, DuckDBEngine
from tools.parity.model import ParityError


def open_engine(engine: str | None = None, *sources: Any) -> Engine:
    """The engine the URL names (embedded DuckDB by default, with a DuckDB file attached read-only when
    one is given; Spark for sc:// and spark:// URLs), confined before any input is read.

    On DuckDB the connection is sandboxed: file system access is switched off except for the file inputs
    among `sources`, and the configuration is locked, so nothing an input's SQL says —
    `read_text('/etc/passwd')`, `FROM 'secrets.csv'`, `glob('/*')`, `ATTACH` — can reach another file,
    whatever checked it before. On Spark, files are read by the DataFrame reader and SQL may not name one.
    """
    try:
        opened = connect_engine(engine)
    except EngineUnavailable as exc:
        raise ParityError("engine", str(exc)) from None
    files = [s for s in sources if isinstance(s, str) and not s.startswith(("sql:", "table:"))]
    try:
        opened.confine(files, memory=half_the_data_limit())
    except EngineError as exc:
        opened.close()
        raise ParityError("engine", f"cannot confine the engine: {exc}") from None
    return opened


def connect(engine: str | None = None, *sources: Any) -> duckdb.DuckDBPyConnection:
    """A sandboxed DuckDB connection (see open_engine), for the checks that run on DuckDB only."""
    if is_spark(engine):
        raise ParityError("engine", "this check runs on DuckDB only; a Spark engine serves audit_parity")
    opened = open_engine(engine, *sources)
    assert isinstance(opened, DuckDBEngine)
    return opened.con


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _read_only(sql: str, name: str, denied: frozenset[str] = frozenset()) -> str:
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
        if called in DENIED or called in denied:
            raise ParityError(name, f"function {called[:60]} is not allowed: it reads files or reaches outside")
    return sql


def register(engine: Engine | duckdb.DuckDBPyConnection, name: str, source: Any) -> list[tuple[str, str]]:
    """Make `source` the view `name`; return its (column, type) pairs (types in DuckDB's vocabulary)."""
    if isinstance(engine, duckdb.DuckDBPyConnection):
        engine = DuckDBEngine(engine)
    failure = "the input cannot be read"
    try:
        if not isinstance(source, str):
            failure = "cannot read the in-memory table"
            engine.register_arrow(name, source)
        elif source.startswith("sql:"):
            query = _read_only(source[4:].strip(), name, engine.denied_functions())
            failure = "the query failed"
            engine.register_query(name, query)
        elif source.startswith("table:"):
            table = source[6:].strip()
            if not table or not all(part.replace("_", "").isalnum() for part in table.split(".")):
                raise ParityError(name, f"{table!r} is not a table name")
            failure = "the table cannot be read"
            engine.register_query(name, f"SELECT * FROM {table}")
        else:
            path = Path(source)
            if path.suffix.lower() not in FILE_READERS:
                raise ParityError(
                    name, f"{path.name[:120]}: give a .parquet/.csv/.json file, table:NAME or sql:SELECT …"
                )
            if not path.exists():
                raise ParityError(name, f"the file {path.name[:120]} does not exist")
            failure = f"{path.name[:120]} does not parse"
            engine.register_file(name, str(path))
        columns = engine.columns(name)
    except EngineError as exc:
        raise ParityError(name, f"{failure}: {str(exc)[:300]}") from None
    if not columns:
        raise ParityError(name, "no columns")
    return columns
