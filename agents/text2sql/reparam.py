"""Re-parameterise a verified past query for a new question: its literals rewritten in the syntax tree.

A reused query keeps its shape — tables, joins, metrics, grouping — and takes the question's values where the
question names them, each by type and role:

- **period** → the query's date filters (`dt BETWEEN DATE 'a' AND DATE 'b'`, `>=`/`>`/`<=`/`<`, `=`; DATE,
  TIMESTAMP or ISO-date string literals), per filtered column; a closed period gets both bounds, a period up to
  the data's today keeps a lower-bound-only filter that way; a TIMESTAMP upper bound becomes `< next day`;
- **ids** ("advertiser 42") → the `…_id = n` / `IN (…)` filter of that entity;
- **values of a column** the catalog profiled ('US', 'CHECKOUT', "out of stock") → that column's string filter;
- **quoted text** → the query's one free-text string filter;
- **a count** ("top 10", "which 5 advertisers") → the LIMIT of a ranked (ORDER BY) query;
- **a threshold** ("more than 10000 followers") → the numeric comparison on the matching column.

Values go in as typed literals (`exp.Literal`, `CAST('…' AS DATE)`): a quote in the question is a quote in a
string literal, never SQL. What the question names but the query has no place for — a period for a query without
a date filter, an advertiser for a query without an advertiser filter, two periods for one date filter, a filter
under OR — leaves the query unchanged and says why (fail closed). The caller re-validates whatever this returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from agents.text2sql.literals import NEGATIONS, Named, Period, read_question, singular
from governance.catalog import Catalog, Column, Table

_T = exp.DataType.Type
DATE_TYPES = (_T.DATE, _T.DATE32)
TIMESTAMP_TYPES = (_T.TIMESTAMP, _T.TIMESTAMPNTZ, _T.TIMESTAMPTZ, _T.TIMESTAMPLTZ, _T.DATETIME, _T.DATETIME64)
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?")
_COMPARISONS: dict[type[exp.Expr], str] = {exp.GT: ">", exp.GTE: ">=", exp.LT: "<", exp.LTE: "<=", exp.EQ: "="}
_FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}
_BUILD: dict[str, type[exp.Expr]] = {">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE}


@dataclass
class Rewrite:
    """The outcome: `sql` is the rewritten query when `changed`, else the input; `unresolved` says why the
    question's literals could not all be placed (then nothing was changed)."""

    sql: str
    changed: bool = False
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    narrowed: bool = False  # an id or value filter the question does not name is kept: it asks for less
    unresolved: list[str] = field(default_factory=list)
    before: str | None = None  # the past query's period
    after: str | None = None  # the period it covers now
    period: Period | None = None  # the question's, when it names one
    has_dates: bool = False

    @property
    def dates_differ(self) -> bool:
        """The past query's dates are not the question's: it names none, or another period."""
        if not self.has_dates:
            return False
        return self.period is None or self.after is None or self.before != self.after


class _Unresolved(Exception):
    pass


# -- the query's parts ----------------------------------------------------------------------------------------------


@dataclass
class _DateLiteral:
    day: date
    kind: Literal["date", "timestamp", "string"]
    to: exp.DataType | None


@dataclass
class _DateFilter:
    node: exp.Expr
    column: exp.Expr
    key: tuple[int, str, str]  # (its SELECT, the column's qualifier, the column): one filtered column of one scope
    lower: date | None
    upper: date | None
    literal: _DateLiteral
    partition: bool


@dataclass
class _ValueFilter:
    node: exp.Expr
    column: exp.Column
    meta: Column | None
    values: list[str | int]
    numeric: bool


