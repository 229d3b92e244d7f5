from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from registry.api.deps import Ctx

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="200 when the database is reachable, 503 otherwise")
def healthz(ctx: Ctx) -> JSONResponse:
    if ctx.db.ping():
        return JSONResponse({"status": "ok"})
    return JSONResponse({"status": "unavailable", "error": "database unreachable"}, status_code=503)
