"""Authorisation on tools/list and tools/call, both protocol revisions, against a real server.

Test servers (tests/security/upstream.py): `vault` is restricted and open to group `finance` only; `devbox`
is a dev server of team ads-eng. Each denial names its rule, and the side-effect file shows the tool never
ran.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from registry.services.seed import load_seed
from tests.security.clients import MODERN, call, everything, text, tool_names
from tests.security.conftest import Live

MODES = ["legacy", MODERN]
ROOT = Path(__file__).resolve().parents[2]
# The rerank version the seed publishes (bumped whenever its tool definitions change).
RERANK_VERSION = next(s.version for s in load_seed(ROOT / "seed" / "registry.yaml").servers if s.builtin == "rerank")


@pytest.mark.parametrize("mode", MODES)
def test_an_analyst_sees_only_what_she_may_use(live: Live, mode: str) -> None:
    names = tool_names(live.base, live.token("ann", ["analysts"]), mode=mode)
    assert "sql__run_sql" in names and "ops__read_metric" in names
    assert not any(n.startswith(("vault__", "devbox__")) for n in names), sorted(names)


@pytest.mark.parametrize("mode", MODES)
def test_the_vault_is_listed_for_finance_with_clearance_only(live: Live, mode: str) -> None:
    cleared = tool_names(live.base, live.token("fin", ["finance"], clearance="restricted"), mode=mode)
    assert "vault__read_note" in cleared
    uncleared = tool_names(live.base, live.token("fin2", ["finance"], clearance="internal"), mode=mode)
    assert "vault__read_note" not in uncleared


@pytest.mark.parametrize(
    ("who", "rule"),
    [
        (("ann", ["analysts"], "restricted"), "server.allowed_groups"),
        (("fin", ["finance"], "internal"), "clearance"),
        (("ann", ["analysts"], "internal"), None),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_calling_what_is_not_listed_is_denied_and_nothing_runs(
    live: Live, mode: str, who: tuple[str, list[str], str], rule: str | None
) -> None:
    user, groups, clearance = who
    before = live.runs()
    result = call(live.base, live.token(user, groups, clearance=clearance), "vault__read_note", {"name": "q3"},
                  mode=mode)  # fmt: skip
    assert result.is_error and "denied" in text(result)
    if rule is not None:
        assert rule in text(result)
    assert live.runs() == before and "quarterly" not in everything(result)


def test_dev_servers_are_for_their_own_team(live: Live) -> None:
    own = call(live.base, live.token("eli", ["ads-eng"]), "devbox__try_feature", {"flag": "x"})
    assert not own.is_error, text(own)
    other = call(live.base, live.token("ann", ["analysts"]), "devbox__try_feature", {"flag": "x"})
    assert other.is_error and "environment" in text(other)


def test_a_server_endpoint_refuses_the_session_before_it_starts(live: Live) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
            "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
    headers = {**live.analyst, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    response = httpx.post(f"{live.base}/servers/vault/mcp", json=init, headers=headers)
    assert response.status_code == 403 and "denied by rule" in response.text
    assert "read_note" not in response.text


def test_an_api_key_scoped_to_one_server_reaches_nothing_else(live: Live) -> None:
    with live.http(live.admin) as admin:
        made = admin.post("/admin/v1/keys", json={"name": f"scoped-{time.time_ns()}", "role": "user",
                                                  "serverScope": ["dev.bastion/rerank"]})  # fmt: skip
        assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert {n.split("__")[0] for n in tool_names(live.base, key)} == {"rerank"}
    result = call(live.base, key, "sql__run_sql", {"sql": "SELECT country FROM users.users"})
    assert result.is_error and "scope" in text(result)


def test_a_production_client_cannot_reach_dev_servers(live: Live) -> None:
    with live.http(live.admin) as admin:
        put = admin.put("/admin/v1/clients/redteam-prod-chat", json={"environment": "prod"})
        assert put.status_code == 200, put.text
    token = live.token("eli", ["ads-eng"], client_id="redteam-prod-chat")
    assert not any(n.startswith("devbox__") for n in tool_names(live.base, token))
    result = call(live.base, token, "devbox__try_feature", {"flag": "x"})
    assert result.is_error and "client" in text(result)


def test_unknown_and_malformed_tool_names_run_nothing(live: Live) -> None:
    for name in ("vault_read_note", "nosuch__tool", "ops__nosuch", "__", "x" * 5000):
        result = call(live.base, live.token("ann", ["analysts"]), name, {})
        assert result.is_error and "unknown tool" in text(result)
        assert len(everything(result)) < 2_000  # the name is not echoed in full


def test_only_admins_ask_on_behalf_of_others(live: Live) -> None:
    body = {"server": "dev.test/vault", "user": "fin", "groups": ["finance"], "clearance": "restricted"}
    assert httpx.post(f"{live.base}/v1/authz/check", json=body, headers=live.analyst).status_code == 403
    assert httpx.post(f"{live.base}/v1/authz/check", json=body, headers=live.admin).json()["allowed"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/admin/v1/teams", {"name": "rogue", "supportChannel": "#r"}),
        ("patch", "/admin/v1/servers/dev.bastion/rerank", {"allowedGroups": ["marketing"]}),
        ("post", f"/admin/v1/servers/dev.bastion/rerank/versions/{RERANK_VERSION}/status", {"status": "revoked"}),
        ("put", "/admin/v1/servers/dev.bastion/rerank/policy", {"requireApproval": False}),
        ("patch", "/admin/v1/servers/dev.bastion/sql", {"team": "ads-eng"}),
        ("post", "/admin/v1/keys", {"name": "mine", "role": "admin"}),
        ("get", "/admin/v1/audit", None),
        ("put", "/admin/v1/clients/anything", {"servers": None}),
    ],
)
def test_a_user_outside_every_team_cannot_administer(
    live: Live, method: str, path: str, body: dict[str, object] | None
) -> None:
    """(Analysts own dev.bastion/sql through team analytics; an owner may revoke its own versions. Here the caller
    belongs to no team and holds no role.)"""
    with live.http(live.auth("oscar", ["marketing"])) as client:
        response = client.request(method.upper(), path, json=body)
    assert response.status_code in (403, 404), (path, response.status_code, response.text)
    with live.http(live.admin) as admin:
        assert admin.get("/admin/v1/servers/dev.bastion/rerank").json()["allowedGroups"] == []
        assert admin.get("/admin/v1/servers/dev.bastion/sql").json()["team"] == "analytics"
        version = admin.get(f"/admin/v1/servers/dev.bastion/rerank/versions/{RERANK_VERSION}")
        assert version.status_code == 200 and version.json()["status"] == "approved"


def test_an_analyst_cannot_decide_approvals(live: Live) -> None:
    parked = call(live.base, live.token("bob", ["analysts"]), "ops__pause_campaign", {"campaign_id": "c-auth"})
    approval = (parked.structured_content or {}).get("approvalId")
    assert approval, text(parked)
    # ops belongs to ads-eng: analysts (and the requester) are not its approvers.
    with live.http(live.analyst) as client:
        response = client.post("/admin/v1/approvals/decide", json={"ids": [approval], "decision": "approve"})
    assert response.status_code == 403
    assert "c-auth" not in live.runs()