class _Query:
    def __init__(self, tree: exp.Expr, catalog: Catalog) -> None:
        self.tree = tree
        self.catalog = catalog
        self.aliases: dict[str, Table] = {}
        for node in tree.find_all(exp.Table):
            name = f"{node.db}.{node.name}" if node.db else node.name
            table = catalog.table(name)
            if table is not None:
                self.aliases[node.alias_or_name.lower()] = table

    def table_of(self, column: exp.Column) -> Table | None:
        if column.table:
            return self.aliases.get(column.table.lower())
        select = column.find_ancestor(exp.Select)
        if select is None:
            return None
        scope = [self.aliases.get(t.alias_or_name.lower()) for t in select.find_all(exp.Table)
                 if t.find_ancestor(exp.Select) is select]  # fmt: skip
        owners = [t for t in scope if t is not None and t.column(column.name) is not None]
        return owners[0] if len(owners) == 1 else None

    def meta(self, column: exp.Column) -> Column | None:
        table = self.table_of(column)
        return table.column(column.name) if table is not None else None

    def tables(self) -> list[Table]:
        return list({id(t): t for t in self.aliases.values()}.values())


_NEGATION = re.compile(r"\b(?:" + "|".join(sorted(NEGATIONS)) + r"|other than)\b|n't\b", re.IGNORECASE)


def _column_of(node: exp.Expr) -> exp.Column | None:
    if isinstance(node, exp.Column):
        return node
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Column):
        return node.this
    return None


def _date_literal(node: exp.Expr, meta: Column | None) -> _DateLiteral | None:
    literal, to = node, None
    if isinstance(node, exp.Cast) and isinstance(node.this, exp.Literal):
        literal, to = node.this, node.to
    if not isinstance(literal, exp.Literal) or not literal.is_string:
        return None
    match = _ISO.fullmatch(str(literal.this).strip())
    if match is None:
        return None
    try:
        day = date.fromisoformat(match.group(1))
    except ValueError:
        return None
    if to is not None:
        if to.is_type(*DATE_TYPES):
            return _DateLiteral(day, "date", to)
        if to.is_type(*TIMESTAMP_TYPES):
            if match.group(2) and match.group(2).strip("0:.") != "":
                return None  # a time of day other than midnight: not a day boundary this can move
            return _DateLiteral(day, "timestamp", to)
        return None
    kind = (meta.type if meta is not None else "").upper()
    return _DateLiteral(day, "string", None) if "DATE" in kind or "TIME" in kind else None


def _is_conjunct(node: exp.Expr) -> bool:
    """A condition ANDed into a WHERE, HAVING or JOIN … ON (not under OR, NOT, CASE or a function)."""
    child, parent = node, node.parent
    while isinstance(parent, (exp.And, exp.Paren)):
        child, parent = parent, parent.parent
    if isinstance(parent, (exp.Where, exp.Having)):
        return True
    return isinstance(parent, exp.Join) and parent.args.get("on") is child


def _drop(node: exp.Expr) -> None:
    """Remove one ANDed condition: its AND is replaced by the other side."""
    while isinstance(node.parent, exp.Paren):
        node = node.parent
    parent = node.parent
    if not isinstance(parent, exp.And):
        raise _Unresolved("a date filter could not be removed from its condition")
    other = parent.expression if parent.this is node else parent.this
    parent.replace(other)


def _date_filters(query: _Query) -> list[_DateFilter]:
    found: list[_DateFilter] = []
    for node in query.tree.find_all(exp.Between, *_COMPARISONS):
        if isinstance(node, exp.Between):
            column = _column_of(node.this)
            if column is None:
                continue
            meta = query.meta(column)
            low, high = _date_literal(node.args["low"], meta), _date_literal(node.args["high"], meta)
            if low is None or high is None:
                continue
            bounds: tuple[date | None, date | None] = (low.day, high.day)
            literal, expression = low, node.this
        else:
            op = _COMPARISONS[type(node)]
            left, right = node.this, node.expression
            column = _column_of(left)
            other = right
            if column is None:
                column, other, op = _column_of(right), left, _FLIPPED[op]
                left = right
            if column is None:
                continue
            found_literal = _date_literal(other, query.meta(column))
            if found_literal is None:
                continue
            literal, expression, day = found_literal, left, found_literal.day
            timestamp = literal.kind == "timestamp"
            bounds = {
                ">=": (day, None), ">": (day if timestamp else day + timedelta(days=1), None),
                "<=": (None, day), "<": (None, day - timedelta(days=1)), "=": (day, day),
            }[op]  # fmt: skip
        table = query.table_of(column)
        partition = bool(table and table.partition_column and table.partition_column.lower() == column.name.lower())
        key = (id(node.find_ancestor(exp.Select)), column.table.lower(), column.name.lower())
        found.append(_DateFilter(node, expression, key, bounds[0], bounds[1],
                                 literal, partition))  # fmt: skip
    return found


