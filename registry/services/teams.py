"""Teams: who owns servers and answers for them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import Principal
from registry.db.models import Server, ServerOwnership, Team
from registry.errors import Conflict, Forbidden
from registry.schemas.admin import TeamCreate, TeamOut, TeamUpdate
from registry.schemas.base import Page
from registry.services.common import (
    check_limit,
    decode_cursor,
    get_team,
    page_of,
    record_event,
    require_admin,
    sync_memberships,
    team_facts,
)


def create_team(session: Session, actor: Principal, body: TeamCreate) -> TeamOut:
    require_admin(actor, "create teams")
    team = Team(
        name=body.name,
        display_name=body.display_name,
        support_channel=body.support_channel,
        members=body.members,
        groups=body.groups,
    )
    sync_memberships(team)
    session.add(team)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"team {body.name!r} already exists", field="name") from None
    record_event(session, actor, "team.create", body.name, **body.model_dump(mode="json"))
    return TeamOut.model_validate(team)


def update_team(session: Session, actor: Principal, name: str, body: TeamUpdate) -> TeamOut:
    team = get_team(session, name, field="name")
    if not (actor.is_admin or team_facts(team).has_member(actor)):
        raise Forbidden(f"only admins or members of team {name} may change it")
    changes = body.model_dump(exclude_unset=True, mode="json")
    for key, value in changes.items():
        if key == "support_channel" and value is None:
            raise Conflict("supportChannel cannot be removed", field="supportChannel")
        setattr(team, key, value)
    sync_memberships(team)
    record_event(session, actor, "team.update", name, **changes)
    return TeamOut.model_validate(team)


def delete_team(session: Session, actor: Principal, name: str) -> None:
    require_admin(actor, "delete teams")
    team = get_team(session, name, field="name")
    owned = session.scalar(select(func.count()).select_from(Server).where(Server.team_id == team.id))
    if owned:
        raise Conflict(f"team {name!r} still owns {owned} server(s); move or delete them first", field="name")
    owned_before = session.scalar(
        select(func.count()).select_from(ServerOwnership).where(ServerOwnership.team_id == team.id)
    )
    if owned_before:
        # Separation of duties reads every past owner of a server: that history is kept, so is the team.
        raise Conflict(
            f"team {name!r} owned servers before (ownership history of {owned_before} server(s)); it is kept",
            field="name",
        )
    session.delete(team)
    record_event(session, actor, "team.delete", name)


def read_team(session: Session, name: str) -> TeamOut:
    return TeamOut.model_validate(get_team(session, name, field="name"))


def list_teams(session: Session, limit: int, cursor: str | None) -> Page[TeamOut]:
    limit = check_limit(limit)
    stmt = select(Team).order_by(Team.name).limit(limit + 1)
    after = decode_cursor(cursor, str)
    if after:
        stmt = stmt.where(Team.name > after[0])
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda t: [t.name])
    return Page[TeamOut](
        items=[TeamOut.model_validate(t) for t in rows],
        next_cursor=next_cursor,
    )
