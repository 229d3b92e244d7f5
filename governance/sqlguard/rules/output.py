"""The SQL that will run is the tree the guard checked, generated in the engine's dialect.

It is generated from the qualified tree — stars expanded into the columns the lineage rules checked, every
column bound to its table — not from the caller's text. Where sqlglot and the engine could disagree about
what `*` (with its EXCLUDE/REPLACE modifiers, or twice in a list) or an unqualified name stands for, the
engine now runs exactly the columns that were checked: a disagreement changes a result, it cannot leak a
column. Readability is kept where it costs nothing: the caller's identifier spelling is restored (quoted
only where the dialect needs it), and aliases sqlglot invented for unnamed expressions (`_col_1`) are dropped
so the engine names those columns as it always did. A construct the dialect's generator cannot express is
refused rather than silently dropped.
"""

from __future__ import annotations

import re

from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, UnsupportedError

from governance.sqlguard.context import Context

ORIGINAL = "bastion_original"  # Identifier.meta key: the spelling before the guard lower-cased it
_INVENTED = re.compile(r"_col_\d+")


def render(ctx: Context) -> None:
    assert ctx.qualified is not None
    tree = ctx.qualified  # the last rule: nothing reads the checked tree after this, so no copy
    ctx.output_columns = list(tree.named_selects) if isinstance(tree, exp.Query) else []
    # qualify may refer to its own names (ORDER BY 2 → ORDER BY _col_1): those stay.
    referenced = {c.name for c in tree.find_all(exp.Column) if not c.table}
    for alias in list(tree.find_all(exp.Alias)):
        if (_INVENTED.fullmatch(alias.alias) and alias.alias not in ctx.sql and alias.alias not in referenced
                and alias.arg_key == "expressions" and isinstance(alias.parent, exp.Select)
                and alias.parent.parent is None):  # fmt: skip
            alias.replace(alias.this)  # only the outermost select's names reach the caller
    dialect = Dialect.get_or_raise(ctx.dialect)
    for identifier in tree.find_all(exp.Identifier):
        original = (identifier.meta or {}).get(ORIGINAL) if identifier.meta else None
        if original is not None:
            identifier.set("this", original)
        dialect.quote_identifier(identifier, identify=False)
    try:
        # Without the caller's comments: an engine may read text in one (MySQL's `/*! … */`, Spark's `${…}`),
        # and nothing the guard checked is in them. Hints are nodes of the tree, not comments: they stay.
        ctx.output = dialect.generate(tree, copy=False, pretty=True, unsupported_level=ErrorLevel.RAISE, comments=False)
    except UnsupportedError as exc:
        ctx.error("unsupported_construct", f"{ctx.dialect} cannot express part of this query: {str(exc)[:200]}",
                  hint="rewrite that part in the engine's dialect")  # fmt: skip
