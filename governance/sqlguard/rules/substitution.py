"""Text the engine rewrites before it parses the query is refused: what the guard checked must be what runs.

Spark (and Hive before it) substitutes `${name}`, `${env:NAME}`, `${system:name}` and `${hiveconf:name}` in the
SQL text before parsing it — inside string literals and comments too. In a literal that reads the server's
environment or settings into a result; in a comment it turns text the guard saw as a comment into SQL it never
checked. The Spark engine switches substitution off; the guard refuses the syntax anyway, wherever it appears,
in the dialects whose engines substitute.
"""

from __future__ import annotations

from governance.sqlguard.context import Context

SUBSTITUTING_DIALECTS = frozenset({"spark", "spark2", "databricks", "hive"})
MARKER = "${"


def check(ctx: Context) -> None:
    if ctx.dialect not in SUBSTITUTING_DIALECTS or MARKER not in ctx.sql:
        return
    at = ctx.sql.index(MARKER)
    line_start = ctx.sql.rfind("\n", 0, at) + 1
    ctx.error(
        "variable_substitution",
        f"`${{…}}` is a variable {ctx.dialect} substitutes in the SQL text before parsing it, even inside strings "
        "and comments",
        subject="${",
        hint="write the value itself; to match the characters '${', use concat('$', '{')",
        line=ctx.sql.count("\n", 0, at) + 1,
        column=at - line_start + 1,
    )
