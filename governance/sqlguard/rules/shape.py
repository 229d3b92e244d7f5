"""Every SELECT names something to return; the query reads at least one catalog table."""

from __future__ import annotations

from sqlglot import exp

from governance.sqlguard.context import Context


def check(ctx: Context) -> None:
    for select in ctx.of(exp.Select):
        if not select.expressions:
            ctx.error("empty_select", "the select list is empty", select, hint="name the columns to return")


def reads_a_table(ctx: Context) -> None:
    if not any(isinstance(t.this, exp.Identifier) and not ctx.is_cte_ref(t) for t in ctx.of(exp.Table)):
        ctx.error("no_table", "the query reads no table", ctx.statement, hint="add a FROM clause on a catalog table")