def _bounds(filters: list[_DateFilter]) -> tuple[date | None, date | None]:
    lowers = [f.lower for f in filters if f.lower is not None]
    uppers = [f.upper for f in filters if f.upper is not None]
    return (max(lowers) if lowers else None, min(uppers) if uppers else None)


def _span(bounds: tuple[date | None, date | None]) -> str:
    low, high = bounds
    if low is not None and high is not None:
        return str(low) if low == high else f"{low} – {high}"
    return f"from {low} on" if low is not None else f"up to {high}"


def _value_filters(query: _Query) -> list[_ValueFilter]:
    found: list[_ValueFilter] = []
    for node in query.tree.find_all(exp.EQ, exp.NEQ, exp.In):
        if isinstance(node, exp.In):
            column = node.this if isinstance(node.this, exp.Column) else None
            items = node.expressions
        else:
            column, items = None, []
            if isinstance(node.this, exp.Column) and isinstance(node.expression, exp.Literal):
                column, items = node.this, [node.expression]
            elif isinstance(node.expression, exp.Column) and isinstance(node.this, exp.Literal):
                column, items = node.expression, [node.this]
        if column is None or not items or not all(isinstance(i, exp.Literal) for i in items):
            continue
        literals = [i for i in items if isinstance(i, exp.Literal)]
        meta = query.meta(column)
        if all(i.is_int for i in literals):
            found.append(_ValueFilter(node, column, meta, [int(str(i.this)) for i in literals], True))
        elif all(i.is_string for i in literals) and not any(_date_literal(i, meta) for i in literals):
            found.append(_ValueFilter(node, column, meta, [str(i.this) for i in literals], False))
    return found


# -- the rewrite ---------------------------------------------------------------------------------------------------


def id_entities(catalog: Catalog) -> set[str]:
    """The words that name an id column anywhere in the catalog: `advertiser_id` → "advertiser"."""
    words: set[str] = set()
    for table in catalog.tables.values():
        for column in table.columns:
            words |= _entity_words(column.name, catalog)
    return words


def _entity_words(name: str, catalog: Catalog) -> set[str]:
    names = [name.lower()]
    term = catalog.term_for(name)
    if term is not None:
        names.append(term.name.lower())
    words: set[str] = set()
    for candidate in names:
        if candidate.endswith("_id") and len(candidate) > 3:
            base = candidate[:-3]
            words |= {base, base.split("_")[-1], base.replace("_", " ")}
    return words


def _mentions(meta: Column, text: str) -> list[str]:
    """The column's profiled values the question names (codes like 'US' by exact case; words in any case)."""
    found = []
    lowered = re.sub(r"[_\-]", " ", text.lower())
    for value in meta.values or []:
        if not re.search(r"[A-Za-z]", value) or value.lower() in ("true", "false"):
            continue
        if len(value) <= 3:
            hit = re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text)
        else:
            words = re.sub(r"[_\-]", " ", value.lower())
            hit = re.search(rf"\b{re.escape(words)}s?\b", lowered)
        if hit:
            found.append(value)
    return found


def _date_node(day: date, literal: _DateLiteral) -> exp.Expr:
    if literal.kind == "string":
        return exp.Literal.string(day.isoformat())
    text = f"{day.isoformat()} 00:00:00" if literal.kind == "timestamp" else day.isoformat()
    assert literal.to is not None
    return exp.Cast(this=exp.Literal.string(text), to=literal.to.copy())


