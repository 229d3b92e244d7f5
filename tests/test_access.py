"""/v1/authz/check and /v1/catalog: "may user X use server Y" answered before any call."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Api, Tokens, tool

ADS = "dev.bastion/ads"


@pytest.fixture
def setup(api: Api) -> Api:
    api.team("ads-eng", groups=["ads-eng"])
    api.server(ADS, "ads-eng", environment="prod", allowedGroups=["ads-eng", "analysts"], classification="confidential")
    api.publish(ADS, "1.0.0", [tool("spend"), tool("get_revenue_metrics"), tool("pause_campaign", read_only=False)])
    api.policy(ADS, {"allowedGroups": ["ads-eng"]}, tool_name="get_revenue_metrics")
    api.server("dev.bastion/open", "ads-eng", environment="prod")
    api.publish("dev.bastion/open", "1.0.0", [tool("ping")])
    api.server("dev.bastion/lab", "ads-eng", environment="dev")
    api.publish("dev.bastion/lab", "1.0.0", [tool("try")])
    return api


def check(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/v1/authz/check", json=body, headers=headers)
    assert response.status_code == 200, response.text
    out: dict[str, object] = response.json()
    return out


def test_group_and_clearance_decide_with_reasons(client: TestClient, tokens: Tokens, setup: Api) -> None:
    analyst = tokens("ann", ["analysts"], clearance="confidential")
    ok = check(client, analyst, server=ADS, tool="spend")
    assert ok["allowed"] is True
    assert any("analysts" in r for r in ok["reasons"])  # type: ignore[union-attr]

    low = tokens("ann", ["analysts"], clearance="internal")
    denied = check(client, low, server=ADS)
    assert denied["allowed"] is False
    assert denied["deniedBy"] == "classification"

    outsider = tokens("eve", ["search"], clearance="restricted")
    assert check(client, outsider, server=ADS)["deniedBy"] == "server.allowed_groups"


def test_tool_policy_only_ads_eng_may_get_revenue(client: TestClient, tokens: Tokens, setup: Api) -> None:
    analyst = tokens("ann", ["analysts"], clearance="confidential")
    out = check(client, analyst, server=ADS, tool="get_revenue_metrics")
    assert out["allowed"] is False
    assert out["deniedBy"] == "policy.tool.allowed_groups"
    engineer = tokens("eli", ["ads-eng"], clearance="confidential")
    assert check(client, engineer, server=ADS, tool="get_revenue_metrics")["allowed"] is True


def test_non_read_only_tools_need_approval(client: TestClient, tokens: Tokens, setup: Api) -> None:
    engineer = tokens("eli", ["ads-eng"], clearance="confidential")
    out = check(client, engineer, server=ADS, tool="pause_campaign")
    assert out["allowed"] is True
    assert out["requiresApproval"] is True


def test_admins_may_ask_for_someone_else_others_may_not(client: TestClient, tokens: Tokens, setup: Api) -> None:
    out = check(client, tokens.admin, server=ADS, user="ann", groups=["analysts"], clearance="confidential")
    assert out["subject"] == "ann"
    assert out["allowed"] is True
    response = client.post(
        "/v1/authz/check", json={"server": ADS, "user": "root", "groups": ["bastion-admins"]}, headers=tokens("ann")
    )
    assert response.status_code == 403
    assert response.json()["field"] == "user"


def test_unknown_server_or_tool_is_404_naming_it(client: TestClient, tokens: Tokens, setup: Api) -> None:
    missing = client.post("/v1/authz/check", json={"server": "dev.bastion/nope"}, headers=tokens("ann"))
    assert missing.status_code == 404
    assert missing.json()["field"] == "server"
    no_tool = client.post("/v1/authz/check", json={"server": ADS, "tool": "nope"}, headers=tokens("ann"))
    assert no_tool.status_code == 404
    assert no_tool.json()["field"] == "tool"
    empty = client.post("/v1/authz/check", json={}, headers=tokens("ann"))
    assert empty.status_code == 422
    assert empty.json()["field"] == "body.server"


def test_catalog_lists_exactly_what_the_caller_may_use(client: TestClient, tokens: Tokens, setup: Api) -> None:
    analyst = client.get("/v1/catalog", headers=tokens("ann", ["analysts"], clearance="confidential")).json()
    servers = {s["name"]: s for s in analyst["servers"]}
    assert set(servers) == {ADS, "dev.bastion/open"}
    tools = {t["name"] for t in servers[ADS]["tools"]}
    assert tools == {"spend", "pause_campaign"}  # not get_revenue_metrics
    assert servers[ADS]["tools"][0]["namespacedName"].startswith("ads__")
    assert servers[ADS]["endpoint"] == "http://testserver/servers/ads/mcp"

    engineer = client.get("/v1/catalog", headers=tokens("eli", ["ads-eng"], clearance="confidential")).json()
    assert {s["name"] for s in engineer["servers"]} == {ADS, "dev.bastion/open", "dev.bastion/lab"}


def test_catalog_pages_fill_despite_filtering(client: TestClient, tokens: Tokens, api: Api) -> None:
    api.team("t", groups=["t"])
    for i in range(7):
        name = f"dev.bastion/s{i}"
        api.server(name, "t", environment="prod", allowedGroups=["t"] if i % 2 else [])
        api.publish(name, "1.0.0")
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client.get("/v1/catalog", params=params, headers=tokens("ann", ["analysts"])).json()
        assert len(body["servers"]) == 2 or body["nextCursor"] is None
        seen += [s["name"] for s in body["servers"]]
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert seen == ["dev.bastion/s0", "dev.bastion/s2", "dev.bastion/s4", "dev.bastion/s6"]
