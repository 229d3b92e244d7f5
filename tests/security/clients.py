"""MCP clients for the red-team suite: the SDK client over Streamable HTTP, as IDEs and agents connect."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"


@asynccontextmanager
async def connect(
    base: str, token: str | None, *, mode: str = "legacy", path: str = "/mcp",
    elicitation: Callable[..., Any] | None = None,
) -> AsyncIterator[Client]:  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(f"{base}{path}", http_client=http)
        async with Client(transport, mode=mode, elicitation_callback=elicitation, cache=None) as client:
            yield client


def call(base: str, token: str, tool: str, arguments: dict[str, Any], *, mode: str = "legacy",
         path: str = "/mcp") -> types.CallToolResult:  # fmt: skip
    async def scenario() -> types.CallToolResult:
        async with connect(base, token, mode=mode, path=path) as client:
            return await client.call_tool(tool, arguments)

    return anyio.run(scenario)


def tool_names(base: str, token: str, *, mode: str = "legacy", path: str = "/mcp") -> set[str]:
    async def scenario() -> set[str]:
        async with connect(base, token, mode=mode, path=path) as client:
            return {t.name for t in (await client.list_tools()).tools}

    return anyio.run(scenario)


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


def everything(result: Any) -> str:
    """The whole result as the client received it (content and structured content)."""
    return result.model_dump_json() if hasattr(result, "model_dump_json") else str(result)