def _period_condition(group: list[_DateFilter], period: Period) -> exp.Expr:
    first = group[0]
    column, literal = first.column, first.literal
    has_upper = any(f.upper is not None for f in group)
    upper: date | None = period.end if (has_upper or not period.to_date) else None
    lower = period.start
    parts: list[exp.Expr] = []
    if literal.kind == "timestamp":
        if lower is not None:
            parts.append(exp.GTE(this=column.copy(), expression=_date_node(lower, literal)))
        if upper is not None:
            parts.append(exp.LT(this=column.copy(), expression=_date_node(upper + timedelta(days=1), literal)))
    elif lower is not None and upper is not None:
        parts.append(exp.Between(this=column.copy(), low=_date_node(lower, literal), high=_date_node(upper, literal)))
    elif lower is not None:
        parts.append(exp.GTE(this=column.copy(), expression=_date_node(lower, literal)))
    elif upper is not None:
        parts.append(exp.LTE(this=column.copy(), expression=_date_node(upper, literal)))
    if not parts:
        raise _Unresolved("the period has no bound")
    condition = parts[0]
    for part in parts[1:]:
        condition = exp.And(this=condition, expression=part)
    return exp.Paren(this=condition) if len(parts) > 1 else condition


def _rewrite_dates(query: _Query, named: Named, result: Rewrite) -> None:
    filters = _date_filters(query)
    groups: dict[tuple[int, str, str], list[_DateFilter]] = {}
    for f in filters:
        groups.setdefault(f.key, []).append(f)
    result.has_dates = bool(groups)
    # One date role: the filters that share one period; several periods → those on partition columns, if one.
    periods = {key: _bounds(group) for key, group in groups.items()}
    role = list(groups)
    if len(set(periods.values())) > 1:
        on_partitions = [k for k in groups if any(f.partition for f in groups[k])]
        if on_partitions and len({periods[k] for k in on_partitions}) == 1:
            role = on_partitions
            others = ", ".join(f"{k[2]} ({_span(periods[k])})" for k in groups if k not in on_partitions)
            result.kept.append(f"its other date filters as they were: {others}")
        else:
            role = []
    if role:
        result.before = _span(periods[role[0]])
    if not named.periods:
        return
    if len(named.periods) > 1:
        raise _Unresolved("your question names more than one period (" + ", ".join(f"“{p.text}”" for p in
                          named.periods) + "); a reused query has one")  # fmt: skip
    period = named.periods[0]
    result.period = period
    if not groups:
        raise _Unresolved(f"your question names a period (“{period.text}”) but the past query has no date filter "
                          "to put it in")  # fmt: skip
    if not role:
        spans = "; ".join(f"{k[2]}: {_span(v)}" for k, v in periods.items())
        raise _Unresolved(f"the past query filters several dates with different periods ({spans}): which one "
                          f"“{period.text}” is for is not clear")  # fmt: skip
    for key in role:
        for f in groups[key]:
            if not _is_conjunct(f.node):
                raise _Unresolved(f"its date filter on {key[2]} is not a plain AND condition (under OR, NOT or an "
                                  "expression)")  # fmt: skip
    before = periods[role[0]]
    target_upper = period.end if (before[1] is not None or not period.to_date) else None
    result.after = _span((period.start, target_upper))
    if before == (period.start, target_upper):
        return
    for key in role:
        group = groups[key]
        condition = _period_condition(group, period)
        for f in group[1:]:
            _drop(f.node)
        group[0].node.replace(condition)
    result.changes.append(f"dates {result.before} → {result.after} (“{period.text}”: {period.reading})")


