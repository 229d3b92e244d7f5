"""Two gateway replicas on one PostgreSQL and one Redis, as behind a load balancer."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from sqlalchemy import create_engine, text

from registry.db.models import Base
from tests.conftest import service_url
from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, builtin_tools, ops_server, ops_state
from tests.gateway_harness import text as result_text

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.redis]

OPS = "dev.test/ops"


def _reset(url: str) -> None:
    engine = create_engine(url)
    kept = ", ".join(t.name for t in Base.metadata.sorted_tables if t.name != "registry_revision")
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        conn.execute(text(f"TRUNCATE {kept} RESTART IDENTITY CASCADE"))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    engine.dispose()


@pytest.fixture
def replicas(tmp_path: Path, postgres_database: str) -> Iterator[tuple[Gateway, Gateway]]:
    redis_url = service_url("BASTION_TEST_REDIS_URL", "Redis")
    _reset(postgres_database)
    ops_state.paused.clear()
    shared: dict[str, Any] = {"redis_url": redis_url, "gateway_stateless": True, "registry_cache_ttl": 0.2}
    a, ctx_a = start_gateway(tmp_path, postgres_database, replica_id="replica-a", **shared)
    b, ctx_b = start_gateway(tmp_path, postgres_database, replica_id="replica-b", **shared)
    yield a, b
    for gw, ctx in ((a, ctx_a), (b, ctx_b)):
        gw.live.stop()
        ctx.db.dispose()


async def _sees(client: Any, tool: str, timeout: float = 5.0) -> None:
    """Wait until a replica's cache has caught up with a change made through the other one."""
    deadline = time.monotonic() + timeout
    while tool not in {t.name for t in (await client.list_tools()).tools}:
        assert time.monotonic() < deadline, f"{tool} never appeared"
        await anyio.sleep(0.1)


async def test_approval_granted_on_a_is_honoured_on_b(replicas: tuple[Gateway, Gateway]) -> None:
    a, b = replicas
    a.team("ads-eng", ["ads-eng"])
    a.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()))
    user = f"ann-{uuid.uuid4().hex[:6]}"
    async with b.client(b.token(user)) as client:
        await _sees(client, "ops__pause_campaign")  # b trusts its cache for registry_cache_ttl (0.2 s)
        parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "x"})
    approval_id = parked.structured_content["approvalId"]  # type: ignore[index]
    a.ok(a.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
    async with b.client(b.token(user)) as client:
        ran = await client.call_tool("ops__pause_campaign", {"campaign_id": "x", "_approval_id": approval_id})
        assert not ran.is_error, result_text(ran)
    async with a.client(a.token(user)) as client:
        again = await client.call_tool("ops__pause_campaign", {"campaign_id": "x", "_approval_id": approval_id})
        assert "already been used" in result_text(again)
    assert ops_state.paused == ["x"]
    replicas_seen = {r["replica"] for r in a.audit(kind="call", tool="pause_campaign")}
    assert replicas_seen == {"replica-a", "replica-b"}


async def test_rate_limit_is_shared_through_redis(replicas: tuple[Gateway, Gateway]) -> None:
    a, b = replicas
    a.team("ads-eng", ["ads-eng"])
    a.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()))
    a.policy(OPS, {"rateLimitPerMinute": 4}, tool="read_metric")
    user = f"bob-{uuid.uuid4().hex[:6]}"
    outcomes = []
    async with a.client(a.token(user)) as on_a, b.client(b.token(user)) as on_b:
        for replica in (on_a, on_b):  # each cache refreshes after the publish and the policy
            await _sees(replica, "ops__read_metric")
        for i in range(6):
            client = on_a if i % 2 == 0 else on_b
            result = await client.call_tool("ops__read_metric", {"name": "x"})
            outcomes.append(result_text(result).split(" (")[0] if result.is_error else "ok")
    limited = "rate limit per user for ops__read_metric"
    assert outcomes == ["ok", "ok", "ok", "ok", limited, limited]


async def test_confirmation_started_on_a_completes_on_b(replicas: tuple[Gateway, Gateway]) -> None:
    """2026-07-28 input_required: the sealed request state is readable by every replica."""
    a, b = replicas
    a.team("ads-eng", ["ads-eng"])
    a.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()))
    user = f"cy-{uuid.uuid4().hex[:6]}"

    async def yes(context: Any, params: Any) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"approve": True})

    async with a.client(a.token(user), mode="2026-07-28", elicitation=yes) as on_a:
        await _sees(on_a.session, "ops__pause_campaign")
        first = await on_a.session.call_tool("ops__pause_campaign", {"campaign_id": "lb"}, allow_input_required=True)
    assert isinstance(first, types.InputRequiredResult)
    answers = {"bastion.approval": types.ElicitResult(action="accept", content={"approve": True})}
    async with b.client(b.token(user), mode="2026-07-28", elicitation=yes) as on_b:
        await _sees(on_b.session, "ops__pause_campaign")  # b trusts its cache for registry_cache_ttl
        second = await on_b.session.call_tool(
            "ops__pause_campaign",
            {"campaign_id": "lb"},
            input_responses=answers,
            request_state=first.request_state,
            allow_input_required=True,
        )
    assert isinstance(second, types.CallToolResult) and not second.is_error
    assert ops_state.paused == ["lb"]
