"""Functions: typed sqlglot functions unless denied; names sqlglot does not know must be on the dialect's
allow-list (an invented function passes sqlglot's parser silently)."""

from __future__ import annotations

import difflib

from sqlglot import exp

from governance.sqlguard.context import Context
from governance.sqlguard.functions import ALLOWED_ANONYMOUS, DENIED, DENIED_IN_DIALECT

_WHY = "it reads files, sleeps or reaches outside the query"


def check(ctx: Context) -> None:
    allowed = ALLOWED_ANONYMOUS[ctx.dialect]
    denied = DENIED | DENIED_IN_DIALECT.get(ctx.dialect, frozenset())
    for func in ctx.of(exp.Func):
        if isinstance(func.parent, exp.Table):
            continue  # a table function: reported by the tables rule
        if isinstance(func, exp.Anonymous):
            name = str(func.this).lower()[:80]
            if name in denied:
                ctx.error("forbidden_function", f"function {name} is not allowed", func, subject=name, hint=_WHY)
            elif name not in allowed:
                close = difflib.get_close_matches(name, sorted(allowed), n=3, cutoff=0.7)
                ctx.error("unknown_function", f"function {name} is not known in {ctx.dialect}", func,
                          subject=name, hint=f"did you mean {', '.join(close)}?" if close
                          else f"use a {ctx.dialect} function")  # fmt: skip
        elif func.sql_name().lower() in denied:
            name = func.sql_name().lower()
            ctx.error("forbidden_function", f"function {name} is not allowed", func, subject=name, hint=_WHY)
    # `schema.upper(x)` is not the built-in upper: an engine with a catalog of functions (Spark, Trino) runs the
    # function of that name the schema holds, whatever it does. Only built-in functions, by their plain name.
    for dot in ctx.of(exp.Dot):
        if isinstance(dot.expression, exp.Func):
            name = (dot.expression.sql_name() if not isinstance(dot.expression, exp.Anonymous)
                    else str(dot.expression.this)).lower()[:80]  # fmt: skip
            ctx.error("qualified_function", f"function {name} is named with a schema or catalog", dot, subject=name,
                      hint=f"call the built-in function as {name}(…)")  # fmt: skip
