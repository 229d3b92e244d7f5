"""Every error leaves as JSON naming the field and the reason; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from registry.errors import RegistryError, Unauthorized

log = logging.getLogger("bastion.api")


def _field(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        headers = None
        if isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{exc.message}"'}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": _field(err["loc"]), "reason": str(err["msg"]).removeprefix("Value error, ")}
            for err in exc.errors()
        ]
        first = details[0] if details else {"field": "", "reason": "invalid request"}
        return JSONResponse(
            {
                "error": f"{first['field']}: {first['reason']}",
                "code": "validation_error",
                "field": first["field"],
                "errors": details,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "code": "http_error"}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error; see the server log", "code": "internal"}, status_code=500)
