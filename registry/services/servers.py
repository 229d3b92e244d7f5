"""Servers: what exists, who owns it, how to reach it, how sensitive it is."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import PUBLISHED, Classification, Principal, ReviewRequirements, VersionStatus
from registry.db.models import Server, ServerVersion
from registry.errors import Conflict, Forbidden, Invalid
from registry.schemas.admin import Health, ServerCreate, ServerOut, ServerUpdate
from registry.schemas.base import Page
from registry.schemas.names import default_short_name, namespaced_tool_name
from registry.services.common import (
    check_limit,
    decode_cursor,
    get_team,
    is_owner,
    page_of,
    record_event,
    team_ids_of,
    visible_server_or_404,
)
from registry.services.lifecycle import reconcile, record_owner

# Changing these alters who may use a server or what reviews it needs: reviewers' business.
GOVERNED_FIELDS = {"team", "environment", "classification", "allowed_groups"}


def newest_versions(session: Session, server_ids: list[int]) -> dict[int, tuple[str, str]]:
    """Each server's highest version (any status) and its status: what its owners are working on."""
    newest: dict[int, tuple[str, str, str]] = {}
    rows = session.execute(
        select(ServerVersion.server_id, ServerVersion.version_key, ServerVersion.version, ServerVersion.status).where(
            ServerVersion.server_id.in_(server_ids)
        )
    )
    for server_id, key, version, status in rows:
        if server_id not in newest or key > newest[server_id][0]:
            newest[server_id] = (key, version, status)
    return {server_id: (version, status) for server_id, (_, version, status) in newest.items()}


def server_out(server: Server, latest_version: str | None, newest: tuple[str, str] | None = None) -> ServerOut:
    return ServerOut(
        name=server.name,
        short_name=server.short_name,
        title=server.title,
        description=server.description,
        team=server.team.name,
        support_channel=server.support_channel,
        effective_support_channel=server.support_channel or server.team.support_channel,
        environment=server.environment,
        transport=server.transport,
        endpoint=server.endpoint,
        identity=server.identity,
        classification=server.classification,
        allowed_groups=server.allowed_groups or [],
        website_url=server.website_url,
        repository=server.repository,
        latest_version=latest_version,
        newest_version=newest[0] if newest else None,
        newest_status=VersionStatus(newest[1]) if newest else None,
        health=Health(
            status=server.health_status,
            latency_ms=server.health_latency_ms,
            checked_at=server.health_checked_at,
            error=server.health_error,
        ),
        created_at=server.created_at,
        updated_at=server.updated_at,
    )


def latest_published(session: Session, server_id: int) -> ServerVersion | None:
    return session.scalar(
        select(ServerVersion).where(ServerVersion.server_id == server_id, ServerVersion.is_latest.is_(True))
    )


def _check_transport(transport: str, endpoint: str | None) -> None:
    if transport == "builtin" and endpoint:
        raise Invalid("a builtin server runs in-process and takes no endpoint", field="endpoint")
    if transport != "builtin" and not endpoint:
        raise Invalid(f"a {transport} server needs an endpoint URL", field="endpoint")


def create_server(session: Session, actor: Principal, body: ServerCreate) -> ServerOut:
    team = get_team(session, body.team)
    if not (actor.is_admin or team.id in team_ids_of(session, actor)):
        raise Forbidden(f"only admins or members of team {team.name} may register servers for it")
    _check_transport(body.transport, body.endpoint)
    short = body.short_name or default_short_name(body.name)
    server = Server(
        name=body.name,
        short_name=short,
        title=body.title,
        description=body.description,
        team=team,
        support_channel=body.support_channel,
        environment=body.environment.value,
        transport=body.transport,
        endpoint=body.endpoint,
        identity=body.identity,
        classification=body.classification.value,
        allowed_groups=body.allowed_groups,
        website_url=body.website_url,
        repository=body.repository,
    )
    session.add(server)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        taken = session.scalar(select(Server.name).where(Server.name == body.name))
        if taken:
            raise Conflict(f"server {body.name!r} already exists", field="name") from None
        raise Conflict(
            f"short name {short!r} is taken by another server; tool names would collide — choose shortName",
            field="shortName",
        ) from None
    record_event(session, actor, "server.create", body.name, **body.model_dump(mode="json"))
    return server_out(server, None)


