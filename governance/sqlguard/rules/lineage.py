"""PII and above-clearance columns are refused wherever a query touches them: the select list, filters,
joins, grouping, ordering, windows, subqueries and CTEs, since every column reference was resolved."""

from __future__ import annotations

from governance.sqlguard.context import Context


def check(ctx: Context) -> None:
    seen: set[str] = set()
    for ref in ctx.resolved:
        if ref.key in seen:
            continue
        seen.add(ref.key)
        meta = ref.column
        if meta.pii and not ctx.policy.allow_pii:
            ctx.error("pii_column", f"column {ref.key} holds personal data ({meta.pii})", ref.node, subject=ref.key,
                      hint="leave it out, or aggregate without it (count distinct on an id column)")  # fmt: skip
        elif meta.classification.rank > ctx.policy.clearance.rank:
            ctx.error("above_clearance", f"column {ref.key} is {meta.classification.value}; your clearance "
                      f"is {ctx.policy.clearance.value}", ref.node, subject=ref.key,
                      hint="leave it out or ask for access")  # fmt: skip
