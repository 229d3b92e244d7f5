"""A tool definition as submitted to the registry (MCP `Tool` shape)."""

from __future__ import annotations

from typing import Any

from jsonschema import SchemaError
from jsonschema.validators import validator_for
from pydantic import Field, field_validator
from pydantic.config import JsonDict

from governance import ToolAnnotations, tool_definition_hash
from registry.schemas.base import ApiModel, JsonObject, rule
from registry.schemas.names import TOOL_NAME_PATTERN, check_tool_name

KNOWN_ANNOTATIONS = {"title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"}
# What `check_annotations` accepts, as JSON Schema (OpenAPI).
ANNOTATIONS_SCHEMA: JsonDict = {
    "properties": {
        "title": {"type": "string"},
        **{hint: {"type": "boolean"} for hint in sorted(KNOWN_ANNOTATIONS - {"title"})},
    },
    "additionalProperties": False,
}
# `check_json_schema` validates against the JSON Schema meta-schema; OpenAPI can only say this much of it.
INPUT_SCHEMA_SCHEMA: JsonDict = {
    "description": 'A JSON Schema (2020-12 unless `$schema` says otherwise) describing an object: `"type": "object"`',
    "properties": {"type": {"const": "object"}},
    "required": ["type"],
}


def check_json_schema(schema: Any, *, what: str, object_root: bool = True) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise ValueError(f"{what} must be a JSON object")
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(root)"
        raise rule(f"{what} is not a valid JSON Schema at {where}: {exc.message}") from None
    if object_root and schema.get("type") != "object":
        raise ValueError(f'{what} must describe an object (`"type": "object"`), as MCP requires')
    return schema


def check_annotations(value: dict[str, Any]) -> dict[str, Any]:
    unknown = set(value) - KNOWN_ANNOTATIONS
    if unknown:
        raise ValueError(f"unknown annotation(s) {sorted(unknown)}; known: {sorted(KNOWN_ANNOTATIONS)}")
    for key in KNOWN_ANNOTATIONS - {"title"}:
        if key in value and not isinstance(value[key], bool):
            raise ValueError(f"annotation {key} must be true or false")
    if "title" in value and not isinstance(value["title"], str):
        raise ValueError("annotation title must be a string")
    return value


class ToolDefinition(ApiModel):
    name: str = Field(json_schema_extra={"pattern": TOOL_NAME_PATTERN})
    title: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=10_000)
    input_schema: JsonObject = Field(json_schema_extra=INPUT_SCHEMA_SCHEMA)
    output_schema: JsonObject | None = None
    annotations: JsonObject = Field(default_factory=dict, json_schema_extra=ANNOTATIONS_SCHEMA)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_tool_name(value)

    @field_validator("input_schema")
    @classmethod
    def _input(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_json_schema(value, what="inputSchema")

    @field_validator("output_schema")
    @classmethod
    def _output(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_json_schema(value, what="outputSchema", object_root=False)

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_annotations(value)

    def content_hash(self) -> str:
        return tool_definition_hash(
            self.name, self.description, self.input_schema, self.output_schema, self.annotations
        )

    def governance_annotations(self) -> ToolAnnotations:
        return annotations_from_mcp(self.annotations)


def annotations_from_mcp(hints: dict[str, Any]) -> ToolAnnotations:
    """MCP defaults apply to absent hints: not read-only, destructive, not idempotent, open-world."""
    return ToolAnnotations(
        read_only=bool(hints.get("readOnlyHint", False)),
        destructive=bool(hints.get("destructiveHint", True)),
        idempotent=bool(hints.get("idempotentHint", False)),
        open_world=bool(hints.get("openWorldHint", True)),
    )


def served_definition(tool: Any) -> dict[str, Any]:
    """An MCP `Tool` (as an upstream serves it) in the registry's wire shape."""
    annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
    out: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description or "",
        "inputSchema": tool.input_schema,
        "annotations": annotations,
    }
    if tool.title:
        out["title"] = tool.title
    if tool.output_schema is not None:
        out["outputSchema"] = tool.output_schema
    return out


def served_hash(tool: Any) -> str:
    """The content hash of a served tool, comparable with the hash pinned at registration."""
    d = served_definition(tool)
    return tool_definition_hash(d["name"], d["description"], d["inputSchema"], d.get("outputSchema"), d["annotations"])
