"""A query (SELECT/UNION/…) with no DML, DDL, `SELECT … INTO`, locking or commands anywhere inside.

A script transform (Spark/Hive `SELECT TRANSFORM(…) USING 'program'`) runs a program on the engine's
machines: a command, refused like the others."""

from __future__ import annotations

from sqlglot import exp

from governance.sqlguard.context import Context

WRITES = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Into,
          exp.Lock, exp.TruncateTable, exp.Copy, exp.Pragma, exp.Set, exp.Use, exp.Transaction)  # fmt: skip
COMMANDS = (exp.QueryTransform,)


def check(ctx: Context) -> None:
    statement = ctx.statement
    assert statement is not None
    if not isinstance(statement, exp.Query):
        kind = statement.key.upper() if isinstance(statement, exp.Expression) else "?"
        code = "not_read_only" if isinstance(statement, WRITES) else "not_a_query"
        ctx.error(code, f"only queries may run; this is {kind}", statement,
                  hint="write a single SELECT (WITH … SELECT is fine)")  # fmt: skip
        return
    for node in ctx.of(*WRITES):
        ctx.error("not_read_only", f"{node.key.upper()} inside a query is not allowed", node,
                  hint="queries only: no writes, SELECT INTO, locks or commands")  # fmt: skip
    for node in ctx.of(*COMMANDS):
        ctx.error("not_read_only", "TRANSFORM … USING runs a program on the engine's machines; not allowed", node,
                  subject="TRANSFORM", hint="queries only: express the transformation in SQL")  # fmt: skip
