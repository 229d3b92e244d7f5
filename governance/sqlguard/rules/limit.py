"""LIMIT: added when missing, capped when too large, replaced when it is not a plain row count.

Every spelling of a row limit counts: `LIMIT n`, `FETCH FIRST n ROWS`, and the percentage forms
(`LIMIT 50 PERCENT`, `LIMIT 50%`), which bound nothing in rows and are replaced by the default limit.
"""

from __future__ import annotations

from sqlglot import exp

from governance.sqlguard.context import Context


def apply(ctx: Context) -> None:
    if not ctx.policy.add_limit:
        return
    statement = ctx.statement
    assert isinstance(statement, exp.Query)
    current = statement.args.get("limit")
    default, cap = ctx.policy.default_limit, ctx.policy.max_limit
    if current is None:
        statement.set("limit", exp.Limit(expression=exp.Literal.number(default)))
        ctx.warn("limit_added", f"LIMIT {default} added")
        return
    value = current.args.get("count") if isinstance(current, exp.Fetch) else current.expression
    options = current.args.get("limit_options")
    percent = isinstance(options, exp.LimitOptions) and bool(options.args.get("percent"))
    ties = isinstance(options, exp.LimitOptions) and bool(options.args.get("with_ties"))
    if percent or ties or not (isinstance(value, exp.Literal) and value.is_int):
        statement.set("limit", exp.Limit(expression=exp.Literal.number(default)))
        what = "a percentage" if percent else "WITH TIES" if ties else "a non-literal LIMIT"
        ctx.warn("limit_replaced", f"{what} was replaced by LIMIT {default}")
        return
    rows = int(value.this)
    if rows > cap:
        ctx.warn("limit_capped", f"LIMIT {str(value.this)[:20]} capped to {cap}")
    statement.set("limit", exp.Limit(expression=exp.Literal.number(min(rows, cap))))
