"""What the guard's rules share while they check one query: the input, the tree, and what they found."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from governance.catalog import Catalog, Column, Table
from governance.classification import Classification
from governance.sqlguard.issues import GuardResult, Issue

FLAT_SCHEMA = "main"  # catalogs keyed by bare table names (SQLite files) get one schema


class GuardPolicy(BaseModel):
    """What a caller may run. The defaults are the platform's; deployments tune them."""

    default_limit: int = Field(100, ge=1, description="LIMIT added when a query has none")
    max_limit: int = Field(10_000, ge=1, description="A larger LIMIT is capped to this")
    partition_filter_min_rows: int | None = Field(
        1_000_000, description="Tables with a partition column and at least this many rows need a filter on it"
    )
    clearance: Classification = Field(Classification.INTERNAL, description="The caller's clearance")
    allow_pii: bool = Field(False, description="Let PII columns through (a cleared, audited caller)")
    add_limit: bool = True


@dataclass(frozen=True, slots=True)
class Resolved:
    """A column reference the guard traced to one column of one catalog table."""

    table: Table
    column: Column
    node: exp.Column

    @property
    def key(self) -> str:
        return f"{self.table.name}.{self.column.name}"


@dataclass
class Context:
    sql: str
    catalog: Catalog
    dialect: str
    policy: GuardPolicy
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    statement: exp.Expr | None = None
    nodes: list[exp.Expr] = field(default_factory=list)  # one walk of the parsed tree, shared by the rules
    cte_refs: set[int] = field(default_factory=set)  # ids of the Table nodes that name a CTE visible there
    tables: dict[str, Table] = field(default_factory=dict)  # reference key → catalog table
    output: str | None = None  # the SQL to run: the checked tree, generated
    output_columns: list[str] = field(default_factory=list)  # the checked query's output names
    qualified: exp.Expr | None = None
    scopes: list[Scope] = field(default_factory=list)  # sqlglot scopes of the qualified tree
    resolved: list[Resolved] = field(default_factory=list)  # every column reference, every clause

    def error(self, code: str, message: str, node: exp.Expr | None = None, **extra: Any) -> None:
        self.errors.append(Issue(code=code, message=message, **location(node), **extra))

    def warn(self, code: str, message: str, node: exp.Expr | None = None, **extra: Any) -> None:
        self.warnings.append(Issue(code=code, message=message, severity="warning", **location(node), **extra))

    def of(self, *kinds: type[exp.Expr]) -> list[Any]:
        return [node for node in self.nodes if isinstance(node, kinds)]

    def is_cte_ref(self, table: exp.Table) -> bool:
        return id(table) in self.cte_refs

    def schema_key(self, table: Table) -> tuple[str, str]:
        parts = table.name.split(".")
        return (parts[-2], parts[-1]) if len(parts) >= 2 else (FLAT_SCHEMA, parts[-1])

    def result(self) -> GuardResult:
        ok = not self.errors
        columns = list(dict.fromkeys(r.key for r in self.resolved))
        outputs = self.output_columns if ok else []
        return GuardResult(
            ok=ok, dialect=self.dialect, errors=self.errors, warnings=self.warnings,
            sql=self.output if ok else None,
            tables=sorted({t.name for t in self.tables.values()}), columns=columns, output_columns=outputs,
        )  # fmt: skip


def location(node: exp.Expr | None) -> dict[str, Any]:
    if node is None:
        return {}
    meta = getattr(node, "meta", None) or {}
    if "line" not in meta:
        first = next((n for n in node.walk() if (getattr(n, "meta", None) or {}).get("line")), None)
        meta = first.meta if first is not None else {}
    return {"line": meta.get("line"), "column": meta.get("col")} if meta.get("line") else {}


def shown(node: exp.Expr, dialect: str, limit: int = 60) -> str:
    """A node as SQL for a message, bounded: errors never echo unbounded input."""
    try:
        text = node.sql(dialect=dialect)
    except Exception:  # generation of a broken subtree must not turn a refusal into a crash
        text = type(node).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
