"""Human approval of risky calls: confirmed in the client, or parked until an approver decides.

- 2025-11-25 sessions whose client can show a form: the gateway asks through elicitation.
- 2026-07-28 clients: the call returns `input_required`; the SDK seals `requestState` (AES-GCM) and binds it
  to the caller, the tool and the arguments. Sealing makes the state unforgeable, not single-use: the state
  carries a nonce, and the first answer to it is recorded in the database (`request_state_uses`), so a
  replayed state plus a client-written "accept" is refused on every replica.
- Otherwise, or when a policy wants a second approver, the call is parked (`registry.services.approvals`);
  the caller retries with the approval id, which is consumed exactly once.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import mcp_types as types
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import Decision, Principal, redact
from registry.db import Database
from registry.db.models import RequestStateUse
from registry.errors import RegistryError
from registry.gateway import dbio
from registry.gateway.metrics import GatewayMetrics
from registry.gateway.model import Outcome, Route, shown
from registry.gateway.upstreams import error_result
from registry.services import approvals
from registry.settings import RegistrySettings

APPROVAL_ARG = "_approval_id"
APPROVAL_META = "dev.bastion/approvalId"
ELICIT_KEY = "bastion.approval"
ELICIT_STATE = "bastion-approval:v2"
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Run this call",
            "description": "Tick to let the gateway run the call exactly as shown.",
        }
    },
    "required": ["approve"],
}
_STATE = re.compile(re.escape(ELICIT_STATE) + r":([A-Za-z0-9_-]{24,64})")
_APPROVAL_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class ApprovalGate:
    def __init__(self, db: Database, settings: RegistrySettings, metrics: GatewayMetrics) -> None:
        self.db = db
        self.settings = settings
        self.metrics = metrics

    async def check(
        self,
        principal: Principal,
        route: Route,
        arguments: dict[str, Any],
        approval_id: object,
        decision: Decision,
        outcome: Outcome,
        params: types.CallToolRequestParams,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult | None:
        """None when the call may proceed; otherwise the result to send instead."""
        if approval_id is not None:
            return await self._use_approval(principal, route, arguments, approval_id, outcome)
        why = "; ".join(decision.approval_reasons)
        message = self.message(route, arguments, why)
        if not decision.second_approver and modern and ask_user is None:
            return await self._input_required(params, message, outcome)
        if not decision.second_approver and ask_user is not None:
            self.metrics.approvals.labels("elicitation", "asked").inc()
            try:
                with anyio.fail_after(self.settings.approval_ttl):
                    answer = await ask_user(message)
            except TimeoutError:
                answer = types.ElicitResult(action="cancel")
            return self.judge(answer, outcome, "elicitation")
        return await self._park(principal, route, arguments, decision, outcome, why)

    # -- an approval id from the queue -----------------------------------------------------------------

    async def _use_approval(
        self, principal: Principal, route: Route, arguments: dict[str, Any], approval_id: object, outcome: Outcome
    ) -> types.CallToolResult | None:
        entry, tool = route.entry, route.tool
        outcome.decision, outcome.rule, outcome.outcome = "denied", "approval", "denied"
        if not isinstance(approval_id, str) or not _APPROVAL_ID.fullmatch(approval_id):
            outcome.error = f"{APPROVAL_ARG} must be the id of an approval (a UUID)"
            self.metrics.approvals.labels("queue", "refused").inc()
            return error_result(outcome.error, error="approval")
        outcome.approval_id = approval_id
        try:
            granted = await dbio.transaction(
                self.db,
                lambda s: approvals.consume(
                    s, approval_id, principal, server=entry.name, tool=tool.name, arguments=arguments
                ),
            )
        except RegistryError as exc:
            outcome.error = exc.message
            self.metrics.approvals.labels("queue", "refused").inc()
            return error_result(exc.message, error="approval", approvalId=approval_id)
        outcome.decision, outcome.rule, outcome.outcome = f"approved-by:{granted.decided_by}", None, "ok"
        outcome.approval_id = granted.id
        self.metrics.approvals.labels("queue", "used").inc()
        return None

    # -- 2026-07-28: input_required with a single-use sealed state ------------------------------------

    async def _input_required(
        self, params: types.CallToolRequestParams, message: str, outcome: Outcome
    ) -> types.CallToolResult | types.InputRequiredResult | None:
        answer = (params.input_responses or {}).get(ELICIT_KEY)
        match = _STATE.fullmatch(params.request_state or "")
        if match is not None and isinstance(answer, types.ElicitResult):
            if not await self.use_state(match.group(1)):
                outcome.decision, outcome.rule, outcome.outcome = "denied", "approval.replay", "denied"
                outcome.error = "this confirmation was already answered; call the tool again to be asked anew"
                self.metrics.approvals.labels("input_required", "replayed").inc()
                return error_result(f"Not run: {outcome.error}.", error="approval_replayed")
            return self.judge(answer, outcome, "input_required")
        self.metrics.approvals.labels("input_required", "asked").inc()
        outcome.decision = "awaiting-user"
        return types.InputRequiredResult(
            input_requests={
                ELICIT_KEY: types.ElicitRequest(
                    params=types.ElicitRequestFormParams(message=message, requested_schema=APPROVAL_SCHEMA)
                )
            },
            request_state=f"{ELICIT_STATE}:{secrets.token_urlsafe(24)}",
        )

    async def use_state(self, nonce: str) -> bool:
        """Record the first answer to a sealed state; False when it was answered before (on any replica)."""
        # The sealed envelope expires after approval_ttl; the nonce is kept a little longer than that.
        expires = datetime.now(UTC) + timedelta(seconds=self.settings.approval_ttl + 300)

        def record(session: Session) -> None:
            session.add(RequestStateUse(nonce=nonce, expires_at=expires))
            session.flush()

        try:
            await dbio.transaction(self.db, record)
        except IntegrityError:
            return False
        return True

    async def prune(self) -> int:
        """Forget answered states whose sealed envelope can no longer be presented."""

        def work(session: Session) -> int:
            result = session.execute(delete(RequestStateUse).where(RequestStateUse.expires_at < datetime.now(UTC)))
            return int(getattr(result, "rowcount", 0) or 0)

        return await dbio.transaction(self.db, work)

    # -- the queue ---------------------------------------------------------------------------------------

    async def _park(
        self,
        principal: Principal,
        route: Route,
        arguments: dict[str, Any],
        decision: Decision,
        outcome: Outcome,
        why: str,
    ) -> types.CallToolResult:
        entry, tool = route.entry, route.tool
        approval = await dbio.transaction(
            self.db,
            lambda s: approvals.park(
                s,
                principal,
                server=entry.name,
                tool=tool.name,
                arguments=arguments,
                reasons=decision.approval_reasons,
                second_approver=decision.second_approver,
                ttl_seconds=self.settings.approval_ttl,
                pii_keys=self.settings.audit_pii_keys,
            ),
        )
        self.metrics.approvals.labels("queue", "parked").inc()
        outcome.decision, outcome.outcome, outcome.approval_id = "awaiting", "awaiting_approval", approval.id
        approver = (
            "someone other than you (admin or team " + entry.team + ")"
            if decision.second_approver
            else ("an admin or team " + entry.team)
        )
        text = (
            f"Not run: {route.exposed} needs approval ({why}). Approval {approval.id} is pending until "
            f"{approval.expires_at.isoformat()}. Once {approver} approves it (POST /admin/v1/approvals/decide), "
            f'call {route.exposed} again with the same arguments plus "{APPROVAL_ARG}": "{approval.id}".'
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={
                "status": "awaiting_approval",
                "approvalId": approval.id,
                "expiresAt": approval.expires_at.isoformat(),
                "reasons": decision.approval_reasons,
            },
            is_error=True,
        )

    # -- what the person sees, and what their answer means ---------------------------------------------

    def message(self, route: Route, arguments: dict[str, Any], why: str) -> str:
        rendered = json.dumps(redact(arguments, self.settings.audit_pii_keys), indent=2, sort_keys=True, default=str)
        if len(rendered) > 4000:
            rendered = rendered[:4000] + f"\n… ({len(rendered):,} characters in all)"
        head = f"Approve {route.exposed} on {route.entry.name}?"
        return f"{head}\nArguments:\n{rendered}\nApproval is needed because: {why}."

    def judge(self, answer: types.ElicitResult, outcome: Outcome, mode: str) -> types.CallToolResult | None:
        approved = answer.action == "accept" and (answer.content or {}).get("approve") is True
        action = answer.action if answer.action in ("accept", "decline", "cancel") else "invalid"
        self.metrics.approvals.labels(mode, "approved" if approved else action).inc()
        if approved:
            outcome.decision = f"approved-by:caller ({mode})"
            return None
        outcome.decision, outcome.rule, outcome.outcome = "denied", "approval", "declined"
        outcome.error = f"the call was not approved ({shown(str(answer.action), 20)})"
        return error_result(f"Not run: {outcome.error}.", error="declined")


__all__ = ["APPROVAL_ARG", "APPROVAL_META", "APPROVAL_SCHEMA", "ELICIT_KEY", "ELICIT_STATE", "ApprovalGate"]
