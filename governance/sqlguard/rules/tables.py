"""Each table exists in the catalog (CTE names excepted), none is deprecated (the successor is named),
Tier 3 is warned; table functions (which read files or reach outside the query) are refused, and so is time
travel (`VERSION AS OF`, `TIMESTAMP AS OF`, `FOR SYSTEM_TIME AS OF`): an old snapshot holds rows that retention or
erasure removed, and the catalog describes the table as it is."""

from __future__ import annotations

import difflib

from sqlglot import exp

from governance.sqlguard.context import Context, shown


def check(ctx: Context) -> None:
    for node in ctx.of(exp.Table):
        if not isinstance(node.this, exp.Identifier):
            name = shown(node.this, ctx.dialect) if node.this is not None else "?"
            ctx.error("forbidden_function", f"table function {name} is not allowed", node, subject=name,
                      hint="read catalog tables only")  # fmt: skip
            continue
        if ctx.is_cte_ref(node):
            continue
        if node.args.get("version") is not None:
            ctx.error("time_travel", f"{shown(node, ctx.dialect)[:120]} reads an earlier version of the table", node,
                      subject=node.name[:120], hint="query the table as it is now")  # fmt: skip
        reference = ".".join(p for p in (node.catalog, node.db, node.name) if p)
        table = ctx.catalog.table(".".join(reference.lower().split(".")[-2:]))
        if table is None:
            shown_ref = reference if len(reference) <= 120 else reference[:119] + "…"
            close = difflib.get_close_matches(reference.lower()[:200], list(ctx.catalog.tables), n=3, cutoff=0.6)
            ctx.error(
                "unknown_table",
                f"table {shown_ref} does not exist",
                node,
                subject=shown_ref,
                hint=f"did you mean {', '.join(close)}?" if close else "search the catalog for the table",
            )
            continue
        ctx.tables[reference.lower()] = table
        if table.deprecated:
            successor = f"use {table.successor}" if table.successor else "ask its owner for the replacement"
            ctx.error("deprecated_table", f"table {table.name} is deprecated", node, subject=table.name,
                      hint=successor)  # fmt: skip
        elif table.tier == 3:
            instead = f"; prefer {table.successor}" if table.successor else ""
            ctx.warn("tier3_table", f"table {table.name} is Tier 3 (staging/temporary/legacy){instead}", node,
                     subject=table.name, hint=f"use {table.successor}" if table.successor else None)  # fmt: skip
