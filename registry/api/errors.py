"""Every error leaves as JSON naming the field and the reason; never a stack trace, never unbounded input."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.convertors import misnamed_server
from registry.errors import MAX_DETAILS, MAX_FIELD, NotFound, RegistryError, Unauthorized, clip
from registry.schemas.base import RULE
from registry.schemas.errors import ErrorOut

log = logging.getLogger("bastion.api")

# What each error status means on this API; routes list the ones they can answer (`error_responses`).
DESCRIPTIONS = {
    400: "Malformed request: a cursor this API did not issue, a missing value",
    401: "Missing, malformed, expired or revoked credentials (with a `WWW-Authenticate: Bearer` challenge)",
    403: "Valid credentials without the permission this needs",
    404: "No such resource, or none the caller may see",
    409: "Conflicts with the current state (already exists, wrong lifecycle state, still in use)",
    422: "Invalid input: `field` names it, `errors` lists every problem",
}
CHALLENGE_HEADER = {
    "WWW-Authenticate": {
        "description": "`Bearer` challenge (RFC 6750) naming what was wrong with the credentials",
        "schema": {"type": "string"},
    }
}
# Methods an `Allow` header may list.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_UNQUOTABLE = re.compile(r'[^\x20-\x7e]|["\\]')


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for these error statuses, each with the error model."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorOut, "description": DESCRIPTIONS[status]}
        if status == 401:
            entry["headers"] = CHALLENGE_HEADER
        out[status] = entry
    return out


def challenge(message: str, *, presented: bool = True) -> str:
    """A `WWW-Authenticate` value. Without credentials, a bare challenge (RFC 6750 §3.1: no error code when
    the request had no authentication); otherwise why they were refused, as a quoted-string: no quotes, no
    controls, bounded."""
    if not presented:
        return 'Bearer realm="bastion"'
    description = clip(_UNQUOTABLE.sub("?", message), MAX_FIELD)
    return f'Bearer realm="bastion", error="invalid_token", error_description="{description}"'


def _field(loc: Sequence[int | str]) -> str:
    return ".".join(str(part) for part in loc)


def validation_details(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic's errors as `{field, reason}`: no echoed `input`, every string bounded, at most MAX_DETAILS."""
    details = []
    for err in errors[:MAX_DETAILS]:
        loc = tuple(err.get("loc", ()))
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            # FastAPI puts the error's character offset in the location: keep the field `body`.
            at = f" at character {loc[1]}" if len(loc) > 1 else ""
            loc = loc[:1]
            reason = f"not valid JSON{at}: {err.get('ctx', {}).get('error', 'cannot be parsed')}"
        details.append({"field": clip(_field(loc), MAX_FIELD), "reason": clip(reason)})
    return details


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of `app` would serve at this path, but the one refused (RFC 9110: a 405 lists
    them in `Allow`)."""
    allowed = []
    for method in METHODS:
        if method == scope.get("method"):
            continue
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in app.router.routes):
            allowed.append(method)
    return allowed


class AllowOn405:
    """Adds `Allow` to a 405 that lacks one, whoever answered it (the MCP transport refuses some methods)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                headers = MutableHeaders(scope=message)
                if "allow" not in headers:
                    headers["Allow"] = ", ".join(allowed_methods(scope["app"], scope))
            await send(message)

        await self.app(scope, receive, send_with_allow)


def _routing_error(request: Request, exc: StarletteHTTPException) -> JSONResponse | None:
    """404/405 from routing: a malformed server name is a 404 naming it; a 405 always says what is allowed."""
    if exc.status_code not in (404, 405):
        return None
    routes: list[BaseRoute] = getattr(request.app.state, "server_routes", [])
    name = misnamed_server(routes, request.method, request.url.path)
    if name is not None:
        missing = NotFound(f"server {name!r} does not exist", field="name")
        return JSONResponse(missing.body(), status_code=missing.status)
    if exc.status_code == 404:
        return JSONResponse({"error": "no such resource", "code": "not_found"}, status_code=404)
    headers = {**(exc.headers or {}), "Allow": ", ".join(allowed_methods(request.app, request.scope))}
    body = {"error": f"method {request.method} is not allowed here", "code": "method_not_allowed"}
    return JSONResponse(body, status_code=405, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_middleware(AllowOn405)

    @app.exception_handler(RegistryError)
    async def _registry_error(request: Request, exc: RegistryError) -> JSONResponse:
        headers = None
        if isinstance(exc, Unauthorized):
            presented = "authorization" in request.headers
            headers = {"WWW-Authenticate": challenge(exc.message, presented=presented)}
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        details = validation_details(errors)
        first = details[0] if details else {"field": "", "reason": "invalid request"}
        message = f"{first['field']}: {first['reason']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        # Every error a rule beyond the published schema (see registry.schemas.base.RULE): `invalid`, as the
        # services say for rules of theirs; otherwise the request broke the schema itself.
        code = "invalid" if errors and all(err.get("type") == RULE for err in errors) else "validation_error"
        return JSONResponse(
            {"error": message, "code": code, "field": first["field"], "errors": details}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        routed = _routing_error(request, exc)
        if routed is not None:
            return routed
        return JSONResponse(
            {"error": clip(str(exc.detail)), "code": "http_error"}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error; see the server log", "code": "internal"}, status_code=500)
