from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from registry.api.deps import Ctx

router = APIRouter(tags=["health"])

_STATUS = {"type": "object", "properties": {"status": {"type": "string"}, "error": {"type": "string"}},
           "required": ["status"]}  # fmt: skip
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The database answers and its schema is at the version this release needs",
          "content": {"application/json": {"schema": _STATUS}}},
    503: {"description": "The database is unreachable, or its schema is not at head (`bastion db upgrade`)",
          "content": {"application/json": {"schema": _STATUS}}},
}  # fmt: skip


@router.get("/healthz", summary="200 when the database answers at the right schema, 503 otherwise",
            response_class=JSONResponse, responses=RESPONSES)  # fmt: skip
def healthz(ctx: Ctx) -> JSONResponse:
    problem = ctx.db.health()
    if problem is None:
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable", "error": problem}, status_code=503)
