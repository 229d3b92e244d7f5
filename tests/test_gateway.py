"""The gateway with real MCP clients: who sees what, who may call what, and why not."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.gateway_fixtures import GATEWAY_TOKEN
from tests.gateway_harness import Gateway, RemoteUpstream, builtin_tools, ops_server, remote_tools, text

pytestmark = pytest.mark.anyio

OPS = "dev.test/ops"


async def setup_ops(gw: Gateway, **fields: object) -> None:
    gw.team("ads-eng", ["ads-eng"])
    gw.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()), **fields)


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_tools_are_namespaced_and_callable(gw: Gateway, mode: str) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann", ["analysts"]), mode=mode) as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["ops__pause_campaign", "ops__read_metric"]
        result = await client.call_tool("ops__read_metric", {"name": "spend"})
        assert not result.is_error
        assert text(result) == "spend=42"


async def test_outsiders_neither_see_nor_call(gw: Gateway) -> None:
    await setup_ops(gw, allowedGroups=["ads-eng"])
    async with gw.client(gw.token("eve", ["search"])) as client:
        assert (await client.list_tools()).tools == []
        result = await client.call_tool("ops__read_metric", {"name": "spend"})
        assert result.is_error
        assert "server.allowed_groups" in text(result)
    async with gw.client(gw.token("eli", ["ads-eng"])) as client:
        assert len((await client.list_tools()).tools) == 2


async def test_tool_policy_hides_one_tool(gw: Gateway) -> None:
    await setup_ops(gw)
    gw.policy(OPS, {"allowedGroups": ["ads-eng"]}, tool="pause_campaign")
    async with gw.client(gw.token("ann", ["analysts"])) as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["ops__read_metric"]
        denied = await client.call_tool("ops__pause_campaign", {"campaign_id": "c1"})
        assert denied.is_error
        assert "policy.tool.allowed_groups" in text(denied)


async def test_clearance_must_cover_classification(gw: Gateway) -> None:
    await setup_ops(gw, classification="confidential")
    async with gw.client(gw.token("ann", ["analysts"], clearance="internal")) as client:
        assert (await client.list_tools()).tools == []
        result = await client.call_tool("ops__read_metric", {"name": "x"})
        assert "classification" in text(result)
    async with gw.client(gw.token("ann", ["analysts"], clearance="confidential")) as client:
        assert len((await client.list_tools()).tools) == 2


async def test_client_scoping_keeps_prod_clients_off_dev_servers(gw: Gateway) -> None:
    gw.team("ads-eng", ["ads-eng"])
    tools = await builtin_tools(ops_server())
    gw.publish(OPS, "ops", "ads-eng", tools, environment="dev")
    gw.ok(gw.admin.put("/admin/v1/clients/prod-chat", json={"environment": "prod"}))
    gw.ok(gw.admin.put("/admin/v1/clients/ide", json={"servers": ["dev.bastion/registry"]}))
    engineer = ["ads-eng"]
    async with gw.client(gw.token("eli", engineer)) as client:  # no client id: dev server visible to its team
        assert len((await client.list_tools()).tools) == 2
    async with gw.client(gw.token("eli", engineer, client_id="prod-chat")) as client:
        assert (await client.list_tools()).tools == []
        result = await client.call_tool("ops__read_metric", {"name": "x"})
        assert "client.environment" in text(result)
    async with gw.client(gw.token("eli", engineer, client_id="ide")) as client:
        result = await client.call_tool("ops__read_metric", {"name": "x"})
        assert "client.scope" in text(result)


async def test_unknown_tool_is_a_clear_error(gw: Gateway) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann")) as client:
        for name, expected in (
            ("nonsense", "server__tool"),
            ("zz__x", "no server 'zz'"),
            ("ops__nope", "no published tool"),
        ):
            result = await client.call_tool(name, {})
            assert result.is_error
            assert expected in text(result)


async def test_oauth_resource_server_behaviour(gw: Gateway) -> None:
    missing = httpx.post(f"{gw.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert missing.status_code == 401
    challenge = missing.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{gw.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    metadata = httpx.get(f"{gw.url}/.well-known/oauth-protected-resource/mcp").json()
    assert metadata["resource"] == f"{gw.url}/mcp"
    assert metadata["bearer_methods_supported"] == ["header"]
    assert httpx.get(f"{gw.url}/.well-known/oauth-protected-resource").json() == metadata

    other_audience = gw.token("ann", audience="some-other-api")
    refused = httpx.post(f"{gw.url}/mcp", headers={"Authorization": f"Bearer {other_audience}"}, json={})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "audience" in refused.json()["error_description"]


async def test_one_server_endpoint_and_gating_before_session(gw: Gateway) -> None:
    await setup_ops(gw, allowedGroups=["ads-eng"])
    async with gw.client(gw.token("eli", ["ads-eng"]), path="/servers/ops/mcp") as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == ["pause_campaign", "read_metric"]  # this server's own names
        assert text(await client.call_tool("read_metric", {"name": "ctr"})) == "ctr=42"
    outsider = httpx.post(
        f"{gw.url}/servers/ops/mcp",
        headers=gw.auth("eve", ["search"]),
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
    )
    assert outsider.status_code == 403
    assert "server.allowed_groups" in outsider.json()["error_description"]
    assert httpx.post(f"{gw.url}/servers/nope/mcp", headers=gw.auth("eli"), json={}).status_code == 404


async def test_remote_upstream_gets_the_gateways_credential_not_the_callers(
    gw: Gateway, remote: RemoteUpstream
) -> None:
    gw.team("platform-eng", ["platform-eng"])
    gw.publish(
        "dev.test/remote",
        "remote",
        "platform-eng",
        await remote_tools(remote.mcp_url),
        transport="streamable-http",
        endpoint=remote.mcp_url,
    )
    caller_token = gw.token("ann", ["analysts"])
    remote.recorder.seen.clear()
    async with gw.client(caller_token) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"remote__echo", "remote__slow"}
        assert tools["remote__echo"].input_schema["properties"]["text"]["type"] == "string"
        assert tools["remote__echo"].annotations is not None and tools["remote__echo"].annotations.read_only_hint
        assert text(await client.call_tool("remote__echo", {"text": "hi"})) == "hi"
    assert remote.recorder.seen, "the upstream was never called"
    assert all(h == f"Bearer {GATEWAY_TOKEN}" for h in remote.recorder.seen)
    assert not any(caller_token in (h or "") for h in remote.recorder.seen)


async def test_the_transport_json_keeps_ids_line_separators_and_depth(gw: Gateway) -> None:
    """The gateway's transport reads and writes JSON with orjson (registry/gateway/wirejson.py). Through the real
    endpoint: a request id beyond 64 bits comes back the same integer (orjson alone reads it as a float); a
    U+2028 in a reply stays escaped (a line break to line-splitting SSE clients); arguments nested 200 levels are
    served, and 300 or 1,000 levels are a JSON-RPC parse error (1,000 levels used to be served, its audit row
    cut down after a RecursionError)."""
    await setup_ops(gw)
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}  # fmt: skip
    headers = {**gw.auth("ann", ["analysts"]), "accept": "application/json, text/event-stream",
               "content-type": "application/json", "mcp-protocol-version": "2026-07-28",
               "mcp-method": "tools/call", "mcp-name": "ops__read_metric"}  # fmt: skip

    def call(request_id: str, name: str, extra: str = "") -> httpx.Response:
        body = (f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call","params":{{"name":"ops__read_metric",'
                f'"arguments":{{"name":{json.dumps(name)}{extra}}},"_meta":{json.dumps(meta)}}}}}')  # fmt: skip
        return httpx.post(f"{gw.url}/mcp", content=body, headers=headers, timeout=30)

    big = call("123456789012345678901234567890", "spend\u2028x")
    assert big.status_code == 200, big.text
    assert b'"id":123456789012345678901234567890' in big.content
    assert "\u2028".encode() not in big.content and b"\\u2028" in big.content
    assert json.loads(big.content)["result"]["content"][0]["text"] == "spend\u2028x=42"
    served = call("2", "spend", ',"x":' + "[" * 200 + "]" * 200)
    assert served.status_code == 200 and "spend=42" in served.text, served.text[:300]
    for depth in (300, 1000):
        refused = call("3", "spend", ',"x":' + "[" * depth + "]" * depth)
        assert refused.status_code == 400 and json.loads(refused.content)["error"]["code"] == -32700
