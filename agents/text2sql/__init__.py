"""The Text-to-SQL agent: retrieve → reuse or generate → validate (sqlglot guard + EXPLAIN) → execute.

`Answer` and the classifier import without LangGraph; the agent loads on first access.
"""

from typing import Any

from agents.text2sql.answer import Answer
from agents.text2sql.classify import Kind, classify

__all__ = ["MAX_ATTEMPTS", "Answer", "Kind", "Text2SQLAgent", "classify", "extract_sql"]


def __getattr__(name: str) -> Any:
    if name in ("MAX_ATTEMPTS", "Text2SQLAgent", "extract_sql"):
        from agents.text2sql import agent

        return getattr(agent, name)
    raise AttributeError(name)
