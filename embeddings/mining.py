"""What a historical query says, read from its sqlglot AST: tables, joins, filters, metrics, grain.

Also the query's *shape*: the SQL with literals replaced, so the same question asked with other
dates or ids is one intent. Pure; the catalog resolves unqualified names and aliases.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from governance.catalog import Catalog

_AGGREGATES = (exp.Sum, exp.Count, exp.Avg, exp.Min, exp.Max)
_GRAINS = {"day": "day", "week": "week", "month": "month", "quarter": "quarter", "year": "year", "hour": "hour"}


@dataclass
class Breakdown:
    tables: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # e.g. "sum(spend_usd)", "ctr = clicks / impressions"
    dimensions: list[str] = field(default_factory=list)  # group-by columns (without the time column)
    filters: list[str] = field(default_factory=list)  # "platform = <string>", "dt in a date range"
    time_grain: str | None = None
    joins: list[tuple[str, str]] = field(default_factory=list)  # (table.column, table.column)
    order: str | None = None  # "top N by <metric>"
    columns: list[str] = field(default_factory=list)  # every table.column referenced
    filter_columns: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # names of the outermost select's columns


@dataclass
class Mined:
    parsed: bool
    error: str | None
    shape: str  # the SQL with literals replaced
    breakdown: Breakdown


def _name(table: exp.Table) -> str:
    parts = [p for p in (table.catalog, table.db, table.name) if p]
    return ".".join(parts[-2:]).lower()


def shape_of(tree: exp.Expr, dialect: str) -> str:
    """The query with every literal replaced: one shape per analytical intent."""

    def strip(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Literal):
            return exp.Placeholder(this="n" if not node.is_string else "s")
        return node

    return tree.copy().transform(strip, copy=False).sql(dialect=dialect, normalize=True, pretty=False)


def mine(sql: str, dialect: str, catalog: Catalog) -> Mined:
    text = sql.strip().rstrip(";")
    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except (ParseError, TokenError) as exc:
        message = str(exc).splitlines()[0][:200]
        return Mined(False, message, " ".join(text.lower().split()), Breakdown())
    if len(statements) != 1:
        return Mined(False, f"{len(statements)} statements", " ".join(text.lower().split()), Breakdown())
    tree = statements[0]
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    aliases: dict[str, str] = {}
    tables: list[str] = []
    for table_node in tree.find_all(exp.Table):
        name = _name(table_node)
        if name in ctes or not table_node.name:
            continue
        known = catalog.table(name)
        full = known.name if known is not None else name
        if full not in tables:
            tables.append(full)
        aliases[table_node.alias_or_name.lower()] = full
        aliases[table_node.name.lower()] = full
    breakdown = Breakdown(tables=tables)

    def resolve(column: exp.Column) -> str | None:
        qualifier = column.table.lower() if column.table else ""
        if qualifier and qualifier in aliases:
            known = catalog.table(aliases[qualifier])
            if known is not None and known.column(column.name) is None:
                return None  # an output alias or a typo, not a column
            return f"{aliases[qualifier]}.{column.name.lower()}"
        owners = [t for t in tables if (c := catalog.table(t)) is not None and c.column(column.name) is not None]
        if len(owners) == 1:
            return f"{owners[0]}.{column.name.lower()}"
        if len(tables) == 1 and not qualifier and catalog.table(tables[0]) is None:
            return f"{tables[0]}.{column.name.lower()}"
        return None

    for column in tree.find_all(exp.Column):
        resolved = resolve(column)
        if resolved and resolved not in breakdown.columns:
            breakdown.columns.append(resolved)

    for join in tree.find_all(exp.Join):
        on = join.args.get("on")
        for eq in on.find_all(exp.EQ) if on is not None else []:
            left, right = eq.left, eq.right
            if isinstance(left, exp.Column) and isinstance(right, exp.Column):
                a, b = resolve(left), resolve(right)
                if a and b and a.rsplit(".", 1)[0] != b.rsplit(".", 1)[0]:
                    breakdown.joins.append(tuple(sorted((a, b))))  # type: ignore[arg-type]

    outer = tree.find(exp.Select)
    if outer is not None:
        breakdown.outputs = [p.alias_or_name.lower() for p in outer.expressions if p.alias_or_name]
    for select in tree.find_all(exp.Select):
        for projection in select.expressions:
            target = projection.unalias() if isinstance(projection, exp.Alias) else projection
            if target.find(*_AGGREGATES) is not None:
                text_ = target.sql(dialect=dialect).lower()
                alias = projection.alias if isinstance(projection, exp.Alias) else ""
                metric = f"{alias} = {text_}" if alias and alias.lower() not in text_ else text_
                if metric not in breakdown.metrics:
                    breakdown.metrics.append(metric)
        group = select.args.get("group")
        projections = {p.alias.lower(): p.unalias() for p in select.expressions if isinstance(p, exp.Alias)}
        for grouped in group.expressions if group is not None else []:
            item = grouped
            if isinstance(item, exp.Literal) and item.is_int and int(item.this) <= len(select.expressions):
                item = select.expressions[int(item.this) - 1]
                item = item.unalias() if isinstance(item, exp.Alias) else item
            elif isinstance(item, exp.Column) and item.name.lower() in projections and not item.table:
                item = projections[item.name.lower()]
            grain = _grain(item)
            if grain is not None:
                breakdown.time_grain = breakdown.time_grain or grain
                continue
            for column in item.find_all(exp.Column):
                name = column.name.lower()
                if name == "dt":
                    breakdown.time_grain = breakdown.time_grain or "day"
                elif name not in breakdown.dimensions:
                    breakdown.dimensions.append(name)
        where = select.args.get("where")
        if where is not None:
            for predicate in _predicates(where.this):
                described, filtered = _describe_filter(predicate, dialect)
                if described and described not in breakdown.filters:
                    breakdown.filters.append(described)
                if filtered is not None:
                    resolved = resolve(filtered)
                    if resolved and resolved not in breakdown.filter_columns:
                        breakdown.filter_columns.append(resolved)
        limit = select.args.get("limit")
        order = select.args.get("order")
        if limit is not None and order is not None and select is tree.find(exp.Select):
            key = order.expressions[0].this if order.expressions else None
            by = key.sql(dialect=dialect).lower() if key is not None else "?"
            breakdown.order = f"top N by {by}"
    return Mined(True, None, shape_of(tree, dialect), breakdown)


def _grain(node: exp.Expression) -> str | None:
    if isinstance(node, exp.DateTrunc | exp.TimestampTrunc):
        unit = node.args.get("unit")
        text = (unit.name if isinstance(unit, exp.Expression) else str(unit or "")).lower().strip("'")
        return _GRAINS.get(text)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "date_trunc" and node.expressions:
        return _GRAINS.get(node.expressions[0].name.lower())
    return None


def _predicates(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.And):
        return _predicates(node.left) + _predicates(node.right)
    if isinstance(node, exp.Paren):
        return _predicates(node.this)
    return [node]


def _describe_filter(node: exp.Expr, dialect: str) -> tuple[str | None, exp.Column | None]:
    column = node.find(exp.Column)
    if column is None:
        return None, None
    name = column.name.lower()
    if isinstance(node, exp.Between) or (
        (isinstance(node, exp.GT | exp.GTE | exp.LT | exp.LTE) and name in ("dt", "date", "day"))
        or "_dt" in name
        or name.endswith("_at")
    ):
        return f"{name} in a date range", column
    if isinstance(node, exp.EQ | exp.NEQ):
        other = node.right if node.left is column else node.left
        if isinstance(other, exp.Literal):
            op = "=" if isinstance(node, exp.EQ) else "!="
            value = other.this if other.is_string else "<number>"
            return f"{name} {op} {value!r}" if other.is_string else f"{name} {op} {value}", column
        return None, column
    if isinstance(node, exp.In):
        return f"{name} in a list", column
    if isinstance(node, (exp.Not, exp.Column)):
        return (f"not {name}" if isinstance(node, exp.Not) else f"{name} is true"), column
    return node.sql(dialect=dialect).lower()[:80], column


def common(values: list[tuple[str, ...]], top: int) -> list[tuple[tuple[str, ...], int]]:
    return Counter(values).most_common(top)
