"""The SQL guard: validate a query against the catalog and the caller's policy; transpile dialects.

Pure and fast (sqlglot only, no engine): `check(sql, catalog, dialect, policy)` → `GuardResult`. The rules
live one per module in `governance/sqlguard/rules/`; `guard.RULES` lists them in the order they run.
"""

from governance.sqlguard.guard import MAX_SQL_CHARS, RULES, GuardPolicy, Rule, check
from governance.sqlguard.issues import SUPPORTED_DIALECTS, GuardResult, Issue
from governance.sqlguard.transpile import Transpiled, transpile

__all__ = [
    "MAX_SQL_CHARS",
    "RULES",
    "SUPPORTED_DIALECTS",
    "GuardPolicy",
    "GuardResult",
    "Issue",
    "Rule",
    "Transpiled",
    "check",
    "transpile",
]
