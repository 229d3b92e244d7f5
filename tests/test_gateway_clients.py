"""Real MCP clients against a running gateway: the stdio bridge, the MCP Inspector CLI, LangChain."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from tests.gateway_harness import Gateway, builtin_tools, inspector, ops_server, text

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parent.parent


async def setup_ops(gw: Gateway) -> None:
    gw.team("ads-eng", ["ads-eng"])
    gw.publish("dev.test/ops", "ops", "ads-eng", await builtin_tools(ops_server()), allowedGroups=["ads-eng"])


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stdio_bridge_for_ide_clients(gw: Gateway, mode: str) -> None:
    await setup_ops(gw)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion", "mcp", "stdio"],
        env={"BASTION_URL": f"{gw.url}/mcp", "BASTION_TOKEN": gw.token("eli", ["ads-eng"]), "PATH": "/usr/bin:/bin"},
        cwd=str(ROOT),
    )
    async with Client(params, mode=mode) as client:  # type: ignore[arg-type]
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["ops__pause_campaign", "ops__read_metric"]
        assert text(await client.call_tool("ops__read_metric", {"name": "cpc"})) == "cpc=42"
    assert gw.audit(kind="call")[0]["subject"] == "eli"


def test_stdio_bridge_without_a_token_says_so() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bastion", "mcp", "stdio"],
        env={"PATH": "/usr/bin:/bin", "BASTION_URL": "http://127.0.0.1:9/mcp"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "BASTION_TOKEN" in result.stderr


def _inspector(gw: Gateway, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return inspector(gw, *args, token=token)


async def test_mcp_inspector_cli(gw: Gateway) -> None:
    await setup_ops(gw)
    token = gw.token("eli", ["ads-eng"])
    listed = _inspector(gw, "--method", "tools/list", token=token)
    assert listed.returncode == 0, listed.stderr[-2000:]
    names = sorted(t["name"] for t in json.loads(listed.stdout)["tools"])
    assert names == ["ops__pause_campaign", "ops__read_metric"]
    called = _inspector(
        gw, "--method", "tools/call", "--tool-name", "ops__read_metric", "--tool-arg", "name=roas", token=token
    )
    assert called.returncode == 0, called.stderr[-2000:]
    assert json.loads(called.stdout)["content"][0]["text"] == "roas=42"
    denied = _inspector(gw, "--method", "tools/list", token=gw.token("eve", ["search"]))
    assert json.loads(denied.stdout)["tools"] == []
    # Without a token the 401 challenge points the Inspector at OAuth, which it cannot run headless.
    anonymous = _inspector(gw, "--method", "tools/list")
    assert anonymous.returncode != 0
    assert "auth_required" in anonymous.stdout + anonymous.stderr


async def test_langchain_adapter_loads_tools_with_a_users_token(gw: Gateway) -> None:
    await setup_ops(gw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastmcp import Client as FastMCPClient
        from fastmcp.client.transports import StreamableHttpTransport
        from langchain.mcp import MCPAdapter

    transport = StreamableHttpTransport(
        f"{gw.url}/mcp", headers={"Authorization": f"Bearer {gw.token('eli', ['ads-eng'])}"}
    )
    async with MCPAdapter(FastMCPClient(transport)) as adapter:
        tools = {t.name: t for t in await adapter.list_tools()}
        assert set(tools) == {"ops__pause_campaign", "ops__read_metric"}
        answer = await tools["ops__read_metric"].ainvoke({"name": "ctr"})
    assert "ctr=42" in str(answer)
    outsider = StreamableHttpTransport(f"{gw.url}/mcp", headers={"Authorization": f"Bearer {gw.token('eve')}"})
    async with MCPAdapter(FastMCPClient(outsider)) as adapter:
        assert await adapter.list_tools() == []
