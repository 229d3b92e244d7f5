"""Schema connectors: tables, columns, row counts and low-cardinality values from a live source.

DuckDB and SQLite files are read directly; a Spark warehouse (`sc://…`, `spark://…`) through a
`WarehouseReader` the caller passes in (the tools' engine layer has one; this package may not import it);
anything else goes through SQLAlchemy's inspector (PostgreSQL, MySQL, and Trino with the `trino` package's
dialect: `trino://user@host:8080/catalog`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import duckdb
import sqlalchemy
from sqlalchemy.exc import SQLAlchemyError

from governance.catalog import Column, Table

LOW_CARDINALITY = 30  # profile the values of string columns with at most this many distinct values
_STRING_TYPES = ("VARCHAR", "TEXT", "CHAR", "STRING", "CHARACTER")
_SKIP_SCHEMAS = {"information_schema", "pg_catalog", "sys", "mysql", "performance_schema"}


# Sources only a WarehouseReader reads (an engine this package does not run).
READER_SCHEMES = ("sc://", "spark://")


class SourceError(RuntimeError):
    """A source that cannot be read, with what to fix."""


class WarehouseReader(Protocol):
    """A warehouse read through an engine of the caller's (the tools' engine layer: `tools.engines.catalog`)."""

    @property
    def name(self) -> str:
        """The source as it may be shown (no credentials)."""

    def read_tables(self, profile: bool, progress: Callable[[str], None] | None) -> list[Table]:
        """Every table: columns, row counts, partition column; low-cardinality values when `profile`. SourceError
        when the warehouse cannot be read."""

    def read_rows(self, table: str, columns: list[str], order_by: str, limit: int) -> list[dict[str, object]]:
        """At most `limit` rows of `table` (schema.table), latest `order_by` first: those of `columns` it has."""

    def close(self) -> None: ...


def read_schema(
    source: str,
    profile: bool = True,
    progress: Callable[[str], None] | None = None,
    reader: WarehouseReader | None = None,
) -> list[Table]:
    """Tables of `source`: a .duckdb/.db/.sqlite file path, an SQLAlchemy URL, or what `reader` reads."""
    if reader is not None:
        return reader.read_tables(profile, progress)
    if source.startswith(READER_SCHEMES):
        raise SourceError(f"{source.split('://', 1)[0]}:// warehouses are read through the engine layer: "
                          "build the index with `bastion index`")  # fmt: skip
    if "://" not in source:
        path = Path(source)
        if not path.exists():
            raise SourceError(f"schema source {source} does not exist")
        if path.suffix in (".sqlite", ".sqlite3", ".db") and _is_sqlite(path):
            return _sqlite(path, profile)
        return _duckdb(path, profile, progress)
    if source.startswith("duckdb:///"):
        return _duckdb(Path(source.removeprefix("duckdb:///")), profile, progress)
    return _sqlalchemy(source, profile)


def _is_sqlite(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(16) == b"SQLite format 3\x00"


def _duckdb(path: Path, profile: bool, progress: Callable[[str], None] | None) -> list[Table]:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SourceError(f"cannot open DuckDB file {path}: {exc}") from None
    try:
        rows = con.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall()
        sizes = {
            f"{s}.{t}".lower(): int(n or 0)
            for s, t, n in con.execute("SELECT schema_name, table_name, estimated_size FROM duckdb_tables()").fetchall()
        }
        tables = _group(rows, sizes)
        if profile:
            for table in tables:
                if progress is not None:
                    progress(table.name)
                profile_values(table, lambda sql: [r[0] for r in con.execute(sql).fetchall()])
        return tables
    finally:
        con.close()


def _sqlite(path: Path, profile: bool) -> list[Table]:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        rows: list[tuple[str, str, str, str]] = []
        sizes: dict[str, int] = {}
        for name in names:
            for _, column, kind, *_ in con.execute(f'PRAGMA table_info("{name}")'):
                rows.append(("main", name, column, kind or ""))
            sizes[f"main.{name}".lower()] = int(con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
        tables = _group(rows, sizes)
        if profile:
            for table in tables:
                profile_values(table, lambda sql: [r[0] for r in con.execute(sql).fetchall()])
        return tables
    except sqlite3.Error as exc:
        raise SourceError(f"cannot read SQLite file {path}: {exc}") from None
    finally:
        con.close()


def _sqlalchemy(url: str, profile: bool) -> list[Table]:
    try:
        engine = sqlalchemy.create_engine(url)
    except (SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
        raise SourceError(f"cannot use {sqlalchemy.engine.make_url(url).render_as_string()}: {exc}") from None
    try:
        inspector = sqlalchemy.inspect(engine)
        rows: list[tuple[str, str, str, str]] = []
        for schema in inspector.get_schema_names():
            if schema.lower() in _SKIP_SCHEMAS or schema.lower().startswith("pg_"):
                continue
            for name in inspector.get_table_names(schema=schema):
                for column in inspector.get_columns(name, schema=schema):
                    rows.append((schema, name, column["name"], str(column["type"])))
        tables = _group(rows, {})
        if profile:
            with engine.connect() as conn:
                for table in tables:
                    profile_values(table, lambda sql: [r[0] for r in conn.execute(sqlalchemy.text(sql)).fetchall()])
        return tables
    except SQLAlchemyError as exc:
        safe = sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
        raise SourceError(f"cannot read the schema of {safe}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()


def _group(rows: list[tuple[str, str, str, str]], sizes: dict[str, int]) -> list[Table]:
    tables: dict[str, Table] = {}
    for schema, name, column, kind in rows:
        key = f"{schema}.{name}".lower()
        table = tables.setdefault(key, Table(name=key, row_count=sizes.get(key)))
        table.columns.append(Column(name=column, type=kind.upper()))
    return list(tables.values())


def profile_values(table: Table, query: Callable[[str], list[object]]) -> None:
    """Record the values of low-cardinality string columns (`'WEB'`, not `'web'`). `query` runs SQL in DuckDB's
    dialect (double-quoted names; an engine of another dialect transpiles it) and gives the first column."""
    quoted = ".".join(f'"{part}"' for part in table.name.split("."))
    for column in table.columns:
        if not column.type.startswith(_STRING_TYPES):
            continue
        try:
            values = query(f'SELECT DISTINCT "{column.name}" FROM {quoted} WHERE "{column.name}" IS NOT NULL '
                           f"LIMIT {LOW_CARDINALITY + 1}")  # fmt: skip
        except Exception:  # a column the source cannot scan is simply not profiled
            continue
        if 0 < len(values) <= LOW_CARDINALITY and all(isinstance(v, str) and len(v) <= 40 for v in values):
            column.values = sorted(str(v) for v in values)
