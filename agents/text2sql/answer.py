"""What the Text-to-SQL agent answers (its own module: the `sql` MCP server's `ask` schema comes from
it, and importing the agent's LangGraph machinery is not needed for that)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agents.text2sql.classify import Kind
from embeddings.retrieval import TableHit
from governance.sqlguard import Issue
from tools.sql.engine import Rows
from tools.sql.service import ReusableQuery


class Answer(BaseModel):
    question: str
    kind: Kind
    mode: Literal["llm", "retrieval_only"]
    sql: str | None = Field(None, description="The SQL to run (engine dialect), validated")
    sql_in_dialect: str | None = Field(None, description="The same SQL in the requested dialect, when different")
    dialect: str
    source: Literal["reused", "generated", "given"] | None = None
    tables: list[str] = Field(default_factory=list, description="Tables the SQL reads")
    reused_queries: list[str] = Field(default_factory=list, description="Ids of the past queries it rests on")
    candidate_tables: list[TableHit] = Field(default_factory=list)
    past_queries: list[ReusableQuery] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    errors: list[Issue] = Field(default_factory=list)
    attempts: int = 0
    executed: bool = False
    rows: Rows | None = None
    definitions: list[str] = Field(default_factory=list, description="Glossary terms and metrics the question names")
    notes: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