def _rewrite_values(query: _Query, named: Named, result: Rewrite) -> None:
    filters = _value_filters(query)
    # Ids: each mention to the id column of its entity (all of that column's filters: a CTE may repeat one).
    by_column: dict[str, list[_ValueFilter]] = {}
    for f in filters:
        if f.numeric and f.column.name.lower().endswith("_id"):
            by_column.setdefault(f.column.name.lower(), []).append(f)
    assigned: dict[str, list[int]] = {}
    for mention in named.ids:
        targets = [c for c in by_column if mention.entity in _entity_words(c, query.catalog)
                   or (mention.entity == "id" and len(by_column) == 1)]  # fmt: skip
        targets = [c for c in targets if c[:-3] == mention.entity] or targets
        if len(targets) != 1:
            where = "no" if not targets else "more than one"
            raise _Unresolved(f"your question names “{mention.text}” but the past query has {where} "
                              f"{mention.entity} filter to put it in")  # fmt: skip
        assigned.setdefault(targets[0], []).append(mention.value)
    for name, group in by_column.items():
        values = assigned.get(name)
        before = sorted({int(v) for f in group for v in f.values})
        shown = ", ".join(str(v) for v in before)
        if values is None:
            result.kept.append(f"{name} = {shown} (your question names no {name.removesuffix('_id')})")
            result.narrowed = True
            continue
        values = sorted(set(values))
        if values == before:
            continue
        for f in group:
            literals = [exp.Literal.number(v) for v in values]
            replacement: exp.Expr
            if isinstance(f.node, exp.NEQ):
                if len(literals) > 1:
                    raise _Unresolved(f"its {name} filter excludes one id; your question names several")
                replacement = exp.NEQ(this=f.column.copy(), expression=literals[0])
            elif len(literals) == 1:
                replacement = exp.EQ(this=f.column.copy(), expression=literals[0])
            else:
                replacement = exp.In(this=f.column.copy(), expressions=literals)
            f.node.replace(replacement)
        result.changes.append(f"{name} {shown} → {', '.join(str(v) for v in values)}")
    # Profiled values: the question's value of a column replaces the filter's; a named value the query has no
    # place for (the column is neither filtered nor grouped) leaves it unresolved.
    strings = [f for f in filters if not f.numeric]
    touched: set[int] = set()
    used_columns = {c.name.lower() for c in query.tree.find_all(exp.Column)}
    quoted = list(named.quoted)
    for table in query.tables():
        for column in table.columns:
            if not column.values:
                continue
            mentioned = _mentions(column, named.rest)
            mentioned += [v for q in quoted for v in column.values if v.lower() == q.lower() and v not in mentioned]
            if not mentioned:
                continue
            if _NEGATION.search(named.rest):  # "non-checkout conversions": `= 'CHECKOUT'` would say the opposite
                raise _Unresolved(f"your question negates something and names {', '.join(map(repr, mentioned))} "
                                  f"({column.name}): a past query's filter is not turned around")  # fmt: skip
            quoted = [q for q in quoted if q.lower() not in {v.lower() for v in mentioned}]
            here = [f for f in strings if f.meta is column]
            if not here:
                if column.name.lower() in used_columns:
                    continue  # grouped or selected: the question's values are among its rows
                raise _Unresolved(f"your question names {', '.join(repr(v) for v in mentioned)} ({column.name}) but "
                                  f"the past query does not filter or group by {column.name}")  # fmt: skip
            for f in here:
                touched.add(id(f))
                if set(f.values) == set(mentioned):
                    continue
                if not isinstance(f.node, exp.In) and len(mentioned) > 1:
                    raise _Unresolved(f"your question names several {column.name} values "
                                      f"({', '.join(mentioned)}) where the past query filters one")  # fmt: skip
                new = [exp.Literal.string(v) for v in mentioned]
                node: exp.Expr = (exp.In(this=f.column.copy(), expressions=new) if isinstance(f.node, exp.In)
                                  else type(f.node)(this=f.column.copy(), expression=new[0]))  # fmt: skip
                f.node.replace(node)
                result.changes.append(f"{column.name} {', '.join(map(repr, f.values))} → "
                                      f"{', '.join(map(repr, mentioned))}")  # fmt: skip
    # Quoted text: into the one free-text (not profiled) string filter.
    free = [f for f in strings if f.meta is None or not f.meta.values]
    if quoted:
        if len(quoted) > 1 or len(free) != 1 or isinstance(free[0].node, exp.In):
            places = "no" if not free else "more than one" if len(free) > 1 else "a list"
            raise _Unresolved(f"your question quotes {', '.join(repr(q) for q in quoted)} but the past query has "
                              f"{places} single text filter to put it in")  # fmt: skip
        f = free[0]
        touched.add(id(f))
        f.node.replace(type(f.node)(this=f.column.copy(), expression=exp.Literal.string(quoted[0])))
        result.changes.append(f"{f.column.name} {f.values[0]!r} → {quoted[0]!r}")
    for f in strings:
        if id(f) not in touched:
            result.kept.append(f"{f.column.name} {'IN' if isinstance(f.node, exp.In) else '='} "
                               f"{', '.join(map(repr, f.values))}")  # fmt: skip
            result.narrowed = True


