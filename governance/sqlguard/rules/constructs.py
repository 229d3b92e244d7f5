"""Constructs that stand for several columns, or for columns the guard cannot name, are refused.

The lineage rules can only vouch for columns they can name. `SELECT *` and `SELECT t.*` in a select list
are expanded against the catalog by qualification (so a PII column under a star is still caught), and
`count(*)` exposes no value. Everything else that expands or hides columns is refused here, whatever the
dialect: a star inside a function (`struct_pack(*)`, `row(t.*)`, `to_jsonb(t.*)`, `[t.*]`), `COLUMNS(…)`,
positional references (`#2`), parameters and placeholders, and renaming a catalog table's columns by
position (`FROM users AS u(a, b)`, which would let `b` stand for whatever the second column is). A table
or alias used as a value (`SELECT u FROM users u`, `to_json(u)`) is caught when columns are resolved.
"""

from __future__ import annotations

from sqlglot import exp

from governance.sqlguard.context import Context, shown

_PARAMETERS = (exp.Placeholder, exp.Parameter, exp.SessionParameter)


def check(ctx: Context) -> None:
    for node in ctx.of(exp.Columns):
        ctx.error("expanding_reference", f"{shown(node, ctx.dialect)} stands for several columns", node,
                  subject="COLUMNS", hint="name the columns you need")  # fmt: skip
    for node in ctx.of(exp.PositionalColumn):
        ctx.error("positional_reference", f"{shown(node, ctx.dialect)} refers to a column by position", node,
                  hint="name the column")  # fmt: skip
    for node in ctx.of(*_PARAMETERS):
        ctx.error("parameter", f"{shown(node, ctx.dialect)} is a parameter; nothing is bound to it here", node,
                  hint="write the value into the query")  # fmt: skip
    for node in ctx.of(exp.TableColumn):
        ctx.error("whole_row_reference", f"{shown(node, ctx.dialect)} stands for a whole row", node,
                  hint="name the columns you need")  # fmt: skip
    for star in ctx.of(exp.Star):
        if not _star_allowed(star):
            holder = star.parent if isinstance(star.parent, exp.Column) else star
            around = holder.parent if holder.parent is not None else holder
            ctx.error(
                "expanding_reference",
                f"{shown(around, ctx.dialect)} expands to every column",
                star,
                hint="a star may only be a select-list item or count(*); name the columns you need",
            )
    for table in ctx.of(exp.Table):
        alias = table.args.get("alias")
        if (isinstance(alias, exp.TableAlias) and alias.columns and isinstance(table.this, exp.Identifier)
                and not ctx.is_cte_ref(table)):  # fmt: skip
            ctx.error("column_alias_list", f"{shown(table, ctx.dialect)} renames the table's columns by position",
                      table, subject=table.name,
                      hint="alias the columns in the select list instead (SELECT a AS x …)")  # fmt: skip


def _star_allowed(star: exp.Star) -> bool:
    holder: exp.Expr = star.parent if isinstance(star.parent, exp.Column) else star
    parent = holder.parent
    if isinstance(parent, exp.Select) and holder.arg_key == "expressions":
        return True  # SELECT *, SELECT t.*: expanded against the catalog, then every column is checked
    # count(*) counts rows; it exposes no value (count(t.*) is refused: use count(*))
    return holder is star and isinstance(parent, exp.Count) and star.arg_key == "this"
