"""The warehouse catalog as governance sees it: tables, columns, tiers, owners, PII, deprecation.

Pure data (pydantic), shared by the indexer (which fills it from connectors, a metadata file and
the query log) and the SQL guard (which checks queries against it). No I/O here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from governance.classification import Classification

Additivity = Literal["additive", "semi_additive", "non_additive"]


class Column(BaseModel):
    name: str
    type: str = ""
    description: str | None = None
    glossary_term: str | None = Field(None, description="The business concept this column holds")
    pii: str | None = Field(None, description="Kind of personal data: email, ip_address, device_id, …")
    classification: Classification = Classification.INTERNAL
    values: list[str] | None = Field(None, description="All values of a low-cardinality column, profiled")
    additivity: Additivity | None = Field(
        None,
        description="Whether sums of this number mean something: additive (spend, clicks), semi_additive (adds "
        "up across anything but time: daily actives, a balance, a trailing-7-day count), non_additive (a score, a "
        "rate, a window length). Unset: the numbers of a date-partitioned table add up; others are attributes.",
    )

    @property
    def documented(self) -> bool:
        return bool(self.description)


class Usage(BaseModel):
    """Mined from the query log."""

    queries: int = 0
    distinct_authors: int = 0
    last_used: datetime | None = None
    success_rate: float | None = None


class JoinKey(BaseModel):
    left: str = Field(description="schema.table.column")
    right: str = Field(description="schema.table.column")
    queries: int = Field(0, description="Successful historical queries joining on it")


class CommonFilter(BaseModel):
    column: str = Field(description="schema.table.column")
    example: str = Field(description="The predicate with literals replaced, e.g. platform = <string>")
    queries: int = 0


class Table(BaseModel):
    name: str = Field(description="schema.table, lower case")
    domain: str | None = None
    description: str | None = None
    tier: int | None = Field(None, ge=1, le=3, description="1 cross-team production, 2 team-owned, 3 staging/legacy")
    owner: str | None = None
    columns: list[Column] = Field(default_factory=list)
    row_count: int | None = None
    partition_column: str | None = None
    update_cadence: str | None = None
    last_updated: date | None = None
    retention_days: int | None = None
    deprecated: bool = False
    successor: str | None = None
    deprecation_note: str | None = None
    usage: Usage = Field(default_factory=Usage)
    join_keys: list[JoinKey] = Field(default_factory=list)
    common_filters: list[CommonFilter] = Field(default_factory=list)

    def column(self, name: str) -> Column | None:
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)

    @property
    def documentation_completeness(self) -> float:
        """Share of table + column descriptions present (0..1)."""
        parts = [bool(self.description), *(c.documented for c in self.columns)]
        return sum(parts) / len(parts)

    @property
    def pii_columns(self) -> list[Column]:
        return [c for c in self.columns if c.pii]


class GlossaryTerm(BaseModel):
    name: str
    definition: str
    synonyms: list[str] = Field(default_factory=list, description="Column names that hold this concept")


class Metric(BaseModel):
    name: str
    definition: str
    sql: str = Field(description="An aggregate expression, e.g. sum(clicks) / nullif(sum(impressions), 0)")
    tables: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list, description="Other names people use: click-through rate")


class Catalog(BaseModel):
    tables: dict[str, Table] = Field(default_factory=dict)
    glossary: dict[str, GlossaryTerm] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    domains: dict[str, str] = Field(default_factory=dict, description="domain → description")
    as_of: date | None = Field(None, description="The catalog's 'today' (freshness is measured from it)")

    def table(self, name: str) -> Table | None:
        lowered = name.lower()
        table = self.tables.get(lowered)
        if table is None and "." not in lowered:
            matches = [t for key, t in self.tables.items() if key.rsplit(".", 1)[-1] == lowered]
            table = matches[0] if len(matches) == 1 else None
        return table

    def term_for(self, column: str) -> GlossaryTerm | None:
        lowered = column.lower()
        for term in self.glossary.values():
            if lowered == term.name.lower() or lowered in (s.lower() for s in term.synonyms):
                return term
        return None

    def freshness_days(self, table: Table) -> int | None:
        if table.last_updated is None or self.as_of is None:
            return None
        return max(0, (self.as_of - table.last_updated).days)
