"""Scans of large partitioned tables need a filter on the partition column."""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from governance.catalog import Table
from governance.sqlguard.context import Context


def check(ctx: Context) -> None:
    threshold = ctx.policy.partition_filter_min_rows
    tree = ctx.qualified
    if threshold is None or tree is None:
        return
    by_key = {ctx.schema_key(t): t for t in ctx.tables.values()}
    for scope in ctx.scopes or traverse_scope(tree):
        _scope(ctx, scope, by_key, threshold, tree)


def _scope(ctx: Context, scope: Scope, by_key: dict[tuple[str, str], Table], threshold: int, root: exp.Expr) -> None:
    for alias, source in scope.selected_sources.items():
        node = source[1] if isinstance(source, tuple) else source
        if not isinstance(node, exp.Table):
            continue
        table = by_key.get((node.db, node.name))
        if table is None or not table.partition_column or (table.row_count or 0) < threshold:
            continue
        column = table.partition_column.lower()
        local = [scope.expression.args.get("where")] + [
            j.args.get("on") for j in scope.expression.args.get("joins") or []
        ]
        filtered = any(c.name == column and c.table == alias for clause in local if clause is not None
                       for c in clause.find_all(exp.Column))  # fmt: skip
        # A filter applied by an enclosing query on a CTE or subquery also bounds the scan.
        filtered = filtered or any(c.name == column for where in root.find_all(exp.Where)
                                   for c in where.find_all(exp.Column))  # fmt: skip
        if not filtered:
            ctx.error("missing_partition_filter", f"{table.name} has {table.row_count:,} rows partitioned by "
                      f"{table.partition_column}; the query does not filter on it", subject=table.name,
                      hint=f"add WHERE {alias}.{table.partition_column} BETWEEN … to bound the scan")  # fmt: skip