def update_server(
    session: Session, actor: Principal, name: str, body: ServerUpdate, requirements: ReviewRequirements
) -> ServerOut:
    server = visible_server_or_404(session, actor, name)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, mode="json")
    governed = GOVERNED_FIELDS & changes.keys()
    if governed and not actor.is_reviewer:
        raise Forbidden(f"only reviewers or admins may change {', '.join(sorted(governed))}")
    if not governed and not (actor.is_admin or is_owner(actor, server)):
        raise Forbidden(f"only admins or members of team {server.team.name} may change this server")
    for required in ("description", "environment", "classification", "team", "allowed_groups", "identity"):
        if required in changes and changes[required] is None:
            raise Invalid(f"{required} cannot be removed", field=required)
    previous_team, previous_classification = server.team, Classification(server.classification)
    if "team" in changes:
        server.team = get_team(session, changes.pop("team"))
    if "endpoint" in changes:
        _check_transport(server.transport, changes["endpoint"])
    for key, value in changes.items():
        setattr(server, key, value)
    session.flush()
    owner_changed = None
    if server.team.id != previous_team.id:
        record_owner(session, server, previous_team, actor, datetime.now(UTC))
        owner_changed = f"owning team changed from {previous_team.name} to {server.team.name} by {actor.subject}"
    returned: list[str] = []
    if owner_changed or Classification(server.classification).rank > previous_classification.rank:
        returned = reconcile(session, actor, server, requirements, owner_changed=owner_changed)
    record_event(session, actor, "server.update", name, **body.model_dump(exclude_unset=True, mode="json"),
                 returned_to_review=returned)  # fmt: skip
    latest = latest_published(session, server.id)
    return server_out(server, latest.version if latest else None, newest_versions(session, [server.id]).get(server.id))


def read_server(session: Session, actor: Principal, name: str) -> ServerOut:
    server = visible_server_or_404(session, actor, name)
    latest = latest_published(session, server.id)
    return server_out(server, latest.version if latest else None, newest_versions(session, [server.id]).get(server.id))


def list_servers(
    session: Session, actor: Principal, limit: int, cursor: str | None, team: str | None = None
) -> Page[ServerOut]:
    limit = check_limit(limit)
    stmt = select(Server).order_by(Server.name).limit(limit + 1)
    if not actor.is_reviewer:
        stmt = stmt.where(Server.team_id.in_(team_ids_of(session, actor)))
    if team:
        stmt = stmt.where(Server.team_id == get_team(session, team).id)
    after = decode_cursor(cursor, str)
    if after:
        stmt = stmt.where(Server.name > after[0])
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda s: [s.name])
    latest: dict[int, str] = dict(
        session.execute(
            select(ServerVersion.server_id, ServerVersion.version).where(
                ServerVersion.server_id.in_([s.id for s in rows]), ServerVersion.is_latest.is_(True)
            )
        ).all()
    )
    newest = newest_versions(session, [s.id for s in rows])
    return Page[ServerOut](
        items=[server_out(s, latest.get(s.id), newest.get(s.id)) for s in rows],
        next_cursor=next_cursor,
    )


def check_tool_names_fit(server: Server, tool_names: list[str], what: str = "tools") -> None:
    """Namespaced names (`short__tool`) must stay valid function-calling names (≤ 64 chars); prompts and
    resources are namespaced the same way."""
    noun = {"tools": "tool", "prompts": "prompt", "resources": "resource"}.get(what, "resource template")
    for index, tool in enumerate(tool_names):
        full = namespaced_tool_name(server.short_name, tool)
        if len(full) > 64:
            raise Invalid(
                f"{noun} name {tool!r} is too long once namespaced as {full!r} (max 64 characters)",
                field=f"{what}[{index}].name",
            )


def published_statuses() -> list[str]:
    return [s.value for s in PUBLISHED]