def _rewrite_thresholds(query: _Query, named: Named, result: Rewrite) -> None:
    comparisons = []
    for node in query.tree.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE):
        number = isinstance(node.expression, exp.Literal) and not node.expression.is_string
        if isinstance(node.this, exp.Column) and number:
            comparisons.append(node)
    for threshold in named.thresholds:
        matches = [n for n in comparisons
                   if threshold.noun in {singular(w) for w in n.this.name.lower().split("_")}]  # fmt: skip
        if len(matches) != 1:
            raise _Unresolved(f"your question names “{threshold.text}” but the past query has "
                              f"{'no' if not matches else 'more than one'} matching comparison")  # fmt: skip
        node = matches[0]
        old = f"{node.this.name} {_COMPARISONS[type(node)]} {node.expression.this}"
        node.replace(_BUILD[threshold.op](this=node.this.copy(), expression=exp.Literal.number(threshold.value)))
        new = f"{node.this.name} {threshold.op} {threshold.value}"
        if old != new:
            result.changes.append(f"{old} → {new}")


def _rewrite_limit(query: _Query, named: Named, result: Rewrite) -> None:
    tree = query.tree
    if not isinstance(tree, exp.Query):
        return
    limit = tree.args.get("limit")
    current = limit.expression if isinstance(limit, exp.Limit) else None
    value = int(current.this) if isinstance(current, exp.Literal) and current.is_int else None
    if named.count is None:
        if value is not None:
            result.kept.append(f"its LIMIT {value}")
        return
    if not tree.args.get("order"):
        raise _Unresolved(f"your question asks for “{named.count_text}” but the past query does not rank its rows "
                          "(no ORDER BY)")  # fmt: skip
    if value != named.count:
        tree.set("limit", exp.Limit(expression=exp.Literal.number(named.count)))
        result.changes.append(f"LIMIT {value if value is not None else '(none)'} → {named.count}")


def reparameterise(question: str, sql: str, catalog: Catalog, dialect: str, as_of: date | None = None) -> Rewrite:
    """The past query `sql` (in `dialect`) with the question's literals, or unchanged with the reasons."""
    result = Rewrite(sql=sql)
    today = as_of or catalog.as_of or datetime.now().date()
    try:
        named = read_question(question, today, id_entities(catalog))
    except (ValueError, OverflowError):  # a year 0, a date past 9999: nothing is placed
        result.unresolved.append("your question names a date out of range")
        return result
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except (ParseError, TokenError) as exc:
        result.unresolved.append(f"the past query could not be parsed ({str(exc).splitlines()[0][:120]})")
        return result
    query = _Query(tree, catalog)
    try:
        _rewrite_dates(query, named, result)
        _rewrite_values(query, named, result)
        _rewrite_thresholds(query, named, result)
        _rewrite_limit(query, named, result)
    except _Unresolved as reason:
        result.unresolved.append(str(reason))
        result.changes = []
        result.after = None
        return result
    if result.changes:
        result.sql = tree.sql(dialect=dialect, pretty=True)
        result.changed = True
    return result
