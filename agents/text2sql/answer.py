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


class Reuse(BaseModel):
    """How a verified past query was reused: re-parameterised for the question, or unchanged and why."""

    query_id: str
    status: Literal["reparameterised", "unchanged", "as_is"] = Field(
        description="reparameterised: the question's literals put in and re-validated; unchanged: they could not "
        "be (see `why`), the past query is reused as it was; as_is: there was nothing to change"
    )
    message: str | None = Field(None, description="What to know first about the reused query, in one sentence")
    dates_differ: bool = Field(False, description="The past query's dates are not the question's (said up front)")
    dates_before: str | None = Field(None, description="The past query's period")
    dates_after: str | None = Field(None, description="The period the answer's SQL covers, when re-parameterised")
    changes: list[str] = Field(default_factory=list, description="Literals rewritten: old → new")
    kept: list[str] = Field(default_factory=list, description="Literals the question does not name, kept")
    why: list[str] = Field(default_factory=list, description="Why it could not be re-parameterised")


class Answer(BaseModel):
    question: str
    kind: Kind
    mode: Literal["llm", "retrieval_only"]
    sql: str | None = Field(None, description="The SQL to run (engine dialect), validated")
    sql_in_dialect: str | None = Field(None, description="The same SQL in the requested dialect, when different")
    dialect: str
    source: Literal["reused", "composed", "generated", "given"] | None = Field(
        None,
        description="reused: a verified past query; composed: built from the catalog's metrics, columns and "
        "joins (no LLM; see `reading`); generated: by the LLM; given: the question's own SQL",
    )
    tables: list[str] = Field(default_factory=list, description="Tables the SQL reads")
    reused_queries: list[str] = Field(default_factory=list, description="Ids of the past queries it rests on")
    candidate_tables: list[TableHit] = Field(default_factory=list)
    past_queries: list[ReusableQuery] = Field(default_factory=list)
    declined: str | None = Field(
        None,
        description="Why no SQL answers the question (retrieval-only mode): it asks for a number that means nothing, "
        "such as daily actives summed over days or a score summed; the reason says how to ask instead",
    )
    warnings: list[str] = Field(default_factory=list)
    errors: list[Issue] = Field(default_factory=list)
    attempts: int = 0
    executed: bool = False
    rows: Rows | None = None
    truncated: bool = Field(False, description="The rows stop at a row cap or at the LIMIT the guard added")
    reuse: Reuse | None = Field(None, description="How the past query was reused, when it was")
    reading: list[str] = Field(
        default_factory=list,
        description="How a composed query read the question, part by part: table, measures, "
        "breakdowns, filters, period",
    )
    definitions: list[str] = Field(default_factory=list, description="Glossary terms and metrics the question names")
    notes: list[str] = Field(default_factory=list)
    timings_ms: dict[str, float] = Field(default_factory=dict)
