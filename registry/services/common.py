"""Helpers shared by the registry services: cursors, lookups, permissions, change log."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import Principal, TeamFacts
from registry.db.models import AdminEvent, Server, ServerVersion, Team, TeamMember
from registry.errors import BadRequest, Forbidden, NotFound

MAX_LIMIT = 100


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, *kinds: type) -> list[Any] | None:
    """The values of a cursor this API issued, each of the kind given (str, int or datetime); anything else —
    hand-made, truncated, a number where a name was — is a 400 naming the cursor, never a failed query."""
    if not cursor:
        return None
    foreign = BadRequest("cursor is not one this API issued", field="cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise foreign from None
    if not isinstance(values, list) or len(values) != len(kinds):
        raise foreign
    out: list[Any] = []
    for value, kind in zip(values, kinds, strict=True):
        if (kind is int and _is_int64(value)) or (kind is str and _is_storable(value)):
            out.append(value)
        elif kind is datetime and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise foreign from None
            if moment.tzinfo is None:
                raise foreign
            out.append(moment)
        else:
            raise foreign
    return out


def _is_int64(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _is_storable(value: object) -> bool:
    """Text every backend can compare: bounded, no NUL, no unpaired surrogate."""
    if not isinstance(value, str) or len(value) > 400 or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


RowT = TypeVar("RowT")


def page_of(rows: list[RowT], limit: int, cursor_of: Callable[[RowT], list[Any]]) -> tuple[list[RowT], str | None]:
    """Trim a keyset query read with ``limit + 1`` rows to the page and its next cursor."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(cursor_of(rows[-1]))


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    return limit


def record_event(session: Session, actor: Principal, action: str, target: str, **details: Any) -> None:
    session.add(AdminEvent(actor=actor.subject, action=action, target=target, details=details))


def team_facts(team: Team) -> TeamFacts:
    return TeamFacts(name=team.name, members=frozenset(team.members or []), groups=frozenset(team.groups or []))


def membership_keys(principal: Principal) -> list[str]:
    return [f"user:{principal.subject}", *(f"group:{g}" for g in sorted(principal.groups))]


def team_ids_of(session: Session, principal: Principal) -> set[int]:
    """Teams the principal belongs to, by user or by group (one indexed query)."""
    keys = membership_keys(principal)
    return set(session.scalars(select(TeamMember.team_id).where(TeamMember.principal.in_(keys)).distinct()))


def team_names_of(session: Session, principal: Principal) -> list[str]:
    """Names of the teams the principal belongs to (server ownership follows from these)."""
    ids = team_ids_of(session, principal)
    return sorted(session.scalars(select(Team.name).where(Team.id.in_(ids)))) if ids else []


def sync_memberships(team: Team) -> None:
    """Keep the team_members index equal to the team's members and groups."""
    wanted = {f"user:{m}" for m in team.members or []} | {f"group:{g}" for g in team.groups or []}
    current = {m.principal: m for m in team.memberships}
    for key in current.keys() - wanted:
        team.memberships.remove(current[key])
    for key in sorted(wanted - current.keys()):
        team.memberships.append(TeamMember(principal=key))


def get_team(session: Session, name: str, *, field: str = "team") -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise NotFound(f"team {name!r} does not exist", field=field)
    return team


def get_server(session: Session, name: str, *, lock: bool = False) -> Server:
    stmt = select(Server).where(Server.name == name)
    if lock:
        # Serialises lifecycle changes of one server's versions across replicas (PostgreSQL).
        stmt = stmt.with_for_update(of=Server)
    server = session.scalar(stmt)
    if server is None:
        raise NotFound(f"server {name!r} does not exist", field="name")
    return server


def get_version(session: Session, server: Server, version: str) -> ServerVersion:
    row = session.scalar(
        select(ServerVersion).where(ServerVersion.server_id == server.id, ServerVersion.version == version)
    )
    if row is None:
        raise NotFound(f"server {server.name!r} has no version {version!r}", field="version")
    return row


def is_owner(principal: Principal, server: Server) -> bool:
    return team_facts(server.team).has_member(principal)


def can_see_unpublished(principal: Principal, server: Server) -> bool:
    return principal.is_reviewer or is_owner(principal, server)


def require_owner_or_admin(principal: Principal, server: Server, action: str) -> None:
    if not (principal.is_admin or is_owner(principal, server)):
        raise Forbidden(f"only admins or members of team {server.team.name} may {action}")


def require_reviewer(principal: Principal, action: str) -> None:
    if not principal.is_reviewer:
        raise Forbidden(f"only reviewers or admins may {action}")


def require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"only admins may {action}")


def visible_server_or_404(session: Session, principal: Principal, name: str) -> Server:
    """Admin-API read access: admins, reviewers and owners; others get 404, not a hint it exists."""
    server = get_server(session, name)
    if not can_see_unpublished(principal, server):
        raise NotFound(f"server {name!r} does not exist", field="name")
    return server
