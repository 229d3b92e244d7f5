"""`bastion mcp stdio`: a stdio MCP server that relays every message to the gateway over HTTP.

IDE clients that speak stdio (Claude Desktop, Cursor, VS Code) launch this command. Messages
are relayed unchanged in both directions, so everything the gateway does — listing, calls,
elicitation, change notifications — reaches the IDE as if it were talking to the gateway.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage

log = logging.getLogger("bastion.bridge")


async def _pump(source: Any, sink: Any, direction: str) -> None:
    async with sink:
        async for item in source:
            if isinstance(item, Exception):
                # Log to stderr only: stdout is the protocol channel.
                log.warning("%s: %s", direction, item)
                continue
            assert isinstance(item, SessionMessage)
            await sink.send(item)


async def relay(url: str, token: str) -> None:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(60.0)) as http,
        streamable_http_client(url, http_client=http) as (http_read, http_write),
        stdio_server() as (stdio_read, stdio_write),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(_pump, http_read, stdio_write, "gateway→ide")
        await _pump(stdio_read, http_write, "ide→gateway")
        tg.cancel_scope.cancel()


def main(url: str, token: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    anyio.run(relay, url, token)
