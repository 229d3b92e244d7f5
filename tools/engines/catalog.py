"""A warehouse's catalog and query history read through the engine layer, for the knowledge index.

`embeddings` builds the index but may not import the tools; it reads a warehouse it cannot reach itself
(Spark) through a `WarehouseReader` it is handed. `EngineWarehouse` is that reader, over any engine of the
layer: databases, tables (with the engine's comments as descriptions), columns, partition columns, the latest
partition (a date one becomes the table's `last_updated`), row counts (the engine's statistics, else counted)
and the values of low-cardinality string columns. `reader_for(url)` picks it for the URLs only the layer
runs (`sc://`, `spark://`); the CLI passes it to `build_index`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from embeddings.connectors import SourceError, WarehouseReader, profile_values
from governance.catalog import Column, Table
from tools import engines
from tools.engines.duckdb import quote


class EngineWarehouse:
    """`embeddings.connectors.WarehouseReader` over an engine of the layer (connected at the first read)."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url
        self.name = engines.display_url(url)
        self._timeout = timeout
        self._engine: engines.Engine | None = None

    def engine(self) -> engines.Engine:
        if self._engine is None:
            try:
                self._engine = engines.connect(self.url, self._timeout)
            except engines.EngineError as exc:
                raise SourceError(f"cannot read the warehouse {self.name}: {exc}") from None
        return self._engine

    def read_tables(self, profile: bool, progress: Callable[[str], None] | None) -> list[Table]:
        engine = self.engine()
        try:
            found = engine.tables()
        except engines.EngineError as exc:
            raise SourceError(f"cannot read the catalog of {self.name}: {exc}") from None
        tables: list[Table] = []
        for info in found:
            table = Table(
                name=f"{info.schema}.{info.name}".lower(), description=info.description, row_count=info.row_count,
                partition_column=info.partition_columns[0] if info.partition_columns else None,
                last_updated=_as_date(info.last_partition),
                columns=[Column(name=c.name, type=c.type.upper(), description=c.description) for c in info.columns],
            )  # fmt: skip
            if profile:
                if progress is not None:
                    progress(table.name)
                profile_values(table, lambda sql: [r[0] for r in engine.rows(sql)])
            tables.append(table)
        return tables

    def read_rows(self, table: str, columns: list[str], order_by: str, limit: int) -> list[dict[str, object]]:
        engine = self.engine()
        relation = ".".join(quote(part) for part in table.split("."))
        try:
            present = {name.lower(): name for name, _ in engine.columns(table)}
            picked = [present[c.lower()] for c in columns if c.lower() in present]
            if not picked:
                raise SourceError(f"{table[:120]} has none of the query log's columns ({', '.join(columns)})")
            order = f" ORDER BY {quote(present[order_by.lower()])} DESC" if order_by.lower() in present else ""
            rows = engine.rows(
                f"SELECT {', '.join(quote(c) for c in picked)} FROM {relation}{order} LIMIT {int(limit)}"
            )
        except engines.EngineError as exc:
            raise SourceError(f"cannot read {table[:120]} of {self.name}: {exc}") from None
        return [{c.lower(): v for c, v in zip(picked, row, strict=True)} for row in rows]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def reader_for(url: str | None) -> WarehouseReader | None:
    """The reader of a warehouse only the engine layer reaches (Spark); None where `embeddings` reads it itself."""
    return EngineWarehouse(url) if url and engines.is_spark(url) else None


def _as_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None
