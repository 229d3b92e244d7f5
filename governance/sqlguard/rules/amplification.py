"""Functions whose output grows with an argument must have that argument written in the query, and small.

The row cap bounds rows, not bytes. `lpad(x, 2000000000, 'y')`, `repeat(x, 10^9)`, `space(n)`, a series of
10^10 numbers or a `printf` width of 10^9 make a short query that returns, or only computes, gigabytes: five
rows of `lpad('a', 100000000, 'b')` took 3.7 GB of the serving process on DuckDB, and a larger width or more
rows ends it (a builtin tool runs inside the gateway). Each such size must be a literal within a bound; a size
computed from data is refused (it cannot be bounded before the query runs). Results that are large because
the data is (an aggregate over a big table) are bounded by the `sql` tool's byte budget after the fetch.
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


def _format_widths(ctx: Context, node: exp.Expr, name: str, pattern: Any) -> None:
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        ctx.error("unbounded_output", f"{name}'s format must be a string written in the query", node,
                  subject=name, hint=_HINT)  # fmt: skip
        return
    text = str(pattern.this)
    if _FMT_NESTED.search(text):
        _bounded(ctx, node, name, "width and precision", None, MAX_WIDTH)
        return
    sizes = [g for m in _PRINTF.finditer(text) for g in m.groups() if g]
    sizes += [d for m in _FMT.finditer(text) for d in re.findall(r"\*|\d+", m.group(1))]
    for size in sizes:
        _bounded(ctx, node, name, "width and precision", None if size.startswith("*") else Decimal(size), MAX_WIDTH)


def check(ctx: Context) -> None:
    for pad in ctx.of(exp.Pad):
        name = "lpad" if pad.args.get("is_left") else "rpad"
        _bounded(ctx, pad, name, "length", _number(pad.expression), MAX_WIDTH)
    for repeat in ctx.of(exp.Repeat):
        _bounded(ctx, repeat, "repeat", "count", _number(repeat.args.get("times")), MAX_REPEAT)
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
