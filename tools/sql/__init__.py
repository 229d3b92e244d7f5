"""The governed `sql` tool: table/query search, validation and read-only execution (library + MCP server)."""

from tools.sql.engine import Engine, EngineError, Rows
from tools.sql.service import SqlError, SqlService, SqlSettings

__all__ = ["Engine", "EngineError", "Rows", "SqlError", "SqlService", "SqlSettings"]
