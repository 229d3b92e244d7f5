"""The SQL guard: one read-only query, every table and column real, nothing the caller may not see.

`check(sql, catalog, dialect, policy)` runs the rules below in order (one module each, under
`governance/sqlguard/rules/`) and returns every issue it finds, not only the first, with a location and
a hint where one helps. A rule marked `halt` stops the run when anything so far is an error (later rules
need what it established); `clean` rules run only when nothing so far is an error.

0. substitution: no `${…}` where the engine would substitute it in the text before parsing (Spark, Hive);
1. parse: one statement in the dialect, bounded in size and nesting;
2. read-only: a query with no DML, DDL, `SELECT … INTO`, locking or commands inside; shape: non-empty
   select lists;
3. tables: each exists (CTE names excepted), none deprecated, Tier 3 warned, no table functions;
   functions: typed sqlglot functions unless denied, others on the dialect's allow-list; constructs:
   nothing that stands for several or unnamed columns (`COLUMNS(…)`, a star inside a function,
   positional references, parameters, positional renaming of a table's columns);
4. at least one catalog table read; LIMIT added or capped;
5. columns qualified against the catalog (stars expanded); then every column reference in every clause
   resolved to a named column (fail closed: whole-row and unresolvable references are refused);
6. lineage: PII and above-clearance columns refused wherever they appear; partition filters on large
   partitioned tables;
7. the output: the checked tree itself, generated in the dialect (what runs is what was checked).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from governance.catalog import Catalog
from governance.sqlguard.context import Context, GuardPolicy
from governance.sqlguard.issues import GuardResult
from governance.sqlguard.rules import (
    amplification,
    calls,
    columns,
    constructs,
    limit,
    lineage,
    output,
    parse,
    partitions,
    read_only,
    resolve,
    shape,
    substitution,
    tables,
)
from governance.sqlguard.rules.parse import MAX_SQL_CHARS

__all__ = ["MAX_SQL_CHARS", "RULES", "GuardPolicy", "Rule", "check"]

log = logging.getLogger("bastion.sqlguard")


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    run: Callable[[Context], None]
    halt: bool = False  # stop after this rule when there is any error
    clean: bool = False  # run only when there is no error so far


RULES: tuple[Rule, ...] = (
    Rule("substitution", substitution.check, halt=True),
    Rule("parse", parse.check, halt=True),
    Rule("read_only", read_only.check),
    Rule("shape", shape.check, halt=True),
    Rule("tables", tables.check),
    Rule("functions", calls.check),
    Rule("amplification", amplification.check),
    Rule("constructs", constructs.check),
    Rule("reads_a_table", shape.reads_a_table, halt=True, clean=True),
    Rule("limit", limit.apply),
    Rule("columns", columns.check, halt=True),
    Rule("resolve", resolve.check, halt=True),
    Rule("lineage", lineage.check),
    Rule("partitions", partitions.check),
    Rule("output", output.render, clean=True),
)


def check(sql: str, catalog: Catalog, dialect: str = "duckdb", policy: GuardPolicy | None = None) -> GuardResult:
    ctx = Context(sql, catalog, dialect, policy or GuardPolicy())
    try:
        for rule in RULES:
            if rule.clean and ctx.errors:
                continue
            rule.run(ctx)
            if rule.halt and ctx.errors:
                break
    except RecursionError:
        # The bounds in `parse` should make this unreachable; if a construct still nests too deeply for
        # sqlglot, the query is refused with a reason rather than failing with an empty message.
        ctx.output = None
        ctx.error("too_complex", "the query nests too deeply for the guard to check",
                  hint="flatten it: CTEs instead of nested subqueries, IN lists instead of OR chains")  # fmt: skip
    except Exception as exc:  # fail closed: a query the guard could not finish checking does not run
        log.exception("the SQL guard failed on a query")
        ctx.output = None
        ctx.error("guard_error", f"the guard could not check this query ({type(exc).__name__})",
                  hint="simplify the query; if it is valid, report it with the query")  # fmt: skip
    return ctx.result()
