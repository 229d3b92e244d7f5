"""The documents the index embeds: one per table, per past-query intent, per governance fact."""

from __future__ import annotations

import hashlib
from datetime import datetime

from pydantic import BaseModel, Field

from embeddings.intent import Intent
from governance.catalog import Catalog, Table


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _words(name: str) -> str:
    return name.replace("_", " ").replace(".", " ")


def table_document(table: Table, catalog: Catalog) -> str:
    """Name, description, columns (with descriptions, glossary terms and real values), domain."""
    lines = [f"{table.name} ({_words(table.name.split('.')[-1])})"]
    if table.description:
        lines.append(table.description)
    if table.domain and table.domain in catalog.domains:
        lines.append(f"Domain: {catalog.domains[table.domain]}")
    for column in table.columns:
        parts = [f"{column.name} ({_words(column.name)})"]
        if column.description:
            parts.append(column.description)
        if column.glossary_term and column.glossary_term != column.name:
            term = catalog.glossary.get(column.glossary_term)
            parts.append(f"= {column.glossary_term}" + (f": {term.definition}" if term else ""))
        if column.values:
            parts.append("values: " + ", ".join(column.values[:12]))
        lines.append(" — ".join(parts))
    return "\n".join(lines)


def governance_document(table: Table, catalog: Catalog) -> str:
    tier = f"Tier {table.tier}" if table.tier else "No tier"
    parts = [f"{table.name}: {tier}", f"owner {table.owner}" if table.owner else "no owner"]
    if table.deprecated:
        parts.append(f"DEPRECATED, use {table.successor}" if table.successor else "DEPRECATED")
        if table.deprecation_note:
            parts.append(table.deprecation_note)
    pii = [f"{c.name} ({c.pii}, {c.classification.value})" for c in table.pii_columns]
    if pii:
        parts.append("PII: " + ", ".join(pii))
    if table.retention_days:
        parts.append(f"retention {table.retention_days} days")
    fresh = catalog.freshness_days(table)
    if fresh is not None:
        parts.append(f"updated {fresh} days before {catalog.as_of}")
    parts.append(f"documentation {table.documentation_completeness:.0%}")
    return "; ".join(parts)


class IntentRecord(BaseModel):
    """One distinct historical query shape and everything the log says about it."""

    id: str
    shape: str
    intent: Intent
    tables: list[str]
    example_sql: str = Field(description="The most recent successful run (or the most recent, if none succeeded)")
    runs: int
    successes: int
    authors: list[str]
    first_run: datetime
    last_run: datetime
    parsed: bool = True
    parse_error: str | None = None

    @property
    def success_rate(self) -> float:
        return self.successes / self.runs if self.runs else 0.0

    def document(self) -> str:
        return self.intent.document()
