"""Exactly one statement in the given dialect, within size and nesting bounds.

sqlglot's parser and optimizer recurse: a query nested a few thousand levels deep exhausts the
interpreter's stack. Depth is bounded on the tokens before parsing and on the tree after it, so such a
query is refused with a message instead of failing with an empty one.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokenizer_core import TokenType

from governance.sqlguard.context import Context
from governance.sqlguard.issues import SUPPORTED_DIALECTS

MAX_SQL_CHARS = 100_000
MAX_NESTING = 64  # brackets inside brackets
MAX_TREE_DEPTH = 400  # expression nesting after parsing (long AND/OR chains nest too)
MAX_EXPANSION = 20_000  # nodes a select list may grow to once aliases referring to aliases are expanded


def check(ctx: Context) -> None:
    if ctx.dialect not in SUPPORTED_DIALECTS:
        ctx.error("unsupported_dialect", f"dialect {ctx.dialect[:40]!r} is not supported",
                  hint=f"use one of {', '.join(SUPPORTED_DIALECTS)}")  # fmt: skip
        return
    if not ctx.sql.strip():
        ctx.error("empty", "the SQL is empty")
        return
    if len(ctx.sql) > MAX_SQL_CHARS:
        ctx.error("too_long", f"the SQL is {len(ctx.sql):,} characters; at most {MAX_SQL_CHARS:,}")
        return
    dialect = Dialect.get_or_raise(ctx.dialect)
    try:
        tokens = dialect.tokenize(ctx.sql)
    except TokenError as exc:
        ctx.error("syntax_error", f"the SQL does not tokenize: {str(exc)[:200]}", hint="check quotes and brackets")
        return
    depth = deepest = 0
    for token in tokens:
        if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET, TokenType.L_BRACE):
            depth += 1
            deepest = max(deepest, depth)
        elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET, TokenType.R_BRACE):
            depth -= 1
    if deepest > MAX_NESTING:
        ctx.error("too_complex", f"the SQL nests brackets {deepest} levels deep; at most {MAX_NESTING}",
                  hint="flatten the query: use CTEs instead of deeply nested subqueries")  # fmt: skip
        return
    try:
        # The tokens counted above are parsed as they are (no second tokenization).
        statements = [s for s in dialect.parser().parse(tokens, ctx.sql) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        description = str(first.get("description", exc)).split(". Line")[0][:200]
        ctx.error(
            "syntax_error",
            f"the SQL does not parse as {ctx.dialect}: {description}",
            hint="check the syntax near that position",
            line=first.get("line"),
            column=first.get("col"),
        )
        return
    except TokenError as exc:
        ctx.error("syntax_error", f"the SQL does not tokenize: {str(exc)[:200]}", hint="check quotes and brackets")
        return
    if len(statements) != 1:
        ctx.error("multiple_statements", f"{len(statements)} statements; exactly one query is allowed"
                  if statements else "no statement found", hint="send one SELECT at a time")  # fmt: skip
        return
    statement = statements[0]
    if _depth(statement) > MAX_TREE_DEPTH:
        ctx.error("too_complex", f"the query's expressions nest more than {MAX_TREE_DEPTH} levels deep",
                  hint="split long chains of conditions (IN lists are cheaper than OR chains)")  # fmt: skip
        return
    if alias_expansion(statement) > MAX_EXPANSION:
        ctx.error("too_complex", "the select list refers to its own aliases so deeply that checking it would "
                  f"expand it beyond {MAX_EXPANSION:,} expressions",
                  hint="compute intermediate values in a CTE instead of chaining aliases")  # fmt: skip
        return
    ctx.statement = statement
    # One walk of the tree; every rule after this one filters this list instead of walking again.
    ctx.nodes = list(statement.walk())
    ctx.cte_refs = cte_references(statement)


def cte_references(root: exp.Expr) -> set[int]:
    """The Table nodes that name a CTE visible where they stand.

    A CTE is visible in the query it is defined for and in the CTEs defined after it in the same WITH (and in
    its own body when the WITH is recursive) — not elsewhere. A table named like a CTE of another subquery is
    a real table, checked against the catalog like any other (the engine reads the real table there).
    """
    found: set[int] = set()
    stack: list[tuple[exp.Expr, frozenset[str]]] = [(root, frozenset())]
    while stack:
        node, visible = stack.pop()
        if (isinstance(node, exp.Table) and not node.db and isinstance(node.this, exp.Identifier)
                and node.name.lower() in visible):  # fmt: skip
            found.add(id(node))
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With):
            names: list[str] = []
            for cte in with_.expressions:
                name = cte.alias_or_name.lower()
                own = frozenset([name]) if with_.args.get("recursive") else frozenset()
                stack.append((cte, visible | frozenset(names) | own))
                names.append(name)
            visible = visible | frozenset(names)
        for key, value in node.args.items():
            if key == "with_":
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, exp.Expr):
                    stack.append((child, visible))
    return found


def alias_expansion(root: exp.Expr) -> int:
    """How large the largest select list grows when qualification replaces each reference to an earlier alias
    by that alias's expression (`a1 + a1 AS a2, a2 + a2 AS a3, …` doubles at each step)."""
    largest = 0
    for select in root.find_all(exp.Select):
        weights: dict[str, int] = {}
        for projection in select.expressions:
            weight = 0
            for node in projection.walk():
                if isinstance(node, exp.Column) and not node.table and node.name.lower() in weights:
                    weight += weights[node.name.lower()]
                else:
                    weight += 1
            largest = max(largest, weight)
            if largest > MAX_EXPANSION:
                return largest
            if isinstance(projection, exp.Alias):
                weights[projection.alias.lower()] = weight
    return largest


def _depth(root: exp.Expr) -> int:
    """Depth of the tree, iteratively (the tree may be too deep for recursion)."""
    deepest = 0
    stack: list[tuple[exp.Expr, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_TREE_DEPTH:
                return deepest
        for child in node.iter_expressions():
            stack.append((child, depth + 1))
    return deepest
