"""Wire renderings shared by discovery and export: the server.json head and tool definitions."""

from __future__ import annotations

from typing import Any

from registry.db.models import Tool
from registry.schemas.serverjson import SCHEMA_URL


def server_json_head(
    *,
    name: str,
    description: str,
    version: str,
    title: str | None,
    website_url: str | None,
    repository: dict[str, Any] | None,
    carried: dict[str, Any],
    carried_keys: tuple[str, ...],
) -> dict[str, Any]:
    """The fields every server.json starts with, plus the carried ones named."""
    doc: dict[str, Any] = {"$schema": SCHEMA_URL, "name": name, "description": description, "version": version}
    if title:
        doc["title"] = title
    if website_url:
        doc["websiteUrl"] = website_url
    if repository:
        doc["repository"] = repository
    for key in carried_keys:
        if key in carried:
            doc[key] = carried[key]
    return doc


def tool_json(tool: Tool, *, with_hash: bool) -> dict[str, Any]:
    """A registered tool definition in MCP's wire shape."""
    out: dict[str, Any] = {"name": tool.name}
    if tool.title:
        out["title"] = tool.title
    out["description"] = tool.description
    out["inputSchema"] = tool.input_schema
    if tool.output_schema is not None:
        out["outputSchema"] = tool.output_schema
    out["annotations"] = tool.annotations
    if with_hash:
        out["contentHash"] = tool.content_hash
    return out
