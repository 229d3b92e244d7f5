"""What the guard reports: structured issues an LLM and a person can both act on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

SUPPORTED_DIALECTS = ("duckdb", "trino", "spark", "postgres", "sqlite", "mysql")


class Issue(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. unknown_column")
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int | None = None
    column: int | None = None
    subject: str | None = Field(None, description="The table, column or function concerned")
    hint: str | None = Field(None, description="What to do instead")

    def __str__(self) -> str:
        where = f" (line {self.line}, column {self.column})" if self.line is not None else ""
        hint = f" Hint: {self.hint}" if self.hint else ""
        return f"[{self.code}] {self.message}{where}.{hint}"


class GuardResult(BaseModel):
    ok: bool = Field(description="True when there is no error (warnings allowed)")
    dialect: str
    sql: str | None = Field(None, description="The query to run: LIMIT added or capped. None when refused")
    errors: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)
    tables: list[str] = Field(default_factory=list, description="Catalog tables the query reads")
    columns: list[str] = Field(default_factory=list, description="table.column pairs it reads (stars expanded)")
    output_columns: list[str] = Field(
        default_factory=list,
        description="The columns the query returns as checked, stars expanded against the catalog (_col_N: an "
        "unnamed expression). The engine refuses a result whose columns differ: a stale catalog.",
    )

    def feedback(self) -> str:
        """The errors as a short list, for a retry prompt."""
        return "\n".join(f"- {issue}" for issue in self.errors)
