"""The SQL guard: validate a query against the catalog and the caller's policy; transpile dialects.

Pure and fast (sqlglot only, no engine): `check(sql, catalog, dialect, policy)` → `GuardResult`.
"""

from governance.sqlguard.guard import MAX_SQL_CHARS, GuardPolicy, check
from governance.sqlguard.issues import SUPPORTED_DIALECTS, GuardResult, Issue
from governance.sqlguard.transpile import Transpiled, transpile

__all__ = [
    "MAX_SQL_CHARS",
    "SUPPORTED_DIALECTS",
    "GuardPolicy",
    "GuardResult",
    "Issue",
    "Transpiled",
    "check",
    "transpile",
]
