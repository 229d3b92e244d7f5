"""Parked tool calls awaiting a person's approval.

A call that needs approval and cannot be confirmed in the client is parked here. Admins or
the owning team approve or reject (singly or in a batch); the caller retries with the id and
the call runs once, exactly as approved: same caller, same tool, same arguments (by hash).
Consumption is one conditional UPDATE, so two replicas can never both run it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governance import Principal, arguments_hash, redact
from registry.db.models import Approval, AuditEvent, Server
from registry.errors import Conflict, Forbidden, NotFound
from registry.schemas.admin import ApprovalDecision, ApprovalOut
from registry.schemas.base import Page
from registry.services.common import (
    check_limit,
    decode_cursor,
    page_of,
    record_event,
    team_facts,
    team_ids_of,
)

PENDING, APPROVED, REJECTED, CONSUMED, EXPIRED = "pending", "approved", "rejected", "consumed", "expired"
DECIDED = "decided"  # a filter, not a status: every approval someone decided


def park(
    session: Session,
    principal: Principal,
    *,
    server: str,
    tool: str,
    arguments: dict[str, Any],
    reasons: list[str],
    second_approver: bool,
    ttl_seconds: float,
    pii_keys: Iterable[str] = (),
) -> Approval:
    now = datetime.now(UTC)
    approval = Approval(
        id=str(uuid.uuid4()),
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_seconds),
        status=PENDING,
        requester=principal.subject,
        requester_groups=sorted(principal.groups),
        client_id=principal.client_id,
        server=server,
        tool=tool,
        arguments=redact(arguments, pii_keys),
        arguments_hash=arguments_hash(arguments),
        reasons=reasons,
        second_approver=second_approver,
    )
    session.add(approval)
    session.flush()
    return approval


def _out(approval: Approval, call_outcome: str | None = None) -> ApprovalOut:
    status = approval.status
    if status in (PENDING, APPROVED) and approval.expires_at <= datetime.now(UTC):
        status = EXPIRED
    out = ApprovalOut.model_validate(approval)
    out.status = status
    out.call_outcome = call_outcome
    return out


def _call_outcomes(session: Session, ids: list[str]) -> dict[str, str]:
    """The outcome of the call each (consumed) approval let through, from the audit log."""
    if not ids:
        return {}
    rows = session.execute(
        select(AuditEvent.approval_id, AuditEvent.outcome)
        .where(AuditEvent.approval_id.in_(ids), AuditEvent.kind == "call")
        .order_by(AuditEvent.id)
    )
    # The last row wins: the one written when the approved call ran.
    return {approval_id: outcome for approval_id, outcome in rows if approval_id}


def list_approvals(
    session: Session, actor: Principal, status: str | None, server: str | None, limit: int, cursor: str | None
) -> Page[ApprovalOut]:
    limit = check_limit(limit)
    stmt = select(Approval).order_by(Approval.created_at.desc(), Approval.id.desc()).limit(limit + 1)
    now = datetime.now(UTC)
    if status == EXPIRED:
        stmt = stmt.where(Approval.status.in_([PENDING, APPROVED]), Approval.expires_at <= now)
    elif status in (PENDING, APPROVED):
        stmt = stmt.where(Approval.status == status, Approval.expires_at > now)
    elif status == DECIDED:
        stmt = stmt.where(Approval.decided_at.is_not(None))
    elif status is not None:
        stmt = stmt.where(Approval.status == status)
    if server:
        stmt = stmt.where(Approval.server == server)
    if not actor.is_admin:
        # The owning team decides; callers see their own requests.
        owned = select(Server.name).where(Server.team_id.in_(team_ids_of(session, actor)))
        stmt = stmt.where((Approval.server.in_(owned)) | (Approval.requester == actor.subject))
    after = decode_cursor(cursor, datetime, str)
    if after:
        stmt = stmt.where(
            (Approval.created_at < after[0]) | ((Approval.created_at == after[0]) & (Approval.id < after[1]))
        )
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda a: [a.created_at.isoformat(), a.id])
    outcomes = _call_outcomes(session, [a.id for a in rows if a.consumed_at is not None])
    return Page[ApprovalOut](
        items=[_out(a, outcomes.get(a.id)) for a in rows],
        next_cursor=next_cursor,
    )


def decide(session: Session, actor: Principal, body: ApprovalDecision) -> list[ApprovalOut]:
    """Approve or reject a batch: all of it or none of it."""
    now = datetime.now(UTC)
    ids = list(dict.fromkeys(body.ids))
    rows = {a.id: a for a in session.scalars(select(Approval).where(Approval.id.in_(ids)).with_for_update())}
    servers = {
        s.name: s for s in session.scalars(select(Server).where(Server.name.in_({a.server for a in rows.values()})))
    }
    decided: list[Approval] = []
    for approval_id in ids:
        approval = rows.get(approval_id)
        if approval is None:
            raise NotFound(f"approval {approval_id} does not exist", field="ids")
        server = servers.get(approval.server)
        may_decide = actor.is_admin or (server is not None and team_facts(server.team).has_member(actor))
        if not may_decide:
            raise Forbidden(f"only admins or the team owning {approval.server} may decide approval {approval_id}")
        if approval.second_approver and actor.subject == approval.requester:
            raise Forbidden(f"approval {approval_id} needs someone other than the requester to decide it")
        if approval.status != PENDING:
            raise Conflict(f"approval {approval_id} is already {approval.status}", field="ids")
        if approval.expires_at <= now:
            raise Conflict(f"approval {approval_id} expired at {approval.expires_at.isoformat()}", field="ids")
        approval.status = APPROVED if body.decision == "approve" else REJECTED
        approval.decided_by = actor.subject
        approval.decided_at = now
        approval.note = body.note
        decided.append(approval)
    session.flush()
    record_event(session, actor, f"approval.{body.decision}", ",".join(ids), note=body.note)
    return [_out(a) for a in decided]


def consume(
    session: Session, approval_id: str, principal: Principal, *, server: str, tool: str, arguments: dict[str, Any]
) -> Approval:
    """Use an approved call exactly once, or explain precisely why it cannot be used."""
    now = datetime.now(UTC)
    digest = arguments_hash(arguments)
    result = session.execute(
        update(Approval)
        .where(
            Approval.id == approval_id,
            Approval.status == APPROVED,
            Approval.requester == principal.subject,
            Approval.server == server,
            Approval.tool == tool,
            Approval.arguments_hash == digest,
            Approval.expires_at > now,
        )
        .values(status=CONSUMED, consumed_at=now)
        .execution_options(synchronize_session=False)
    )
    approval = session.get(Approval, approval_id)
    if result.rowcount == 1 and approval is not None:  # type: ignore[attr-defined]
        session.refresh(approval)
        return approval
    raise Conflict(_why_not(approval, approval_id, principal, server, tool, digest, now), field="approval_id")


def _why_not(
    approval: Approval | None,
    approval_id: str,
    principal: Principal,
    server: str,
    tool: str,
    digest: str,
    now: datetime,
) -> str:
    if approval is None:
        return f"approval {approval_id} does not exist"
    if approval.requester != principal.subject:
        return f"approval {approval_id} was requested by someone else"
    if (approval.server, approval.tool) != (server, tool):
        return f"approval {approval_id} is for {approval.server} tool {approval.tool}, not {tool}"
    if approval.arguments_hash != digest:
        return f"approval {approval_id} was granted for different arguments; request a new approval"
    if approval.status == CONSUMED:
        return f"approval {approval_id} has already been used"
    if approval.status == REJECTED:
        note = f": {approval.note}" if approval.note else ""
        return f"approval {approval_id} was rejected by {approval.decided_by}{note}"
    if approval.expires_at <= now:
        return f"approval {approval_id} expired at {approval.expires_at.isoformat()}"
    return f"approval {approval_id} is still pending; ask an approver to decide it"
