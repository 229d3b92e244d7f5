"""Columns qualified against the catalog with sqlglot's `qualify` (stars expanded, so `SELECT *` over a PII
column is caught later); unknown and ambiguous columns are reported apart, with glossary hints.

Fail closed: a construct `qualify` cannot follow is refused (`unverifiable_columns`), never waved
through — the lineage rules can only protect columns that were resolved.
"""

from __future__ import annotations

import difflib
import re

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from governance.sqlguard.context import FLAT_SCHEMA, Context
from governance.sqlguard.rules.output import ORIGINAL

Mapping = dict[str, dict[str, dict[str, str]]]
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Like, exp.ILike)
_UNRESOLVED = re.compile(r"Column '?\"?([^'\"]+)\"?'? could not be resolved|Unknown column: (\S+)")


def check(ctx: Context) -> None:
    statement = ctx.statement
    assert statement is not None
    mapping: Mapping = {}
    for table in ctx.tables.values():
        db, name = ctx.schema_key(table)
        mapping.setdefault(db, {})[name] = {c.name.lower(): (c.type or "TEXT") for c in table.columns}
    if _case_collision(ctx):
        return
    # Identifiers compare case-insensitively (the catalog lower-cases; BIRD mixes cases). The caller's spelling
    # is kept aside for the output (a quoted mixed-case name means that name on PostgreSQL).
    for identifier in ctx.of(exp.Identifier):
        text = str(identifier.this)
        if text != text.lower():
            identifier.meta[ORIGINAL] = text
            identifier.set("this", text.lower())
    for node in ctx.of(exp.Table):
        if isinstance(node.this, exp.Identifier) and not ctx.is_cte_ref(node):
            known = ctx.tables.get(".".join(p for p in (node.catalog, node.db, node.name) if p))
            if known is not None:
                db, name = ctx.schema_key(known)
                node.set("catalog", None)
                node.set("db", exp.to_identifier(db))
                node.set("this", exp.to_identifier(name))
    if ctx.dialect == "sqlite":
        _sqlite_double_quoted_strings(statement, mapping)
    schema = MappingSchema(dict(mapping), dialect=ctx.dialect, normalize=False)
    try:
        qualified = qualify(statement, schema=schema, dialect=ctx.dialect, validate_qualify_columns=True,
                            quote_identifiers=False, identify=False)  # fmt: skip
        ctx.qualified = repair_parents(qualified)
    except OptimizeError as exc:
        _column_error(ctx, str(exc), statement, mapping)
    except RecursionError:
        raise
    except Exception as exc:  # sqlglot raises assorted errors (even AssertionError) on constructs it cannot follow
        ctx.error("unverifiable_columns", f"the guard cannot resolve this query's columns: {str(exc)[:200]}",
                  hint="simplify the construct (name each column, avoid dialect-specific expansions)")  # fmt: skip


# Dialects where two spellings of a table or alias name that differ only in case can name different things:
# PostgreSQL (a quoted name keeps its case), MySQL (table aliases are case-sensitive on Unix).
_CASE_SENSITIVE = {"postgres": "quoted", "mysql": "all"}


def _case_collision(ctx: Context) -> bool:
    """Refuse table and alias names that the guard would fold together but the engine would not.

    The guard compares names case-insensitively; on PostgreSQL `u` and `"U"` are two aliases, so an inner `"U"`
    would hide an outer `u` for the guard only, and `u.email` would be checked against the wrong table."""
    mode = _CASE_SENSITIVE.get(ctx.dialect)
    if mode is None:
        return False
    spellings: dict[str, set[str]] = {}
    for identifier in ctx.of(exp.Identifier):
        parent, key = identifier.parent, identifier.arg_key
        naming = isinstance(parent, exp.TableAlias | exp.Table) or (isinstance(parent, exp.Column) and key == "table")
        if not naming or (isinstance(parent, exp.TableAlias) and key == "columns"):
            continue
        text = str(identifier.this)
        effective = text if mode == "all" or identifier.quoted else text.lower()
        spellings.setdefault(text.lower(), set()).add(effective)
    clashing = sorted(k for k, v in spellings.items() if len(v) > 1)
    if clashing:
        name = clashing[0][:60]
        ctx.error("case_ambiguous", f"the names {', '.join(sorted(spellings[clashing[0]]))[:120]} differ only in case; "
                  f"{ctx.dialect} treats them as different tables or aliases", subject=name,
                  hint="spell each table and alias one way")  # fmt: skip
    return bool(clashing)


def repair_parents(root: exp.Expr) -> exp.Expr:
    """Point every node at its real parent again.

    qualify's rewrites (INSTR → STR_POSITION, say) can move a child into a new node while the child still
    points at the node it left; the rules after this one walk up from columns to find their scope and
    clause, so the links must be right.
    """
    stack = [root]
    while stack:
        node = stack.pop()
        for key, value in node.args.items():
            children = value if isinstance(value, list) else [value]
            for index, child in enumerate(children):
                if isinstance(child, exp.Expr):
                    child.parent, child.arg_key = node, key
                    child.index = index if isinstance(value, list) else None
                    stack.append(child)
    return root


def _column_error(ctx: Context, message: str, statement: exp.Expr, mapping: Mapping) -> None:
    match = _UNRESOLVED.search(message)
    name = (match.group(1) or match.group(2)).strip("\"'`")[:120] if match else None
    if name is None:
        detail = message.split(". Line", maxsplit=1)[0][:200]
        ctx.error("unresolved_column", detail, hint="check column names against the catalog")
        return
    bare = name.rsplit(".", 1)[-1].lower()
    owners = [f"{db}.{t}" if db != FLAT_SCHEMA else t
              for db, tables in mapping.items() for t, cols in tables.items() if bare in cols]  # fmt: skip
    node = next((c for c in statement.find_all(exp.Column) if c.name.lower() == bare), None)
    if "." not in name and len(owners) > 1:
        ctx.error("ambiguous_column", f"column {bare} is ambiguous: it is in {', '.join(owners)}", node,
                  subject=bare, hint="qualify it with a table alias")  # fmt: skip
        return
    known = sorted({c for tables in mapping.values() for cols in tables.values() for c in cols})
    close = difflib.get_close_matches(bare, known, n=3, cutoff=0.6)
    term = ctx.catalog.term_for(bare)
    hint = f"did you mean {', '.join(close)}?" if close else "describe the table to see its columns"
    if term is not None:
        held = [c for c in known if ctx.catalog.term_for(c) is term]
        if held:
            hint = f"{bare} means {term.name} here: the column is {', '.join(held)}"
    ctx.error("unknown_column", f"column {name} does not exist in the tables the query reads", node,
              subject=name, hint=hint)  # fmt: skip


def _sqlite_double_quoted_strings(tree: exp.Expr, mapping: Mapping) -> None:
    """SQLite reads a double-quoted name that is no column as a string literal; so do we — but only in a
    value position (the right side of a comparison, an IN list), where a string is what was meant."""
    known = {c for tables in mapping.values() for cols in tables.values() for c in cols}
    aliases = {a.alias.lower() for a in tree.find_all(exp.Alias)}
    for column in list(tree.find_all(exp.Column)):
        identifier = column.this
        parent = column.parent
        value_position = (isinstance(parent, exp.In) and column is not parent.this) or (
            isinstance(parent, _COMPARISONS) and column is parent.expression
        )
        if (value_position and isinstance(identifier, exp.Identifier) and identifier.quoted and not column.table
                and identifier.name.lower() not in known and identifier.name.lower() not in aliases):  # fmt: skip
            column.replace(exp.Literal.string(identifier.name))
