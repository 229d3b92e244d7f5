"""Live servers for gateway tests: the gateway, builtin and remote upstreams, real MCP clients."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.builtins import tool_definitions
from bastion.live import LiveServer
from registry.auth import mint_token
from registry.schemas.items import served_prompt, served_resource, served_template
from registry.schemas.tools import served_definition
from registry.settings import RegistrySettings

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True)


class ops_state:
    paused: list[str] = []


def ops_server() -> MCPServer[Any]:
    """A builtin for tests: one read-only tool, one destructive tool."""
    server: MCPServer[Any] = MCPServer("dev.test/ops", description="Ad operations")

    @server.tool(annotations=READ_ONLY)
    def read_metric(name: str) -> str:
        """Read the current value of a named ad metric."""
        return f"{name}=42"

    @server.tool(annotations=DESTRUCTIVE)
    def pause_campaign(campaign_id: str) -> str:
        """Pause an ad campaign."""
        ops_state.paused.append(campaign_id)
        # In a server process of its own (the red-team suite), runs are counted in a file the test reads.
        record = os.environ.get("BASTION_TEST_SIDE_EFFECTS")
        if record:
            with Path(record).open("a") as f:
                f.write(campaign_id + "\n")
        return f"paused {campaign_id}"

    return server


class HeaderRecorder:
    """Records the Authorization header of every request an upstream receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            value = headers.get(b"authorization")
            self.seen.append(value.decode() if value else None)
        await self.app(scope, receive, send)


class RemoteUpstream:
    """A remote MCP server (Streamable HTTP) whose definitions a test can change."""

    def __init__(self) -> None:
        self.server: MCPServer[Any] = MCPServer("dev.test/remote")
        self.description = "Echo the text back."

        @self.server.tool(annotations=READ_ONLY)
        async def slow(seconds: float) -> str:
            """Sleep, then answer."""
            await anyio.sleep(seconds)
            return "done"

        self._install_echo()
        self.recorder = HeaderRecorder(self.server.streamable_http_app())
        self.live = LiveServer(self.recorder)

    def _install_echo(self) -> None:
        def echo(text: str) -> str:
            return text

        self.server.add_tool(echo, name="echo", description=self.description, annotations=READ_ONLY)

    def change_echo(self, description: str) -> None:
        """Serve a different definition of `echo` (what a compromised or careless upstream does)."""
        self.server.remove_tool("echo")
        self.description = description
        self._install_echo()

    @property
    def mcp_url(self) -> str:
        return f"{self.live.url}/mcp"


class Gateway:
    """A running Bastion app plus the handles tests need."""

    def __init__(self, settings: RegistrySettings, live: LiveServer) -> None:
        self.settings = settings
        self.live = live
        # The admin API sets tests up; its latency is not what they measure. httpx's default 5 s read timeout
        # failed setup calls on a loaded CI machine (twice in 2,018 tests); the MCP clients already allow 30 s.
        self.admin = httpx.Client(
            base_url=live.url, headers=self.auth("root", ["bastion-admins"], clearance="restricted"), timeout=30
        )

    @property
    def url(self) -> str:
        return self.live.url

    def token(self, user: str, groups: list[str] | None = None, **claims: Any) -> str:
        return mint_token(self.settings, user=user, groups=groups or [], **claims)

    def auth(self, user: str, groups: list[str] | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, groups, **claims)}"}

    def ok(self, response: httpx.Response, status: int = 200) -> Any:
        assert response.status_code == status, f"{response.status_code}: {response.text}"
        return response.json() if response.content else None

    def team(self, name: str, groups: list[str]) -> None:
        self.ok(
            self.admin.post("/admin/v1/teams", json={"name": name, "supportChannel": f"#{name}", "groups": groups}), 201
        )

    def publish(
        self,
        name: str,
        short: str,
        team: str,
        tools: list[dict[str, Any]],
        items: dict[str, list[dict[str, Any]]] | None = None,
        **fields: Any,
    ) -> None:
        body = {"name": name, "shortName": short, "team": team, "description": f"{short} tools", **fields}
        body.setdefault("transport", "builtin")
        body.setdefault("environment", "prod")
        self.ok(self.admin.post("/admin/v1/servers", json=body), 201)
        version = {"version": "1.0.0", "tools": tools, **(items or {})}
        self.ok(self.admin.post(f"/admin/v1/servers/{name}/versions", json=version), 201)
        out = self.ok(self.admin.post(f"/admin/v1/servers/{name}/versions/1.0.0/status", json={"status": "in_review"}))
        reviewer = self.auth("rita", ["bastion-reviewers"])
        for kind in out["requiredReviews"]:
            self.ok(
                self.admin.post(
                    f"/admin/v1/servers/{name}/versions/1.0.0/reviews",
                    json={"kind": kind, "decision": "approve"},
                    headers=reviewer,
                ),
                201,
            )

    def policy(self, server: str, body: dict[str, Any], tool: str | None = None) -> None:
        path = f"/admin/v1/servers/{server}/tools/{tool}/policy" if tool else f"/admin/v1/servers/{server}/policy"
        self.ok(self.admin.put(path, json=body))

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.ok(self.admin.get("/admin/v1/audit", params={"limit": 100, **params}))[
            "items"
        ]
        return items

    @asynccontextmanager
    async def client(
        self,
        token: str,
        *,
        mode: str = "legacy",
        path: str = "/mcp",
        elicitation: Callable[..., Any] | None = None,
        messages: Callable[..., Any] | None = None,
    ) -> AsyncIterator[Client]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            transport = streamable_http_client(f"{self.url}{path}", http_client=http)
            async with Client(
                transport, mode=mode, elicitation_callback=elicitation, message_handler=messages, cache=None
            ) as client:
                yield client


async def builtin_items(server: MCPServer[Any]) -> dict[str, list[dict[str, Any]]]:
    """The prompts, resources and resource templates a server serves, as a version registers them."""
    return {
        "prompts": [served_prompt(p) for p in await server.list_prompts()],
        "resources": [served_resource(r) for r in await server.list_resources()],
        "resourceTemplates": [served_template(t) for t in await server.list_resource_templates()],
    }


INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


def inspector(
    gw: Gateway, *args: str, token: str | None = None, path: str = "/mcp"
) -> subprocess.CompletedProcess[str]:
    """The MCP Inspector's CLI against the gateway (Streamable HTTP), as an IDE user would run it."""
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed: the MCP Inspector CLI test needs Node.js")
    header = ["--header", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        ["npx", "-y", INSPECTOR, "--cli", f"{gw.url}{path}", "--transport", "http", *header, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


async def remote_items(url: str) -> dict[str, list[dict[str, Any]]]:
    """What a remote server serves of prompts, resources and templates, as a version registers them."""
    async with Client(url, mode="legacy", cache=None) as client:
        return {
            "prompts": [served_prompt(p) for p in (await client.list_prompts()).prompts],
            "resources": [served_resource(r) for r in (await client.list_resources()).resources],
            "resourceTemplates": [
                served_template(t) for t in (await client.list_resource_templates()).resource_templates
            ],
        }


async def builtin_tools(server: MCPServer[Any]) -> list[dict[str, Any]]:
    return [d.model_dump(by_alias=True, exclude_none=True) for d in await tool_definitions(server)]


async def remote_tools(url: str) -> list[dict[str, Any]]:
    async with Client(url, mode="legacy", cache=None) as client:
        return [served_definition(t) for t in (await client.list_tools()).tools]


def text(result: types.CallToolResult) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))
