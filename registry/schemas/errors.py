"""The one shape every error response has (`registry.api.errors` writes it; OpenAPI documents it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    field: str = Field(description="Where: `body.tools[0].name`, `query.limit`, `name`, …")
    reason: str


class ErrorOut(BaseModel):
    """`{"error": "...", "code": "...", "field": "...", "errors": [...]}`; echoed input is bounded."""

    error: str = Field(description="What went wrong, for a person")
    code: str = Field(
        description=(
            "Stable machine-readable kind: `validation_error` (the request breaks this schema), `invalid` (it keeps "
            "to the schema but breaks a rule the schema cannot state), `bad_request`, `unauthorized`, `forbidden`, "
            "`not_found`, `conflict`, `method_not_allowed`"
        )
    )
    field: str | None = Field(None, description="The field, parameter or path segment at fault, when there is one")
    errors: list[ErrorDetail] | None = Field(None, description="Every problem found (at most 20), when several")
