"""The governance metadata file (YAML) and how it is merged into the catalog.

A malformed entry is reported with its line number and skipped; the rest still applies.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from governance.catalog import Additivity, Catalog, GlossaryTerm, Metric, Table
from governance.classification import Classification


class Problem(BaseModel):
    """Something in an input the indexer skipped, and where."""

    source: str
    line: int | None = None
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.message}"


class ColumnMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    pii: str | None = None
    classification: Classification | None = None
    glossary: str | None = None
    additivity: Additivity | None = None


class TableMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str | None = None
    tier: int | None = Field(None, ge=1, le=3)
    owner: str | None = None
    description: str | None = None
    partition_column: str | None = None
    update_cadence: str | None = None
    last_updated: date | None = None
    retention_days: int | None = Field(None, ge=0)
    deprecated: bool = False
    successor: str | None = None
    deprecation_note: str | None = None
    columns: dict[str, ColumnMeta] = Field(default_factory=dict)


class TermMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: str
    synonyms: list[str] = Field(default_factory=list)


class MetricMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: str
    sql: str
    tables: list[str] = Field(default_factory=list)
    synonyms: list[str] = Field(default_factory=list)


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _children(node: yaml.Node | None) -> dict[str, yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return {str(k.value): v for k, v in node.value}
    return {}


def load_metadata(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    """Parse and validate the file; returns what is valid and what is not (with line numbers)."""
    source = str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        return {}, [Problem(source=source, message=f"cannot read: {exc.strerror}")]
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        return {}, [Problem(source=source, line=line, message=f"not valid YAML: {getattr(exc, 'problem', exc)}")]
    if not isinstance(data, dict):
        return {}, [Problem(source=source, line=1, message="expected a mapping with tables, glossary, metrics")]
    problems: list[Problem] = []
    nodes = _children(root)
    valid: dict[str, Any] = {"as_of": data.get("as_of"), "domains": data.get("domains") or {}}
    for section, model in (("tables", TableMeta), ("glossary", TermMeta), ("metrics", MetricMeta)):
        entries = data.get(section) or {}
        section_nodes = _children(nodes.get(section))
        valid[section] = {}
        if not isinstance(entries, dict):
            problems.append(
                Problem(source=source, line=_line(nodes.get(section)), message=f"{section} must be a mapping")
            )
            continue
        for name, value in entries.items():
            try:
                valid[section][str(name)] = model.model_validate(value or {})
            except ValidationError as exc:
                detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors())
                problems.append(
                    Problem(
                        source=source, line=_line(section_nodes.get(str(name))), message=f"{section}.{name}: {detail}"
                    )
                )
    return valid, problems


def apply_metadata(catalog: Catalog, metadata: dict[str, Any], source: str) -> list[Problem]:
    """Merge metadata into the catalog's tables; unknown tables and columns are reported."""
    problems: list[Problem] = []
    if metadata.get("as_of"):
        catalog.as_of = metadata["as_of"]
    catalog.domains.update({str(k): str(v) for k, v in (metadata.get("domains") or {}).items()})
    for name, term in (metadata.get("glossary") or {}).items():
        catalog.glossary[name] = GlossaryTerm(name=name, definition=term.definition, synonyms=term.synonyms)
    for name, metric in (metadata.get("metrics") or {}).items():
        catalog.metrics[name] = Metric(
            name=name, definition=metric.definition, sql=metric.sql, tables=metric.tables, synonyms=metric.synonyms
        )
    for name, meta in (metadata.get("tables") or {}).items():
        table = catalog.tables.get(name.lower())
        if table is None:
            problems.append(Problem(source=source, message=f"tables.{name}: no such table in the schema source"))
            continue
        _merge(table, meta, problems, source)
    for table in catalog.tables.values():
        table.domain = table.domain or table.name.split(".")[0]
        for column in table.columns:
            if column.glossary_term is None:
                term = catalog.term_for(column.name)
                column.glossary_term = term.name if term else None
    return problems


def _merge(table: Table, meta: TableMeta, problems: list[Problem], source: str) -> None:
    for field in ("domain", "tier", "owner", "description", "partition_column", "update_cadence", "last_updated",
                  "retention_days", "successor", "deprecation_note"):  # fmt: skip
        value = getattr(meta, field)
        if value is not None:
            setattr(table, field, value)
    table.deprecated = table.deprecated or meta.deprecated
    for column_name, column_meta in meta.columns.items():
        column = table.column(column_name)
        if column is None:
            problems.append(
                Problem(source=source, message=f"tables.{table.name}.columns.{column_name}: no such column")
            )
            continue
        if column_meta.description:
            column.description = column_meta.description
        if column_meta.pii:
            column.pii = column_meta.pii
            column.classification = column_meta.classification or Classification.CONFIDENTIAL
        elif column_meta.classification:
            column.classification = column_meta.classification
        if column_meta.glossary:
            column.glossary_term = column_meta.glossary
        if column_meta.additivity:
            column.additivity = column_meta.additivity
