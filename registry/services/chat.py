"""Chat sessions in the registry database: per user, readable by admins (recorded), pruned after retention."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from governance import Principal, redact
from registry.db.models import Approval, ChatMessage, ChatSession, ChatToolCall, Server
from registry.errors import Invalid, NotFound
from registry.schemas.chat import ChatMessageOut, ChatSessionOut, ChatToolCallOut
from registry.services.common import check_limit, record_event

WAITING = ("awaiting_user", "awaiting_approval")


def resolve_scope(session: Session, scope: list[str] | None) -> list[str] | None:
    """Server names or short names → the short names that prefix gateway tools (unknown names: 422)."""
    if scope is None:
        return None
    wanted = list(dict.fromkeys(s.strip() for s in scope))
    rows = session.execute(
        select(Server.name, Server.short_name).where(or_(Server.name.in_(wanted), Server.short_name.in_(wanted)))
    ).all()
    known = dict(rows) | {short: short for _, short in rows}
    unknown = [s for s in wanted if s not in known]
    if unknown:
        shown = ", ".join(repr(s[:60]) for s in unknown[:5])
        raise Invalid(f"scope names servers that do not exist: {shown}", field="scope")
    return sorted({known[s] for s in wanted})


def create_session(session: Session, actor: Principal, title: str, scope: list[str] | None) -> ChatSession:
    now = datetime.now(UTC)
    chat = ChatSession(
        id=str(uuid.uuid4()),
        owner=actor.subject,
        title=title.strip()[:200],
        scope=resolve_scope(session, scope),
        status="idle",
        created_at=now,
        updated_at=now,
    )
    session.add(chat)
    session.flush()
    return chat


def get_session(session: Session, actor: Principal, session_id: str, *, for_write: bool = False) -> ChatSession:
    """The caller's session. Another user's is 404 (its existence is not revealed); an admin may read it, and
    that reading is recorded as an admin event. Only the owner may post to it."""
    chat = session.get(ChatSession, session_id)
    if chat is None or (chat.owner != actor.subject and (for_write or not actor.is_admin)):
        raise NotFound("no such chat session", field="session_id")
    if chat.owner != actor.subject:
        record_event(session, actor, "chat.session.read", session_id, owner=chat.owner)
    return chat


def list_sessions(session: Session, actor: Principal, limit: int) -> list[ChatSessionOut]:
    limit = check_limit(limit)
    rows = session.scalars(
        select(ChatSession)
        .where(ChatSession.owner == actor.subject)
        .order_by(ChatSession.updated_at.desc(), ChatSession.id)
        .limit(limit)
    )
    return [ChatSessionOut.model_validate(r) for r in rows]


def history(session: Session, session_id: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(ChatMessage).where(ChatMessage.session_id == session_id).order_by(ChatMessage.seq))
    return [r.body for r in rows]


def messages_out(session: Session, session_id: str) -> list[ChatMessageOut]:
    rows = session.scalars(select(ChatMessage).where(ChatMessage.session_id == session_id).order_by(ChatMessage.seq))
    return [ChatMessageOut.model_validate(r) for r in rows]


def calls_out(session: Session, session_id: str) -> list[ChatToolCallOut]:
    rows = session.scalars(
        select(ChatToolCall).where(ChatToolCall.session_id == session_id).order_by(ChatToolCall.created_at)
    )
    return [ChatToolCallOut.model_validate(r) for r in rows]


def current_turn(session: Session, session_id: str) -> int:
    return int(
        session.scalar(
            select(func.coalesce(func.max(ChatToolCall.turn), 0)).where(ChatToolCall.session_id == session_id)
        )
        or 0
    )


def append(session: Session, chat: ChatSession, messages: list[dict[str, Any]]) -> None:
    seq = int(
        session.scalar(select(func.coalesce(func.max(ChatMessage.seq), 0)).where(ChatMessage.session_id == chat.id))
        or 0
    )
    now = datetime.now(UTC)
    for message in messages:
        seq += 1
        session.add(
            ChatMessage(
                session_id=chat.id, seq=seq, role=str(message.get("role", "?"))[:16], body=message, created_at=now
            )
        )
    chat.updated_at = now
    if not chat.title:
        first = next((m["content"] for m in messages if m.get("role") == "user"), None) if messages else None
        if isinstance(first, str):
            chat.title = first.strip().splitlines()[0][:80] if first.strip() else ""


def record_calls(
    session: Session, chat: ChatSession, turn: int, records: Iterable[Any], pii_keys: Iterable[str] = ()
) -> None:
    """Insert or update the tool calls of a request (`records`: agents.chat CallRecord-like objects)."""
    now = datetime.now(UTC)
    keys = list(pii_keys)
    for r in records:
        row = session.get(ChatToolCall, r.id)
        waiting = r.status in WAITING
        if row is None:
            row = ChatToolCall(
                id=r.id, session_id=chat.id, turn=turn, call_id=r.call_id[:80], tool=r.tool[:200], created_at=now
            )
            session.add(row)
        elif row.status in WAITING and not waiting:
            row.decided_at = now
        row.arguments = redact(r.arguments, keys)
        row.pending_arguments = r.arguments if waiting else None
        row.status = r.status
        row.detail = (r.detail or "")[:1000]
        row.rule = (r.rule or None) and r.rule[:200]
        row.approval_id = r.approval_id
        row.request_state = r.request_state if waiting else None
        if not waiting or row.latency_ms is None:  # a decided call keeps the latency of its run
            row.latency_ms = r.latency_ms
    chat.updated_at = now


def waiting_calls(session: Session, session_id: str) -> list[ChatToolCall]:
    return list(
        session.scalars(
            select(ChatToolCall)
            .where(ChatToolCall.session_id == session_id, ChatToolCall.status.in_(WAITING))
            .order_by(ChatToolCall.created_at)
        )
    )


def prune(session: Session, retention_days: float) -> int:
    """Delete sessions idle for longer than the retention (their messages and calls go with them)."""
    cutoff = datetime.now(UTC) - timedelta(days=retention_days)
    ids = list(session.scalars(select(ChatSession.id).where(ChatSession.updated_at < cutoff)))
    if not ids:
        return 0
    session.execute(delete(ChatToolCall).where(ChatToolCall.session_id.in_(ids)))
    session.execute(delete(ChatMessage).where(ChatMessage.session_id.in_(ids)))
    session.execute(delete(ChatSession).where(ChatSession.id.in_(ids)))
    return len(ids)


def approval_status(session: Session, subject: str, approval_id: str) -> str:
    """pending | approved | rejected | consumed | expired, for the requester's own approval (else "missing")."""
    approval = session.get(Approval, approval_id)
    if approval is None or approval.requester != subject:
        return "missing"
    if approval.status in ("pending", "approved") and approval.expires_at <= datetime.now(UTC):
        return "expired"
    return approval.status
