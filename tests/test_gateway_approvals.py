"""Human approval of risky calls: elicitation, input_required, and the parked queue."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest

from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, builtin_tools, ops_server, ops_state, text

pytestmark = pytest.mark.anyio

OPS = "dev.test/ops"


async def setup_ops(gw: Gateway) -> None:
    gw.team("ads-eng", ["ads-eng"])
    gw.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()))


def answering(approve: bool, seen: list[str] | None = None) -> Any:
    async def callback(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        if seen is not None:
            seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})

    return callback


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_confirmation_in_the_client_runs_the_call(gw: Gateway, mode: str) -> None:
    await setup_ops(gw)
    asked: list[str] = []
    async with gw.client(gw.token("ann"), mode=mode, elicitation=answering(True, asked)) as client:
        result = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-7"})
    assert not result.is_error, text(result)
    assert ops_state.paused == ["c-7"]
    assert len(asked) == 1
    assert "ops__pause_campaign" in asked[0] and '"campaign_id": "c-7"' in asked[0]
    assert "not read-only" in asked[0]
    row = gw.audit(tool="pause_campaign", kind="call", outcome="ok")[0]
    assert row["decision"].startswith("approved-by:caller")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_declined_confirmation_does_not_run(gw: Gateway, mode: str) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann"), mode=mode, elicitation=answering(False)) as client:
        result = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-8"})
    assert result.is_error
    assert "not approved" in text(result)
    assert ops_state.paused == []


async def test_input_required_state_is_bound_to_the_call(gw: Gateway) -> None:
    """A confirmation for one set of arguments cannot be replayed for another."""
    await setup_ops(gw)
    async with gw.client(gw.token("ann"), mode="2026-07-28", elicitation=answering(True)) as client:
        first = await client.session.call_tool("ops__pause_campaign", {"campaign_id": "c-1"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        assert first.request_state and first.request_state.startswith("v1.")  # sealed, not plaintext
        answers = {"bastion.approval": types.ElicitResult(action="accept", content={"approve": True})}
        with pytest.raises(Exception, match="requestState"):
            await client.session.call_tool(
                "ops__pause_campaign",
                {"campaign_id": "c-EVIL"},
                input_responses=answers,
                request_state=first.request_state,
                allow_input_required=True,
            )
    assert ops_state.paused == []


async def test_parked_when_the_client_cannot_confirm(gw: Gateway) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann")) as client:  # no elicitation capability
        parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-9"})
        assert parked.is_error
        assert parked.structured_content is not None
        approval_id = parked.structured_content["approvalId"]
        assert parked.structured_content["status"] == "awaiting_approval"
        assert ops_state.paused == []

        pending = gw.ok(gw.admin.get("/admin/v1/approvals", params={"status": "pending"}))["items"]
        assert [a["id"] for a in pending] == [approval_id]
        assert pending[0]["arguments"] == {"campaign_id": "c-9"}

        early = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-9", "_approval_id": approval_id})
        assert "still pending" in text(early)

        decided = gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
        assert decided[0]["status"] == "approved"

        mismatch = await client.call_tool(
            "ops__pause_campaign", {"campaign_id": "c-OTHER", "_approval_id": approval_id}
        )
        assert mismatch.is_error and "different arguments" in text(mismatch)

        ran = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-9", "_approval_id": approval_id})
        assert not ran.is_error, text(ran)
        again = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-9", "_approval_id": approval_id})
        assert again.is_error and "already been used" in text(again)
    assert ops_state.paused == ["c-9"]
    row = gw.audit(tool="pause_campaign", outcome="ok")[0]
    assert row["decision"] == "approved-by:root"
    assert row["approvalId"] == approval_id


async def test_someone_else_cannot_use_my_approval(gw: Gateway) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann")) as client:
        parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-1"})
    approval_id = parked.structured_content["approvalId"]  # type: ignore[index]
    gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
    async with gw.client(gw.token("mallory")) as client:
        stolen = await client.call_tool("ops__pause_campaign", {"campaign_id": "c-1", "_approval_id": approval_id})
    assert "requested by someone else" in text(stolen)
    assert ops_state.paused == []


async def test_rejection_and_batch_decisions(gw: Gateway) -> None:
    await setup_ops(gw)
    ids = []
    async with gw.client(gw.token("ann")) as client:
        for campaign in ("a", "b", "c"):
            parked = await client.call_tool("ops__pause_campaign", {"campaign_id": campaign})
            ids.append(parked.structured_content["approvalId"])  # type: ignore[index]
        owner = gw.auth("olga", ["ads-eng"])  # the owning team may decide
        gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": ids[:2], "decision": "approve"}, headers=owner))
        gw.ok(
            gw.admin.post(
                "/admin/v1/approvals/decide", json={"ids": [ids[2]], "decision": "reject", "note": "not today"}
            )
        )
        outsider = gw.admin.post(
            "/admin/v1/approvals/decide", json={"ids": [ids[0]], "decision": "reject"}, headers=gw.auth("eve")
        )
        assert outsider.status_code == 403
        rejected = await client.call_tool("ops__pause_campaign", {"campaign_id": "c", "_approval_id": ids[2]})
        assert "rejected by root: not today" in text(rejected)
        for campaign, approval_id in zip(("a", "b"), ids[:2], strict=True):
            ok = await client.call_tool("ops__pause_campaign", {"campaign_id": campaign, "_approval_id": approval_id})
            assert not ok.is_error
    assert ops_state.paused == ["a", "b"]
    # A batch is all-or-nothing: one already-decided id fails the whole batch.
    conflict = gw.admin.post("/admin/v1/approvals/decide", json={"ids": ids, "decision": "approve"})
    assert conflict.status_code == 409


async def test_approvals_expire(tmp_path: Path, sqlite_url: str) -> None:
    gw, ctx = start_gateway(tmp_path, sqlite_url, approval_ttl=1.0)
    try:
        await setup_ops(gw)
        async with gw.client(gw.token("ann")) as client:
            parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "late"})
            approval_id = parked.structured_content["approvalId"]  # type: ignore[index]
            time.sleep(1.2)
            expired = gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"})
            assert expired.status_code == 409
            assert "expired" in expired.json()["error"]
            listed = gw.ok(gw.admin.get("/admin/v1/approvals", params={"status": "expired"}))["items"]
            assert [a["id"] for a in listed] == [approval_id]
            retry = await client.call_tool("ops__pause_campaign", {"campaign_id": "late", "_approval_id": approval_id})
            assert "still pending" not in text(retry) and retry.is_error
    finally:
        gw.live.stop()
        ctx.db.dispose()


async def test_second_approver_policy(gw: Gateway) -> None:
    await setup_ops(gw)
    gw.policy(OPS, {"secondApprover": True}, tool="pause_campaign")
    # Even a client that could confirm is parked: the caller's own "yes" is not enough.
    async with gw.client(gw.token("olga", ["ads-eng"]), elicitation=answering(True)) as client:
        parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "big"})
        approval_id = parked.structured_content["approvalId"]  # type: ignore[index]
        self_approval = gw.admin.post(
            "/admin/v1/approvals/decide",
            json={"ids": [approval_id], "decision": "approve"},
            headers=gw.auth("olga", ["ads-eng"]),
        )
        assert self_approval.status_code == 403
        assert "someone other than the requester" in self_approval.json()["error"]
        gw.ok(
            gw.admin.post(
                "/admin/v1/approvals/decide",
                json={"ids": [approval_id], "decision": "approve"},
                headers=gw.auth("oscar", ["ads-eng"]),
            )
        )
        ran = await client.call_tool("ops__pause_campaign", {"campaign_id": "big", "_approval_id": approval_id})
        assert not ran.is_error
    assert ops_state.paused == ["big"]


async def test_approval_id_in_meta_works_too(gw: Gateway) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann")) as client:
        parked = await client.call_tool("ops__pause_campaign", {"campaign_id": "m"})
        approval_id = parked.structured_content["approvalId"]  # type: ignore[index]
        gw.ok(gw.admin.post("/admin/v1/approvals/decide", json={"ids": [approval_id], "decision": "approve"}))
        ran = await client.call_tool(
            "ops__pause_campaign", {"campaign_id": "m"}, meta={"dev.bastion/approvalId": approval_id}
        )
        assert not ran.is_error, text(ran)


async def test_tools_needing_approval_advertise_the_approval_argument(gw: Gateway) -> None:
    await setup_ops(gw)
    async with gw.client(gw.token("ann")) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert "_approval_id" in tools["ops__pause_campaign"].input_schema["properties"]
    assert "_approval_id" not in tools["ops__read_metric"].input_schema["properties"]


async def test_curated_annotations_override_upstream_hints(gw: Gateway) -> None:
    """The upstream says read_metric is read-only; reviewers say it is not. The registry wins."""
    await setup_ops(gw)
    gw.policy(OPS, {"annotations": {"readOnlyHint": False, "destructiveHint": True}}, tool="read_metric")
    async with gw.client(gw.token("ann")) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        curated = tools["ops__read_metric"].annotations
        assert curated is not None and curated.read_only_hint is False and curated.destructive_hint is True
        parked = await client.call_tool("ops__read_metric", {"name": "x"})
    assert parked.structured_content is not None and parked.structured_content["status"] == "awaiting_approval"
    assert "tool read_metric is not read-only" in parked.structured_content["reasons"]
