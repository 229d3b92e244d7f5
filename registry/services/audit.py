"""Reading the gateway's audit log: filters, CSV export, and the time-saved report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from governance import Principal
from registry.db.models import AuditEvent, Server, Team
from registry.errors import Forbidden
from registry.schemas.admin import AuditEventOut, TimeSavedRow
from registry.schemas.base import Page
from registry.services.common import check_limit, decode_cursor, encode_cursor, page_of, team_ids_of

CSV_COLUMNS = [
    "id",
    "at",
    "kind",
    "subject",
    "groups",
    "client_id",
    "origin_client_id",
    "server",
    "tool",
    "arguments_hash",
    "decision",
    "rule",
    "outcome",
    "error",
    "latency_ms",
    "result_size",
    "approval_id",
    "minutes_saved",
    "protocol_version",
    "replica",
    "trace_id",
]


@dataclass(frozen=True)
class AuditFilter:
    subject: str | None = None
    server: str | None = None
    tool: str | None = None
    kind: str | None = None
    outcome: str | None = None
    decision: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _scoped(session: Session, actor: Principal, stmt: Select[Any], f: AuditFilter) -> Select[Any]:
    if not actor.is_reviewer:
        teams = team_ids_of(session, actor)
        if not teams:
            raise Forbidden("only admins, reviewers or server owners may read the audit log")
        stmt = stmt.where(AuditEvent.server.in_(select(Server.name).where(Server.team_id.in_(teams))))
    for column, value in (
        (AuditEvent.subject, f.subject),
        (AuditEvent.server, f.server),
        (AuditEvent.tool, f.tool),
        (AuditEvent.kind, f.kind),
        (AuditEvent.outcome, f.outcome),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if f.decision is not None:
        stmt = stmt.where(AuditEvent.decision.startswith(f.decision, autoescape=True))
    if f.since is not None:
        stmt = stmt.where(AuditEvent.at >= f.since)
    if f.until is not None:
        stmt = stmt.where(AuditEvent.at < f.until)
    return stmt


def query(session: Session, actor: Principal, f: AuditFilter, limit: int, cursor: str | None) -> Page[AuditEventOut]:
    limit = check_limit(limit)
    stmt = _scoped(session, actor, select(AuditEvent), f).order_by(AuditEvent.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor, int)
    if after:
        stmt = stmt.where(AuditEvent.id < after[0])
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda e: [e.id])
    return Page[AuditEventOut](
        items=[AuditEventOut.model_validate(e) for e in rows],
        next_cursor=next_cursor,
    )


def export_csv(session: Session, actor: Principal, f: AuditFilter, batch: int = 1000) -> Iterator[str]:
    """CSV lines, oldest first, read in id-ordered batches so exports of any size stream."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    last = 0
    while True:
        stmt = _scoped(session, actor, select(AuditEvent), f).where(AuditEvent.id > last).order_by(AuditEvent.id)
        rows = list(session.scalars(stmt.limit(batch)))
        if not rows:
            return
        buffer.seek(0)
        buffer.truncate()
        for e in rows:
            writer.writerow(
                [
                    e.id,
                    e.at.isoformat(),
                    e.kind,
                    e.subject,
                    " ".join(e.groups or []),
                    e.client_id or "",
                    e.origin_client_id or "",
                    e.server or "",
                    e.tool or "",
                    e.arguments_hash or "",
                    e.decision,
                    e.rule or "",
                    e.outcome,
                    e.error or "",
                    f"{e.latency_ms:.3f}",
                    e.result_size,
                    e.approval_id or "",
                    e.minutes_saved,
                    e.protocol_version or "",
                    e.replica or "",
                    e.trace_id or "",
                ]
            )
        last = rows[-1].id
        yield buffer.getvalue()


def time_saved(
    session: Session,
    actor: Principal,
    since: datetime | None,
    until: datetime | None,
    by: Literal["month", "week"] = "month",
) -> list[TimeSavedRow]:
    """Minutes saved by successful calls, per month (or ISO week), team and tool (owners' own estimates)."""
    # Grouped by day in SQL, folded into periods here: ISO weeks are spelled differently by each database.
    if session.get_bind().dialect.name == "postgresql":
        day = func.to_char(AuditEvent.at, "YYYY-MM-DD")
    else:
        day = func.strftime("%Y-%m-%d", AuditEvent.at)
    stmt = (
        select(
            day.label("day"),
            Team.name.label("team"),
            AuditEvent.server,
            AuditEvent.tool,
            func.count().label("calls"),
            func.coalesce(func.sum(AuditEvent.minutes_saved), 0.0).label("minutes"),
        )
        .join(Server, Server.name == AuditEvent.server)
        .join(Team, Team.id == Server.team_id)
        .where(AuditEvent.kind == "call", AuditEvent.outcome == "ok")
        .group_by(day, Team.name, AuditEvent.server, AuditEvent.tool)
    )
    stmt = _scoped(session, actor, stmt, AuditFilter(since=since, until=until))
    totals: dict[tuple[str, str | None, str, str, str], list[float]] = {}
    for r in session.execute(stmt):
        month, week = _period(r.day, by)
        total = totals.setdefault((month, week, r.team, r.server, r.tool), [0, 0.0])
        total[0] += r.calls
        total[1] += float(r.minutes)
    return [
        TimeSavedRow(month=month, week=week, team=team, server=server, tool=tool, calls=int(calls), minutes_saved=mins)
        for (month, week, team, server, tool), (calls, mins) in sorted(totals.items(), key=lambda kv: _order(kv[0]))
    ]


def _period(day: str, by: str) -> tuple[str, str | None]:
    if by == "month":
        return day[:7], None
    start = date.fromisoformat(day)
    start -= timedelta(days=start.weekday())
    year, week, _ = start.isocalendar()
    return start.strftime("%Y-%m"), f"{year}-W{week:02d}"


def _order(key: tuple[str, str | None, str, str, str]) -> tuple[str, str, str, str, str]:
    month, week, team, server, tool = key
    return (week or month, month, team, server, tool)


__all__ = ["CSV_COLUMNS", "AuditFilter", "decode_cursor", "encode_cursor", "export_csv", "query", "time_saved"]
