"""Every column reference, in every clause of every scope, resolves to one column the guard can name.

sqlglot's `qualify` validates most references, but it leaves some alone: unqualified names in HAVING
and QUALIFY, names in window specifications, and a bare table or alias used as a value
(`SELECT u FROM users u`, `to_json(u)`, `(u).email`) — which the engine reads as the whole row. Its
scope objects also skip unqualified HAVING/QUALIFY columns. So this rule walks the whole qualified tree
itself and, for each `Column`, finds its scope and its source:

- a catalog table: the column must exist in it (then it is recorded for the lineage rules);
- a derived table, CTE, VALUES list or table function: the name must be one of its output columns;
- no qualifier: a projection alias referenced from ORDER BY, GROUP BY, HAVING, QUALIFY or a window, or a
  lambda parameter; a table or alias name used as a value is a whole-row reference (qualify turns those
  into `TableColumn` nodes, refused here too);

and anything else is refused. Stars left after expansion (other than `count(*)`) are refused too.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from governance.sqlguard.context import Context, Resolved, shown

# Clauses whose unqualified names may refer to a projection alias of their own SELECT.
_ALIAS_CLAUSES = (exp.Order, exp.Group, exp.Having, exp.Qualify, exp.Window)
Refuse = Callable[..., None]


def check(ctx: Context) -> None:
    tree = ctx.qualified
    assert tree is not None
    scopes = ctx.scopes = traverse_scope(tree)
    by_node: dict[int, Scope] = {id(scope.expression): scope for scope in scopes}
    catalog_tables = {ctx.schema_key(t): t for t in ctx.tables.values()}
    reported: set[tuple[str, str]] = set()

    def refuse(code: str, message: str, node: exp.Expr, **extra: str | None) -> None:
        if (code, message) not in reported:
            reported.add((code, message))
            ctx.error(code, message, node, **extra)

    for star in tree.find_all(exp.Star):
        if not (isinstance(star.parent, exp.Count) and star.arg_key == "this"):
            refuse("expanding_reference", "a * the guard could not expand to named columns", star,
                   hint="name the columns you need")  # fmt: skip
    for whole in tree.find_all(exp.TableColumn):
        # qualify's name for a table or alias used as a value (SELECT u FROM users u, to_json(u), (u).email)
        refuse(
            "whole_row_reference",
            f"{whole.name[:60]} is a table used as a value: it stands for the whole row",
            whole,
            subject=whole.name[:80],
            hint=f"name the columns you need ({whole.name[:60]}.column)",
        )
    for column in tree.find_all(exp.Column):
        if not isinstance(column.this, exp.Identifier):
            refuse("expanding_reference", f"{shown(column, ctx.dialect)} stands for several columns", column,
                   hint="name the columns you need")  # fmt: skip
            continue
        if _in_star_modifier(column):
            continue  # a name inside * EXCLUDE (…) / * REPLACE (… AS name): not a value
        scope = _scope_of(column, by_node)
        if scope is None:
            refuse("unresolved_column", f"column {shown(column, ctx.dialect)} is outside any query the guard "
                   "can follow", column, hint="rewrite the query with plain SELECT … FROM …")  # fmt: skip
            continue
        if column.args.get("db") is not None or column.args.get("catalog") is not None:
            refuse("unresolved_column", f"{shown(column, ctx.dialect)} is a reference the guard cannot resolve",
                   column, hint="refer to columns as alias.column")  # fmt: skip
            continue
        if not column.table:
            _unqualified(ctx, column, scope, refuse)
            continue
        source = _source(scope, column.table)
        if source is None:
            refuse(
                "unresolved_column",
                f"column {shown(column, ctx.dialect)} refers to no table of its query",
                column,
                subject=column.table[:80],
                hint="qualify columns with an alias from the FROM clause",
            )
            continue
        if isinstance(source, exp.Table):
            table = catalog_tables.get((source.db, source.name))
            meta = table.column(column.name) if table is not None else None
            if table is None or meta is None:
                refuse("unknown_column", f"column {shown(column, ctx.dialect)} does not exist in the tables the "
                       "query reads", column, subject=column.name[:80],
                       hint="describe the table to see its columns")  # fmt: skip
                continue
            ctx.resolved.append(Resolved(table, meta, column))
        elif column.name not in _output_names(source):
            refuse("unknown_column", f"column {shown(column, ctx.dialect)} is not an output of "
                   f"{column.table[:60]}", column, subject=column.name[:80],
                   hint="refer to a column the subquery or CTE selects")  # fmt: skip


def _in_star_modifier(column: exp.Column) -> bool:
    star = column.find_ancestor(exp.Star)
    return star is not None and column.find_ancestor(exp.Select) is star.find_ancestor(exp.Select)


def _scope_of(node: exp.Expr, by_node: dict[int, Scope]) -> Scope | None:
    current: exp.Expr | None = node.parent
    while current is not None:
        scope = by_node.get(id(current))
        if scope is not None:
            return scope
        current = current.parent
    return None


def _source(scope: Scope, name: str) -> exp.Table | Scope | None:
    """The source a qualifier names, in this scope or an enclosing one (correlated references)."""
    current: Scope | None = scope
    while current is not None:
        found = current.sources.get(name)
        if found is not None:
            return found
        current = current.parent
    return None


def _output_names(source: Scope) -> set[str]:
    expression = source.expression
    alias = expression.args.get("alias") if isinstance(expression, exp.UDTF) else None
    if isinstance(alias, exp.TableAlias) and alias.columns:
        return {c.name for c in alias.columns}
    if isinstance(expression, exp.UDTF) and isinstance(expression.this, exp.Subquery | exp.Query):
        expression = expression.this.unnest()  # LATERAL (SELECT …) l: the subquery's outputs
    if isinstance(expression, exp.Query):
        names = set(expression.named_selects)
        return set() if "*" in names else names
    return set()


def _bare(column: exp.Column, clause: exp.Expr) -> bool:
    """An output alias standing alone as an ORDER BY or GROUP BY item (not inside an expression or a window)."""
    parent = column.parent
    if isinstance(clause, exp.Order) and isinstance(parent, exp.Ordered) and not isinstance(clause.parent, exp.Window):
        return parent.parent is clause
    return isinstance(clause, exp.Group) and parent is clause


def _names_a_source_or_column(ctx: Context, scope: Scope, name: str) -> bool:
    """Whether `name` also names a table or alias in scope, or a column of one (catalog or derived)."""
    catalog_tables = {ctx.schema_key(t): t for t in ctx.tables.values()}
    current: Scope | None = scope
    while current is not None:
        for alias, source in current.sources.items():
            if alias == name:
                return True
            if isinstance(source, exp.Table):
                table = catalog_tables.get((source.db, source.name))
                if table is None or table.column(name) is not None:
                    return True  # unknown sources count as having it: fail closed
            elif name in _output_names(source) or not _output_names(source):
                return True
        current = current.parent
    return False


def _unqualified(ctx: Context, column: exp.Column, scope: Scope, refuse: Refuse) -> None:
    name = column.name
    lambda_ = column.find_ancestor(exp.Lambda)
    while lambda_ is not None:
        if any(p.name == name for p in lambda_.expressions):
            return  # a lambda parameter (list_transform(xs, x -> x + 1))
        lambda_ = lambda_.find_ancestor(exp.Lambda)
    clause = column.find_ancestor(*_ALIAS_CLAUSES, exp.Select)
    query = scope.expression
    if (isinstance(clause, _ALIAS_CLAUSES) and isinstance(query, exp.Query)
            and name in set(query.named_selects)):  # fmt: skip
        if _bare(column, clause) or not _names_a_source_or_column(ctx, scope, name):
            return  # ORDER BY total, HAVING n > 1: the alias's own expression is checked where it is defined
        # Inside an expression (ORDER BY upper(email), CAST(u AS INT)) engines bind the name to the table's
        # column or row, not to the output alias: what the guard would take for the alias is not what runs.
        refuse(
            "ambiguous_reference",
            f"{name[:60]} inside an expression could be the output alias or a column of the tables read; "
            "engines read the column",
            column,
            subject=name[:80],
            hint=f"use the alias alone ({clause.key.upper()} BY {name[:40]}), or qualify the column",
        )
        return
    if _source(scope, name) is not None:
        refuse(
            "whole_row_reference",
            f"{name[:60]} is a table used as a value: it stands for the whole row",
            column,
            subject=name[:80],
            hint=f"name the columns you need ({name[:60]}.column)",
        )
        return
    refuse(
        "unknown_column",
        f"column {name[:80]} does not resolve to any table the query reads",
        column,
        subject=name[:80],
        hint="check the name and qualify it with a table alias",
    )
