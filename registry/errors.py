"""Domain errors raised by services and mapped to HTTP responses at the edge."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details or []

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "code": self.code}
        if self.field:
            out["field"] = self.field
        if self.details:
            out["errors"] = self.details
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
