"""What every builtin MCP server puts on the wire: output schemas a client validates quickly, compact result text.

The SDK derives a tool's output schema from its return model: nested models become `$defs` reached by `$ref`,
and an optional field becomes `anyOf: [{type: X}, {type: null}]`. Both mean the same as an inlined schema with
`type: [X, "null"]`, but the SDK client validates every structured result with `jsonschema`, which resolves
each `$ref` and evaluates each `anyOf` branch per array item: a 1,000-row result took 3× longer to validate
than against the equivalent compact schema (README, "Serving"). The result's text block (what a model reads)
is the same data as the structured content: written as compact JSON, not indented, it is half the bytes.

`lean(server)` applies both to every tool of a builtin server, once, before it is listed.
"""

from __future__ import annotations

from typing import Any

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.utilities.func_metadata import FuncMetadata
from mcp_types import CallToolResult, InputRequiredResult, TextContent
from pydantic import BaseModel

# Keywords that constrain any instance type: a branch with one of them is not a plain typed schema, and is
# kept as an `anyOf` (merging it with `null` would change its meaning).
_TYPE_AGNOSTIC = frozenset(
    {"enum", "const", "anyOf", "oneOf", "allOf", "not", "if", "then", "else", "$ref", "$defs", "definitions"}
)


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same JSON Schema with local `$ref`s inlined and `anyOf [typed, null]` written as a type list.

    A recursive model (a definition reachable from itself) keeps its `$defs` and references, unchanged."""
    defs: dict[str, Any] = schema.get("$defs", {})
    if any(_reaches(name, defs[name], defs, set()) for name in defs):
        return schema

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs:
            inlined = walk(defs[ref[8:]])
            siblings = {k: walk(v) for k, v in node.items() if k != "$ref"}
            return {**inlined, **siblings}  # sibling annotations (description, default) override the target's
        out = {k: walk(v) for k, v in node.items() if k != "$defs"}
        branches = out.get("anyOf")
        if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
            typed = branches[0] if branches[1] == {"type": "null"} else branches[1]
            if isinstance(typed, dict) and isinstance(typed.get("type"), str) and not _TYPE_AGNOSTIC & set(typed):
                clash = {k for k in typed if k in out and k != "anyOf" and out[k] != typed[k]}
                if not clash:
                    merged = {k: v for k, v in out.items() if k != "anyOf"}
                    return {**merged, **typed, "type": [typed["type"], "null"]}
        return out

    compacted: dict[str, Any] = walk(schema)
    return compacted


def _reaches(target: str, node: Any, defs: dict[str, Any], seen: set[str]) -> bool:
    if isinstance(node, list):
        return any(_reaches(target, item, defs, seen) for item in node)
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref[8:]
        if name == target:
            return True
        if name not in seen and name in defs:
            seen.add(name)
            if _reaches(target, defs[name], defs, seen):
                return True
    return any(_reaches(target, v, defs, seen) for k, v in node.items() if k != "$ref")


class LeanMetadata(FuncMetadata):
    """The SDK's function metadata, except that a result of the declared model is dumped once and its text
    block is compact JSON (the SDK indents it by two spaces and validates the model it was just given)."""

    def convert_result(self, result: Any) -> CallToolResult | InputRequiredResult:
        model = self.output_model
        if (
            self.output_schema is not None
            and not self.wrap_output
            and isinstance(model, type)
            and issubclass(model, BaseModel)
            and isinstance(result, model)
        ):
            structured = result.model_dump(mode="json", by_alias=True)
            text = orjson.dumps(structured).decode()
            return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)
        return super().convert_result(result)


def lean(server: MCPServer[Any]) -> MCPServer[Any]:
    """Compact output schemas and result text for every tool `server` has now (call it after the last
    `@server.tool`, before the server is listed or served)."""
    for tool in server._tool_manager.list_tools():  # the SDK keeps registered tools here; no public accessor
        metadata = tool.fn_metadata
        schema = metadata.output_schema
        tool.fn_metadata = LeanMetadata(
            arg_model=metadata.arg_model,
            output_schema=compact_schema(schema) if schema is not None else None,
            output_model=metadata.output_model,
            wrap_output=metadata.wrap_output,
        )
        tool.__dict__.pop("output_schema", None)  # Tool.output_schema is a cached_property of the old metadata
    return server
