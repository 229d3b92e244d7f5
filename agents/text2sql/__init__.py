"""The Text-to-SQL agent: retrieve → reuse or generate → validate (sqlglot guard + EXPLAIN) → execute."""

from agents.text2sql.agent import MAX_ATTEMPTS, Answer, Text2SQLAgent, extract_sql
from agents.text2sql.classify import Kind, classify

__all__ = ["MAX_ATTEMPTS", "Answer", "Kind", "Text2SQLAgent", "classify", "extract_sql"]
