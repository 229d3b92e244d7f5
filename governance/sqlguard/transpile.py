"""Translate a query between dialects and say what did not translate."""

from __future__ import annotations

import sqlglot
from pydantic import BaseModel, Field
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, ParseError, TokenError

from governance.sqlguard.functions import ALLOWED_ANONYMOUS
from governance.sqlguard.issues import SUPPORTED_DIALECTS


class Transpiled(BaseModel):
    sql: str | None
    source: str
    target: str
    unsupported: list[str] = Field(default_factory=list, description="Constructs the target cannot express")


def transpile(sql: str, source: str, target: str) -> Transpiled:
    for dialect in (source, target):
        if dialect not in SUPPORTED_DIALECTS:
            return Transpiled(sql=None, source=source, target=target,
                              unsupported=[f"dialect {dialect!r} is not supported"])  # fmt: skip
    try:
        statements = [s for s in sqlglot.parse(sql, read=source) if s is not None]
    except (ParseError, TokenError) as exc:
        return Transpiled(sql=None, source=source, target=target, unsupported=[f"does not parse: {exc}"])
    generator = Dialect.get_or_raise(target).generator(unsupported_level=ErrorLevel.IGNORE, pretty=True)
    out = [generator.generate(statement, copy=True) for statement in statements]
    unsupported = list(dict.fromkeys(generator.unsupported_messages))
    allowed = ALLOWED_ANONYMOUS[target]
    for statement in statements:
        for func in statement.find_all(exp.Anonymous):
            name = str(func.this).lower()
            if name not in allowed:
                unsupported.append(f"function {name} has no known {target} equivalent")
    return Transpiled(sql=";\n".join(out), source=source, target=target, unsupported=unsupported)
