"""Human approval under attack: replayed confirmations, borrowed or reused approval ids, changed arguments.

`ops__pause_campaign` is destructive: every call needs a person's approval. The test builtin appends each real
run to a file, so the tests count runs, not what the gateway said.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import httpx
import mcp_types as types
import pytest

from tests.security.clients import MODERN, connect, everything, text
from tests.security.conftest import Live

ACCEPT = {"bastion.approval": types.ElicitResult(action="accept", content={"approve": True})}


async def never_called(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
    """Advertises form elicitation (so 2026-07-28 calls get input_required); answers are sent by hand."""
    raise AssertionError("the gateway asks through input_required on 2026-07-28, not by elicitation")


def campaign() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


async def ask(base: str, token: str, campaign_id: str) -> types.InputRequiredResult:
    async with connect(base, token, mode=MODERN, elicitation=never_called) as client:
        first = await client.session.call_tool("ops__pause_campaign", {"campaign_id": campaign_id},
                                               allow_input_required=True)  # fmt: skip
    assert isinstance(first, types.InputRequiredResult), first
    return first


async def answer(base: str, token: str, campaign_id: str, state: str | None,
                 responses: dict[str, Any] | None = None) -> Any:  # fmt: skip
    async with connect(base, token, mode=MODERN, elicitation=never_called) as client:
        try:
            return await client.session.call_tool("ops__pause_campaign", {"campaign_id": campaign_id},
                                                  input_responses=responses or ACCEPT, request_state=state,
                                                  allow_input_required=True)  # fmt: skip
        except Exception as exc:  # the SDK raises for a protocol-level refusal (a state bound elsewhere)
            return exc


def test_a_sealed_confirmation_runs_once_across_replicas(live: Live, replica: Live) -> None:
    """Old code: one sealed requestState plus a client-written accept ran the call three times."""
    token, target = live.token("ann", ["analysts"]), campaign()

    async def scenario() -> list[Any]:
        state = (await ask(live.base, token, target)).request_state
        assert state and state.startswith("v1.")
        first = await answer(live.base, token, target, state)
        again = await answer(live.base, token, target, state)
        elsewhere = await answer(replica.base, token, target, state)
        return [first, again, elsewhere]

    first, again, elsewhere = anyio.run(scenario)
    assert isinstance(first, types.CallToolResult) and not first.is_error, first
    for replay in (again, elsewhere):
        assert isinstance(replay, types.CallToolResult) and replay.is_error
        assert "already answered" in text(replay)
    assert live.runs().count(target) == 1


def test_a_confirmation_is_bound_to_its_caller_and_arguments(live: Live) -> None:
    token, target = live.token("ann", ["analysts"]), campaign()

    async def scenario() -> tuple[Any, Any, Any]:
        state = (await ask(live.base, token, target)).request_state
        other_args = await answer(live.base, token, campaign(), state)
        other_user = await answer(live.base, live.token("bob", ["analysts"]), target, state)
        forged = await answer(live.base, token, target, "bastion-approval:v2:" + "A" * 32)
        return other_args, other_user, forged

    other_args, other_user, forged = anyio.run(scenario)
    for refused in (other_args, other_user):
        assert not isinstance(refused, types.CallToolResult) or refused.is_error
        assert "requestState" in str(refused) or "invalid" in str(refused).lower()
    assert isinstance(forged, Exception | types.InputRequiredResult)  # not a state we sealed: asked anew
    assert target not in live.runs()


def test_a_declined_or_malformed_answer_runs_nothing(live: Live) -> None:
    token, target = live.token("ann", ["analysts"]), campaign()
    answers = [
        {"bastion.approval": types.ElicitResult(action="decline")},
        {"bastion.approval": types.ElicitResult(action="accept", content={"approve": "yes"})},
        {"bastion.approval": types.ElicitResult(action="accept", content={})},
    ]

    async def scenario() -> list[Any]:
        out = []
        for responses in answers:
            state = (await ask(live.base, token, target)).request_state
            out.append(await answer(live.base, token, target, state, responses))
        return out

    for result in anyio.run(scenario):
        assert isinstance(result, types.CallToolResult) and result.is_error and "not approved" in text(result)
    assert target not in live.runs()


def park(live: Live, token: str, target: str) -> str:
    async def scenario() -> types.CallToolResult:
        async with connect(live.base, token) as client:  # no elicitation capability: parked
            return await client.call_tool("ops__pause_campaign", {"campaign_id": target})

    parked = anyio.run(scenario)
    approval = (parked.structured_content or {}).get("approvalId")
    assert parked.is_error and approval, text(parked)
    return str(approval)


def retry(live: Live, token: str, target: str, approval: object) -> types.CallToolResult:
    async def scenario() -> types.CallToolResult:
        async with connect(live.base, token) as client:
            return await client.call_tool("ops__pause_campaign", {"campaign_id": target, "_approval_id": approval})

    return anyio.run(scenario)


def decide(live: Live, approval: str, who: dict[str, str]) -> httpx.Response:
    with live.http(who) as client:
        return client.post("/admin/v1/approvals/decide", json={"ids": [approval], "decision": "approve"})


def test_a_parked_approval_is_used_once_by_its_requester_for_its_arguments(live: Live, replica: Live) -> None:
    token, target = live.token("ann", ["analysts"]), campaign()
    approval = park(live, token, target)
    assert decide(live, approval, live.auth("eli", ["ads-eng"])).status_code == 200
    assert retry(live, live.token("bob", ["analysts"]), target, approval).is_error  # someone else
    changed = retry(live, token, campaign(), approval)
    assert changed.is_error and "different arguments" in text(changed)
    assert not retry(live, token, target, approval).is_error  # the one use
    reused = retry(replica, token, target, approval)  # again, on another replica
    assert reused.is_error and "already been used" in text(reused)
    assert live.runs().count(target) == 1


@pytest.mark.parametrize("approval", ["x" * 40, "0" * 5000, 12345, ["a"], "' OR 1=1 --"])
def test_a_malformed_approval_id_is_refused_and_still_audited(live: Live, approval: object) -> None:
    """Old code: a 40-character id overflowed the audit column on PostgreSQL and lost the batch."""
    target = campaign()
    result = retry(live, live.token("ann", ["analysts"]), target, approval)
    assert result.is_error and len(everything(result)) < 2_000
    assert target not in live.runs()
    with live.http(live.admin) as admin:
        for _ in range(50):
            rows = admin.get("/admin/v1/audit", params={"subject": "ann", "tool": "pause_campaign",
                                                          "limit": 100}).json()["items"]  # fmt: skip
            if any(target in str(r.get("arguments")) for r in rows):
                break
            anyio.run(anyio.sleep, 0.1)
        else:
            raise AssertionError("no audit row for the refused call")


def test_a_second_approver_policy_keeps_the_requester_out(live: Live) -> None:
    with live.http(live.admin) as admin:
        put = admin.put("/admin/v1/servers/dev.test/ops/tools/pause_campaign/policy",
                        json={"requireApproval": True, "secondApprover": True})  # fmt: skip
        assert put.status_code == 200, put.text
    try:
        requester, target = live.token("eli", ["ads-eng"]), campaign()
        approval = park(live, requester, target)
        own = decide(live, approval, live.auth("eli", ["ads-eng"]))
        assert own.status_code == 403 and "other than the requester" in own.text
        assert retry(live, requester, target, approval).is_error
        assert target not in live.runs()
    finally:
        with live.http(live.admin) as admin:
            admin.delete("/admin/v1/servers/dev.test/ops/tools/pause_campaign/policy")
