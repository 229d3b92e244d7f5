"""Domain errors raised by services and mapped to HTTP responses at the edge."""

from __future__ import annotations

from typing import Any

# Errors name what was wrong, and may quote the caller's input doing so: bounded, so a 2 MB value
# never comes back 2 MB (or twice).
MAX_MESSAGE = 500
MAX_FIELD = 200
MAX_DETAILS = 20
ELLIPSIS = "…"


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` itself when short enough; otherwise its head and tail around an ellipsis (`limit` chars in all).

    The tail is kept because messages often end with what matters ("… does not exist").
    """
    if len(text) <= limit:
        return text
    head = (limit - len(ELLIPSIS)) * 2 // 3
    tail = limit - len(ELLIPSIS) - head
    return text[:head] + ELLIPSIS + (text[-tail:] if tail else "")


def clip_details(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most MAX_DETAILS entries, every string in them clipped."""

    def bounded(key: str, value: Any) -> Any:
        return clip(value, MAX_FIELD if key == "field" else MAX_MESSAGE) if isinstance(value, str) else value

    return [{key: bounded(key, value) for key, value in detail.items()} for detail in details[:MAX_DETAILS]]


class RegistryError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The JSON error body (see `registry.schemas.errors.ErrorOut`), every echoed value bounded."""
        out: dict[str, Any] = {"error": clip(self.message), "code": self.code}
        if self.field:
            out["field"] = clip(self.field, MAX_FIELD)
        if self.details:
            out["errors"] = clip_details(self.details)
        return out


class BadRequest(RegistryError):
    status = 400
    code = "bad_request"


class Unauthorized(RegistryError):
    status = 401
    code = "unauthorized"


class Forbidden(RegistryError):
    status = 403
    code = "forbidden"


class NotFound(RegistryError):
    status = 404
    code = "not_found"


class Conflict(RegistryError):
    status = 409
    code = "conflict"


class Invalid(RegistryError):
    status = 422
    code = "invalid"
