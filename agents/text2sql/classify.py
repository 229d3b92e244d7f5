"""What a request asks for: docs lookup, table discovery, query discovery, text-to-SQL or execution.

Deterministic on purpose: it routes before any LLM is involved, and works without one.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["docs_lookup", "table_discovery", "query_discovery", "text_to_sql", "execution"]

# An explicit request to run something: whatever follows is the SQL, and only that SQL may run.
_EXPLICIT = re.compile(r"^\s*(?:run|execute)\s*:", re.IGNORECASE)
# Text that is SQL, not a question: a query, or a statement with its unmistakable shape (so "delete from
# ads.campaigns" is refused by the guard as a write, never answered with some other, past query).
_SQL_START = re.compile(
    r"^\s*(?:(?:run|execute)\s+)?(?:(?:with|select)\b|insert\s+(?:or\s+\w+\s+)?into|delete\s+from|update\s+\S+\s+set|"
    r"merge\s+into|replace\s+into|upsert\s+into|(?:create|drop|alter)\s+(?:or\s+replace\s+)?(?:temp(?:orary)?\s+)?"
    r"(?:table|view|schema|database|index|function|macro|sequence|type|secret)\b|truncate\b|grant\s+\w+|"
    r"revoke\s+\w+|copy\s+\S+\s+(?:to|from)\b|attach\b|detach\b|pragma\b|install\s+\w+|load\s+\w+|"
    r"call\s+\w+\s*\(|set\s+\w+\s*=|export\s+database|import\s+database|vacuum\b|checkpoint\b)",
    re.IGNORECASE | re.DOTALL,
)
_TABLES = re.compile(r"\b(which|what|find|list|show)\b.*\b(tables?|datasets?|sources?)\b|\bwhere (?:can|do) i find\b",
                     re.IGNORECASE)  # fmt: skip
_QUERIES = re.compile(r"\b(past|previous|existing|saved|verified|example)\s+(quer(?:y|ies)|sql)\b|"
                      r"\bhas anyone (?:queried|written)\b", re.IGNORECASE)  # fmt: skip
_DOCS = re.compile(r"^\s*(what (?:is|does|are)|define|definition of|meaning of|explain)\b(?!.*\b(by|per|for each|"
                   r"last|top|how many|total|sum|average)\b)", re.IGNORECASE)  # fmt: skip


def classify(request: str) -> Kind:
    if _EXPLICIT.match(request) or _SQL_START.match(request):
        return "execution"
    if _QUERIES.search(request):
        return "query_discovery"
    if _TABLES.search(request):
        return "table_discovery"
    if _DOCS.search(request):
        return "docs_lookup"
    return "text_to_sql"


def sql_in(request: str) -> str:
    """The SQL of an execution request ("run: SELECT …")."""
    return re.sub(r"^\s*(?:run|execute)\s*:?\s*", "", request, count=1, flags=re.IGNORECASE).strip()
