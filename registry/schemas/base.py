from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetJsonSchemaHandler,
    StringConstraints,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError
from typing_extensions import TypeAliasType

# The error type of a value that satisfies the published schema but breaks a rule JSON Schema cannot state
# (two tools with one name, an `inputSchema` that is not a valid JSON Schema). The API answers 422 with
# `code: invalid` when every error is one of these, `validation_error` when the request breaks the schema.
RULE = "rule"


def rule(message: str) -> PydanticCustomError:
    """Raise from a validator for a rule beyond the schema (see RULE); it is a ValueError too."""
    return PydanticCustomError(RULE, "{reason}", {"reason": message})


class ApiModel(BaseModel):
    """camelCase on the wire (as the MCP registry and MCP itself), snake_case in Python."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


T = TypeVar("T")


class Page(ApiModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


# RFC 3339 `date-time` (what OpenAPI's `format: date-time` promises): a full date, `T`, a time and an offset.
# Pydantic alone would also take `0.5` (seconds since 1970), a bare date or a time without an offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc3339(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    m = _RFC3339.fullmatch(value)
    if m is None:
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-31T09:30:00Z")
    if m.group(1) == "60":  # a leap second: the last second of its minute
        value = value[: m.start(1)] + "59" + value[m.end(1) :]
    return value


Instant = Annotated[datetime, BeforeValidator(_rfc3339)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


# Numbers in request bodies: JSON Schema's `integer` is any integral number (232.0 too) but never a boolean,
# which pydantic's lax mode would read as 1 or 0.
NOT_BOOL = BeforeValidator(_not_bool)

# For PATCH fields that may be left out but never removed: `Annotated[T | SkipJsonSchema[None], NotNull] = None`
# (OpenAPI shows T alone; an explicit null is a 422 naming the field).
NotNull = BeforeValidator(_not_null)

# What `str.strip()` removes (`str.isspace`), as one character class that Python, the Rust regex engine of
# pydantic and ECMA 262 (OpenAPI `pattern`) read alike; `Name` below and `clean_names` agree through it.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"

# A user id or an IdP group name: 1-200 characters, not all whitespace (members are stored as `user:<id>`).
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=_NOT_BLANK)]


def clean_names(values: list[str]) -> list[str]:
    """Sorted, de-duplicated, each stripped; blank entries are refused (`Name` says so in the schema)."""
    cleaned = [v.strip(WHITESPACE) for v in values]
    if any(not v for v in cleaned):
        raise ValueError("entries must be non-empty strings")
    return sorted(set(cleaned))


# Free-form JSON the registry stores (server.json, tool schemas, annotations): what every database and
# encoder here can hold. orjson refuses integers beyond 64 bits and nesting beyond 255 levels.
MAX_JSON_DEPTH = 64
# Both bounds are exact as doubles too, so a validator comparing floats agrees with this one at the edges.
NUMBER_MIN, NUMBER_MAX = -(2**63), 2**63 - 1024

# How OpenAPI documents such JSON (a recursive `JsonValue` component); validation is `_storable`'s.
_Number = Annotated[float, WithJsonSchema({"type": "number", "minimum": NUMBER_MIN, "maximum": NUMBER_MAX})]
JsonValue = TypeAliasType(
    "JsonValue",
    "dict[str, JsonValue] | list[JsonValue] | str | bool | _Number | None",
)


class _DocumentedAs:
    """Documents a field as `of` in JSON Schema (definitions included) without validating it as `of`."""

    def __init__(self, of: Any) -> None:
        self.core_schema = TypeAdapter(of).core_schema

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(self.core_schema)


def _storable(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        if not (math.isfinite(value) and NUMBER_MIN <= value <= NUMBER_MAX):
            raise ValueError("numbers must be finite and within the 64-bit integer range (±2^63)")
    elif isinstance(value, dict):
        for item in value.values():
            _storable(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)


def _storable_object(value: dict[str, Any]) -> dict[str, Any]:
    _storable(value)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_object), _DocumentedAs(dict[str, JsonValue])]
