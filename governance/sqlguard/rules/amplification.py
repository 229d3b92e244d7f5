"""Functions whose output grows with an argument must have that argument written in the query, and small.

The row cap bounds rows, not bytes. `lpad(x, 2000000000, 'y')`, `repeat(x, 10^9)`, `space(n)`, a series of
10^10 numbers or a `printf` width of 10^9 make a short query that returns, or only computes, gigabytes: five
rows of `lpad('a', 100000000, 'b')` took 3.7 GB of the serving process on DuckDB, and a larger width or more
rows ends it (a builtin tool runs inside the gateway). Each such size must be a literal within a bound; a size
computed from data is refused (it cannot be bounded before the query runs). Sizes multiply when one such
value is `repeat`ed or is a replacement (copied once per match): the product is bounded too, followed
through derived columns by name (`_Growth`).

This bounds what a query says, not everything it can build (a recursive CTE doubling a string, an aggregate
over a join): the `sql` tool runs its engine in processes with bounded memory for that (tools/sql/sandbox.py).
Results that are large because the data is are bounded by the `sql` tool's byte budget.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlglot import exp

from governance.sqlguard.context import Context

MAX_WIDTH = 10_000  # characters a pad, space or format width may produce per value
MAX_REPEAT = 1_000  # copies `repeat` may make of its input
MAX_SERIES = 10_000  # elements a series may have (a daily spine of 27 years; an hourly one of a year)
MAX_REPLACEMENT = 100  # the factor a `replace`ment may be grown by (it is copied once per match: the data decides)

_HINT = "write the size as a number in the query, within the bound; aggregate or page instead of widening values"
# A unit's shortest length (a month of 28 days): the series' count is then an upper bound.
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800,
            "month": 28 * 86400, "quarter": 89 * 86400, "year": 365 * 86400}  # fmt: skip
# printf-style specifications: flags, width, precision (a `*` takes it from an argument); and {:…} specifications.
# A position (`%1$…`) and SQLite's `,` and `!` flags included; `*` (and `*2$`) take the size from an argument.
_PRINTF = re.compile(r"%(?:\d+\$)?[-+ #0',!]*(\*(?:\d+\$)?|\d+)?(?:\.(\*(?:\d+\$)?|\d+))?[a-zA-Z]")
_FMT = re.compile(r"\{[^{}:]*:([^{}]*)\}")
_FMT_NESTED = re.compile(r"\{[^{}]*:[^{}]*\{")  # `{:>{}}`: a width taken from an argument


def _number(node: exp.Expr | None) -> Decimal | None:
    """The value of a numeric literal (optionally negated or parenthesised); None for anything computed."""
    while isinstance(node, exp.Paren):
        node = node.this
    sign = 1
    if isinstance(node, exp.Neg):
        sign, node = -1, node.this
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return sign * Decimal(str(node.this))
        except InvalidOperation:
            return None
    return None


def _moment(node: exp.Expr | None) -> datetime | None:
    """A date or timestamp written in the query (CAST('…' AS DATE|TIMESTAMP[TZ]), DATE '…', a string literal),
    with its offset when it has one."""
    if isinstance(node, exp.Cast):
        node = node.this
    if isinstance(node, exp.Literal) and node.is_string:
        try:
            parsed = datetime.fromisoformat(str(node.this).strip())
        except ValueError:
            try:
                parsed = datetime.combine(date.fromisoformat(str(node.this).strip()), datetime.min.time())
            except ValueError:
                return None
        return parsed
    return None


def _interval_seconds(node: exp.Expr | None) -> Decimal | None:
    if not isinstance(node, exp.Interval):
        return None
    amount = _number(node.this)
    if amount is None and isinstance(node.this, exp.Literal):  # INTERVAL '1' DAY
        try:
            amount = Decimal(str(node.this.this).split()[0])
        except (InvalidOperation, IndexError):
            return None
    unit = str(node.args.get("unit") or "").lower().rstrip("s")
    if amount is None or unit not in _SECONDS:
        return None
    return amount * _SECONDS[unit]


def _series_length(series: exp.GenerateSeries) -> Decimal | None:
    """An upper bound of the number of elements, or None when the ends or the step are not literals."""
    start, end, step = series.args.get("start"), series.args.get("end"), series.args.get("step")
    low, high = _number(start), _number(end)
    if low is not None and high is not None:
        size = _number(step) if step is not None else Decimal(1)
        if size is None or size == 0:
            return None
        return max(Decimal(0), (high - low) / size) + 1
    first, last = _moment(start), _moment(end)
    seconds = _interval_seconds(step) if step is not None else Decimal(86400)
    if first is None or last is None or seconds is None or seconds == 0:
        return None
    if (first.tzinfo is None) != (last.tzinfo is None):  # one end with an offset, one without: not comparable here
        return None
    # With offsets, the real span (dropping them made a 26-hour series look empty, found by review); both
    # directions count, as the engine may step either way.
    return abs(Decimal((last - first).total_seconds())) / abs(seconds) + 1


def _bounded(ctx: Context, node: exp.Expr, name: str, what: str, value: Decimal | None, bound: int) -> None:
    if value is not None and abs(value) <= bound:
        return
    got = "a value computed when the query runs" if value is None else f"{value:f}"[:40]
    ctx.error("unbounded_output", f"{name}'s {what} must be a number written in the query, at most {bound:,} "
              f"(got {got})", node, subject=name, hint=_HINT)  # fmt: skip


def _format_sizes(pattern: Any) -> list[Decimal | None] | None:
    """The widths and precisions a format string names (None for one taken from an argument); None when the
    format is not a string written in the query."""
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return None
    text = str(pattern.this)
    if _FMT_NESTED.search(text):
        return [None]
    sizes = [g for m in _PRINTF.finditer(text) for g in m.groups() if g]
    sizes += [d for m in _FMT.finditer(text) for d in re.findall(r"\*|\d+", m.group(1))]
    return [None if size.startswith("*") else Decimal(size) for size in sizes]


def _format_widths(ctx: Context, node: exp.Expr, name: str, pattern: Any) -> None:
    sizes = _format_sizes(pattern)
    if sizes is None:
        ctx.error("unbounded_output", f"{name}'s format must be a string written in the query", node,
                  subject=name, hint=_HINT)  # fmt: skip
        return
    for size in sizes:
        _bounded(ctx, node, name, "width and precision", size, MAX_WIDTH)


_FORMATTERS = {"printf", "format", "format_string", "zeroblob"}
_HUGE = Decimal(10) ** 30  # a factor past any bound (and the cap that keeps a recursive definition finite)


def _name(node: exp.Expr) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Pad):
        return "lpad" if node.args.get("is_left") else "rpad"
    return {"generateseries": "generate_series", "regexpreplace": "regexp_replace"}.get(node.key, node.key)


def _widths(pattern: Any) -> Decimal:
    """The largest width or precision a format string names (1 when none; _HUGE when not a literal)."""
    sizes = _format_sizes(pattern)
    if sizes is None or None in sizes:
        return _HUGE
    return max([Decimal(1), *(size for size in sizes if size is not None)])


def _size(value: Decimal | None) -> Decimal:
    return _HUGE if value is None else min(abs(value), _HUGE)


class _Growth:
    """How many times larger than the data it reads a value may be: the product of the sizes written in the
    query through nested calls, and through derived columns (of subqueries, CTEs, set operations, struct
    fields), matched by name — so a column of the same name elsewhere counts too: refused, never missed.

    Each name's factor is computed once, on first use (memoised; linear in the query's size). A name reached
    again while its own definition is being computed is a recursive CTE: if that definition grows its value,
    each step grows it again, so the factor is past any bound."""

    def __init__(self, ctx: Context) -> None:
        self.definitions: dict[str, list[exp.Expr]] = {}
        for alias in ctx.of(exp.Alias):
            self._define(alias.alias, alias.this)
        for holder in ctx.of(exp.CTE, exp.Subquery):  # `t(a, b)`, `WITH r(a, b) AS`: a list renames by position
            alias = holder.args.get("alias")
            listed = [c.name for c in (alias.columns if alias is not None else [])]
            for branch in _branches(holder.this) if listed else []:
                for name, projection in zip(listed, branch.selects, strict=False):
                    self._define(name, projection)
        for field in ctx.of(exp.PropertyEQ):  # a struct's field, read as `x.v`
            if field.expression is not None:
                self._define(field.name, field.expression)
        for operation in ctx.of(exp.SetOperation):  # a UNION's columns are named by its first branch
            if isinstance(operation.parent, exp.SetOperation):
                continue  # its branches are the outermost operation's
            branches = _branches(operation)
            names = [s.alias_or_name for s in branches[0].selects] if branches else []
            for branch in branches[1:]:
                for name, projection in zip(names, branch.selects, strict=False):
                    self._define(name, projection)
        self.known: dict[str, Decimal] = {}
        self.nodes: dict[int, Decimal] = {}
        self.computing: set[str] = set()
        self.recursive = False

    def _define(self, name: str, value: exp.Expr) -> None:
        self.definitions.setdefault(name.lower(), []).append(value)

    def name(self, name: str, scope: dict[str, Decimal]) -> Decimal:
        key = name.lower()
        if key in scope:
            return scope[key]
        if key in self.known:
            return self.known[key]
        if key not in self.definitions:
            return Decimal(1)
        if key in self.computing:
            self.recursive = True
            return Decimal(1)
        self.computing.add(key)
        outer, self.recursive = self.recursive, False
        factor = max(self.of(value) for value in self.definitions[key])
        if self.recursive and factor > 1:
            factor = _HUGE
        self.recursive = outer
        self.computing.discard(key)
        self.known[key] = factor
        return factor

    def at(self, node: exp.Expr) -> dict[str, Decimal]:
        """The lambda parameters visible at `node`, with their factors (the innermost lambda's win)."""
        scope: dict[str, Decimal] = {}
        ancestor = node.parent
        while ancestor is not None:
            if isinstance(ancestor, exp.Lambda) and isinstance(ancestor.parent, exp.Expr):
                source = ancestor.parent.this
                if isinstance(source, exp.Expr) and source is not ancestor:
                    element = self.of(source, self.at(ancestor.parent))
                    scope = {p.name.lower(): element for p in ancestor.expressions} | scope
            ancestor = ancestor.parent
        return scope

    def of(self, node: exp.Expr, scope: dict[str, Decimal] | None = None) -> Decimal:
        """`node`'s factor; each node's computed once outside lambdas (the checks ask for nested operands)."""
        if scope:
            return self._of(node, scope)
        cached = self.nodes.get(id(node))
        if cached is None:
            cached = self.nodes[id(node)] = self._of(node, {})
        return cached

    def _of(self, node: exp.Expr, scope: dict[str, Decimal]) -> Decimal:
        if isinstance(node, exp.Repeat):
            return min(_size(_number(node.args.get("times"))) * self.of(node.this, scope), _HUGE)
        if isinstance(node, exp.Pad):  # exactly `width` characters, whatever it pads
            return _size(_number(node.expression))
        if isinstance(node, exp.Space):
            return _size(_number(node.this))
        if isinstance(node, exp.GenerateSeries):
            return _size(_series_length(node))
        if isinstance(node, exp.Unnest | exp.Explode):  # one element at a time: a series' length is rows
            return max([Decimal(1), *(self.of(e, scope) for e in node.expressions
                                      if not isinstance(e, exp.GenerateSeries))])  # fmt: skip
        if isinstance(node, exp.Column):
            return self.name(node.name, scope)
        if isinstance(node, exp.Identifier) and not isinstance(node.parent, exp.Column | exp.Alias | exp.TableAlias):
            return self.name(node.name, scope)  # a lambda's parameter
        own = Decimal(1)
        if isinstance(node, exp.Format):
            own = _widths(node.this)
        elif isinstance(node, exp.Anonymous) and str(node.this).lower() in _FORMATTERS and node.expressions:
            first = node.expressions[0]
            own = _size(_number(first)) if str(node.this).lower() == "zeroblob" else _widths(first)
        factors = [own]
        for child in node.iter_expressions():
            if isinstance(child, exp.Lambda):  # `list_transform(l, lambda z: …)`: z is an element of l, there only
                source = node.this if isinstance(node.this, exp.Expr) and node.this is not child else None
                element = self.of(source, scope) if source is not None else Decimal(1)
                inner = {**scope, **{p.name.lower(): element for p in child.expressions}}
                factors.append(self.of(child.this, inner))
            else:
                factors.append(self.of(child, scope))
        return max(factors)


def _branches(query: exp.Expr) -> list[exp.Select]:
    """The SELECTs whose projections are a query's columns (every branch of a UNION, INTERSECT, EXCEPT)."""
    if isinstance(query, exp.Select):
        return [query]
    if isinstance(query, exp.SetOperation):
        return _branches(query.this) + _branches(query.expression)
    if isinstance(query, exp.Subquery | exp.Paren):
        return _branches(query.this)
    return []


def _multiplied(ctx: Context, node: exp.Expr, name: str, inner: Decimal, product: Decimal, bound: int) -> None:
    """A value some size grew (`inner` > 1), copied again: refused when the sizes' `product` passes `bound`."""
    if inner > 1 and product > bound:
        shown = "more than 10^30" if product >= _HUGE else f"{product:f}"[:40]
        ctx.error("unbounded_output", f"{name} of a value another size function grew: their sizes multiply to "
                  f"{shown}, at most {bound:,} (repeat once, with the product as its count)", node, subject=name,
                  hint=_HINT)  # fmt: skip


def check(ctx: Context) -> None:
    growth = _Growth(ctx) if ctx.of(exp.Repeat, exp.Replace, exp.RegexpReplace) else None
    for pad in ctx.of(exp.Pad):
        name = "lpad" if pad.args.get("is_left") else "rpad"
        _bounded(ctx, pad, name, "length", _number(pad.expression), MAX_WIDTH)
    for repeat in ctx.of(exp.Repeat):
        _bounded(ctx, repeat, "repeat", "count", _number(repeat.args.get("times")), MAX_REPEAT)
        inner = growth.of(repeat.this, growth.at(repeat)) if growth is not None else Decimal(1)
        _multiplied(ctx, repeat, "repeat", inner, inner * _size(_number(repeat.args.get("times"))), MAX_WIDTH)
    for replace in ctx.of(exp.Replace, exp.RegexpReplace):  # as many copies as matches: the data decides
        replacement = replace.args.get("replacement")
        inner = Decimal(1)
        if replacement is not None and growth is not None:
            inner = growth.of(replacement, growth.at(replace))
        _multiplied(ctx, replace, _name(replace), inner, inner, MAX_REPLACEMENT)
    for space in ctx.of(exp.Space):
        _bounded(ctx, space, "space", "count", _number(space.this), MAX_WIDTH)
    for series in ctx.of(exp.GenerateSeries):
        _bounded(ctx, series, "generate_series", "length", _series_length(series), MAX_SERIES)
    for fmt in ctx.of(exp.Format):
        _format_widths(ctx, fmt, "format", fmt.this)
    for call in ctx.of(exp.Anonymous):
        name = str(call.this).lower()
        if name in {"printf", "format", "format_string"} and call.expressions:
            _format_widths(ctx, call, name, call.expressions[0])
        elif name == "zeroblob" and call.expressions:  # SQLite: n zero bytes
            _bounded(ctx, call, name, "size", _number(call.expressions[0]), MAX_WIDTH)
