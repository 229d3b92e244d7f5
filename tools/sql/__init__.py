"""The governed `sql` tool: table/query search, validation and read-only execution (library + MCP server).

The names below load on first use: the engine's worker processes (`tools.sql.sandbox`) import this package and
need none of the service's dependencies (the knowledge index, the embedding model).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.sql.engine import Engine, EngineError, Rows
    from tools.sql.service import SqlError, SqlService, SqlSettings

__all__ = ["Engine", "EngineError", "Rows", "SqlError", "SqlService", "SqlSettings"]
_HOMES = {"Engine": "engine", "EngineError": "engine", "Rows": "engine",
          "SqlError": "service", "SqlService": "service", "SqlSettings": "service"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"tools.sql.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'tools.sql' has no attribute {name!r}")
