"""The chat service in-process: no-LLM mode, the per-call timeout, one turn at a time, retention, the proof header."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from governance import Principal
from registry.context import RegistryContext
from registry.db.models import ChatMessage, ChatSession
from registry.services import chat as store
from tests.chat_harness import ChatClient, tool_call
from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, RemoteUpstream, builtin_tools, ops_server, ops_state, remote_tools
from tests.llm_server import ScriptedLLM, scripted_llm


@pytest.fixture
def no_llm(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    """A server without an LLM, on SQLite and on PostgreSQL (sessions live in the registry database)."""
    monkeypatch.delenv("BASTION_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("BASTION_LLM_MODEL", raising=False)
    ops_state.paused.clear()
    gw, ctx = start_gateway(tmp_path, db_url)
    gw.team("ads-eng", ["ads-eng"])
    gw.publish("dev.test/ops", "ops", "ads-eng", anyio.run(builtin_tools, ops_server()))
    yield gw
    gw.live.stop()
    ctx.db.dispose()


@pytest.fixture
def with_llm(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, ScriptedLLM, RemoteUpstream]]:
    upstream = RemoteUpstream()
    upstream.live.start()
    with scripted_llm() as (llm, url):
        monkeypatch.setenv("BASTION_LLM_BASE_URL", url)
        monkeypatch.setenv("BASTION_LLM_MODEL", "scripted")
        monkeypatch.setenv("BASTION_CHAT_CALL_TIMEOUT", "0.5")
        gw, ctx = start_gateway(tmp_path, sqlite_url)
        gw.team("platform-eng", ["platform-eng"])
        tools = anyio.run(remote_tools, upstream.mcp_url)
        gw.publish(
            "dev.test/remote", "remote", "platform-eng", tools, transport="streamable-http", endpoint=upstream.mcp_url
        )
        yield gw, llm, upstream
        gw.live.stop()
        ctx.db.dispose()
    upstream.live.stop()


def test_without_an_llm_it_says_so_in_one_line_and_direct_calls_work(no_llm: Gateway) -> None:
    chat = ChatClient(no_llm.url, no_llm.token("ann", ["ads-eng"]))
    sid = chat.new()
    assert chat.get(sid).json()["llm"] is False
    turn = chat.send(sid, "what is the ctr?")
    [notice] = turn.notices
    assert notice["code"] == "no_llm" and "\n" not in notice["message"] and "/call" in notice["message"]
    assert turn.done["status"] == "complete" and turn.results == []

    direct = chat.call(sid, "ops__read_metric", {"name": "ctr"})
    [result] = direct.results
    assert result["status"] == "ok" and result["detail"] == "ctr=42"
    # Approval still applies to direct calls: proposed, then run once when approved.
    asked = chat.call(sid, "ops__pause_campaign", {"campaign_id": "c-5"})
    [proposal] = asked.proposals
    assert ops_state.paused == []
    ran = chat.decide(sid, {proposal["id"]: "approve"})
    assert [r["status"] for r in ran.results] == ["ok"] and ops_state.paused == ["c-5"]
    assert ran.text == ""  # no model step after a direct call
    rows = no_llm.audit(tool="pause_campaign", outcome="ok")
    assert len(rows) == 1 and rows[0]["clientId"] == "bastion-chat" and rows[0]["subject"] == "ann"


def test_a_slow_tool_is_cut_at_the_call_timeout_and_the_user_is_told(
    with_llm: tuple[Gateway, ScriptedLLM, RemoteUpstream],
) -> None:
    gw, llm, _ = with_llm
    llm.script(tool_call("remote__slow", {"seconds": 12}), "It timed out.")
    chat = ChatClient(gw.url, gw.token("pat", ["platform-eng"]))
    sid = chat.new()
    started = time.perf_counter()
    turn = chat.send(sid, "run the slow thing")
    # Cut at the 0.5 s timeout, not after the tool's 12 s (wide margins: a loaded CI machine once took 5.6 s).
    assert time.perf_counter() - started < 9
    [result] = turn.results
    assert result["status"] == "timeout" and "BASTION_CHAT_CALL_TIMEOUT" in result["detail"]
    assert result["latency_ms"] < 1800  # the chat's 0.5 s, not the gateway's own 2 s upstream timeout
    assert turn.text == "It timed out."


def test_one_turn_at_a_time_per_session(with_llm: tuple[Gateway, ScriptedLLM, RemoteUpstream]) -> None:
    gw, llm, _ = with_llm

    def slow(body: dict[str, object]) -> str:
        time.sleep(3.0)  # the LLM thinks: the turn runs for 3 s
        return "Done."

    llm.script(slow)
    chat = ChatClient(gw.url, gw.token("pat", ["platform-eng"]))
    sid = chat.new()
    first = threading.Thread(target=chat.send, args=(sid, "slow please"))
    first.start()
    time.sleep(1.0)
    second = chat.send(sid, "are you there?")
    first.join()
    assert second.status_code == 409 and "already running" in second.body["error"]


def test_unknown_session_and_other_users(with_llm: tuple[Gateway, ScriptedLLM, RemoteUpstream]) -> None:
    gw, llm, _ = with_llm
    llm.script("Hi.")
    ann, bob = ChatClient(gw.url, gw.token("ann")), ChatClient(gw.url, gw.token("bob"))
    sid = ann.new()
    ann.send(sid, "hello")
    missing = "00000000-0000-0000-0000-000000000000"
    assert ann.get(missing).status_code == 404 and bob.get(sid).status_code == 404
    assert bob.get(sid).json() == ann.get(missing).json()  # another's session is indistinguishable from none


def test_forged_proof_on_the_gateway_is_401(no_llm: Gateway) -> None:
    for forged in ("bastion-chat abc", "bastion-chat 1 abc", "cursor abc"):
        response = httpx.post(
            f"{no_llm.url}/mcp",
            headers={"Authorization": f"Bearer {no_llm.token('ann')}", "x-bastion-internal-client": forged,
                     "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )  # fmt: skip
        assert response.status_code == 401 and "valid proof" in response.text, forged


def test_retention_prunes_idle_sessions_only(ctx: RegistryContext) -> None:
    ann = Principal(subject="ann")
    with ctx.db.transaction() as session:
        old = store.create_session(session, ann, "old", None)
        fresh = store.create_session(session, ann, "fresh", None)
        store.append(session, old, [{"role": "user", "content": "long ago"}])
        store.append(session, fresh, [{"role": "user", "content": "today"}])
        old.updated_at = datetime.now(UTC) - timedelta(days=31)
        old_id, fresh_id = old.id, fresh.id
    with ctx.db.transaction() as session:
        assert store.prune(session, retention_days=30) == 1
    with ctx.db.read() as session:
        assert session.get(ChatSession, old_id) is None and session.get(ChatSession, fresh_id) is not None
        kept = [m.body["content"] for m in session.query(ChatMessage).order_by(ChatMessage.id)]
    assert kept == ["today"]


def test_scope_names_are_checked(ctx: RegistryContext) -> None:
    from registry.errors import Invalid

    with ctx.db.transaction() as session, pytest.raises(Invalid) as raised:
        store.create_session(session, Principal(subject="ann"), "", ["x" * 500])
    assert raised.value.field == "scope" and len(raised.value.message) < 200


def test_a_revoked_key_stops_the_chat_at_once(no_llm: Gateway) -> None:
    """Gateway connections are pooled per credential, but every call is authenticated: revocation is immediate."""
    created = no_llm.admin.post("/admin/v1/keys", json={"name": "ann-laptop", "groups": ["ads-eng"]})
    assert created.status_code == 201, created.text
    chat = ChatClient(no_llm.url, created.json()["key"])
    sid = chat.new()
    assert [r["status"] for r in chat.call(sid, "ops__read_metric", {"name": "ctr"}).results] == ["ok"]
    [row] = no_llm.audit(tool="read_metric", outcome="ok")
    assert row["clientId"] == "bastion-chat"  # the chat's calls are its own client's, even with a key
    assert no_llm.admin.delete("/admin/v1/keys/ann-laptop").status_code == 200
    after = chat.call(sid, "ops__read_metric", {"name": "ctr"})
    assert after.status_code == 401
    assert len(no_llm.audit(tool="read_metric", outcome="ok")) == 1
