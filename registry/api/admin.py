"""/admin/v1: teams, servers, versions, reviews, policies, keys, import/export, change log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query, Response, status
from sqlalchemy import select

from registry.api.convertors import ServerName
from registry.api.deps import AuthenticatedRoute, Caller, DbSession, Requirements
from registry.api.errors import error_responses
from registry.db.models import AdminEvent
from registry.errors import NotFound
from registry.schemas.admin import (
    AdminEventOut,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    PolicyOut,
    PolicyPut,
    ReviewCreate,
    ReviewQueueItem,
    ServerCreate,
    ServerOut,
    ServerUpdate,
    StatusChange,
    TeamCreate,
    TeamOut,
    TeamUpdate,
    VersionCreate,
    VersionDiff,
    VersionOut,
    VersionSummary,
    VersionUpdate,
)
from registry.schemas.base import JsonObject, Page
from registry.services import keys, policies, reviews, servers, teams, transfer, versions
from registry.services.common import (
    MAX_LIMIT,
    check_limit,
    decode_cursor,
    page_of,
    require_admin,
    visible_server_or_404,
)

router = APIRouter(prefix="/admin/v1", tags=["admin"], route_class=AuthenticatedRoute, responses=error_responses(401))

Limit = Query(50, ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}")
Cursor = Query(None, description="nextCursor of the previous page")


# --- teams -----------------------------------------------------------------------------------


@router.get("/teams", response_model=Page[TeamOut], responses=error_responses(400, 422))
def list_teams(session: DbSession, caller: Caller, limit: int = Limit, cursor: str | None = Cursor) -> Page[TeamOut]:
    return teams.list_teams(session, limit, cursor)


@router.post(
    "/teams", response_model=TeamOut, status_code=status.HTTP_201_CREATED, responses=error_responses(403, 409, 422)
)
def create_team(session: DbSession, caller: Caller, body: TeamCreate) -> TeamOut:
    return teams.create_team(session, caller, body)


@router.get("/teams/{name}", response_model=TeamOut, responses=error_responses(404, 422))
def get_team(session: DbSession, caller: Caller, name: str) -> TeamOut:
    return teams.read_team(session, name)


@router.patch("/teams/{name}", response_model=TeamOut, responses=error_responses(403, 404, 409, 422))
def update_team(session: DbSession, caller: Caller, name: str, body: TeamUpdate) -> TeamOut:
    return teams.update_team(session, caller, name, body)


@router.delete("/teams/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403, 404, 409, 422))
def delete_team(session: DbSession, caller: Caller, name: str) -> Response:
    teams.delete_team(session, caller, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# --- servers ---------------------------------------------------------------------------------


@router.get("/servers", response_model=Page[ServerOut], responses=error_responses(400, 404, 422))
def list_servers(
    session: DbSession,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    team: str | None = Query(None, description="Only servers owned by this team"),
) -> Page[ServerOut]:
    return servers.list_servers(session, caller, limit, cursor, team)


@router.post(
    "/servers",
    response_model=ServerOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
def create_server(session: DbSession, caller: Caller, body: ServerCreate) -> ServerOut:
    return servers.create_server(session, caller, body)


@router.get(
    "/servers/{name:server}/versions", response_model=Page[VersionSummary], responses=error_responses(400, 404, 422)
)
def list_versions(
    session: DbSession, caller: Caller, name: ServerName, limit: int = Limit, cursor: str | None = Cursor
) -> Page[VersionSummary]:
    return versions.list_versions(session, caller, name, limit, cursor)


@router.post(
    "/servers/{name:server}/versions",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
def create_version(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, body: VersionCreate
) -> VersionOut:
    return versions.create_version(session, caller, name, body, requirements)


@router.get("/servers/{name:server}/versions/{version}", response_model=VersionOut, responses=error_responses(404, 422))
def get_version(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, version: str
) -> VersionOut:
    return versions.read_version(session, caller, name, version, requirements)


@router.get(
    "/servers/{name:server}/versions/{version}/diff",
    response_model=VersionDiff,
    summary="Each tool, prompt, resource and resource template against the previous approved version, with "
    "poisoning-lint findings",
    responses=error_responses(404, 422),
)
def diff_version(session: DbSession, caller: Caller, name: ServerName, version: str) -> VersionDiff:
    return reviews.version_diff(session, caller, name, version)


@router.get(
    "/reviews",
    response_model=list[ReviewQueueItem],
    summary="Versions in review, with the reviews they still need and whether you may review them",
    responses=error_responses(403),
)
def review_queue(session: DbSession, caller: Caller, requirements: Requirements) -> list[ReviewQueueItem]:
    return reviews.review_queue(session, caller, requirements)


@router.patch(
    "/servers/{name:server}/versions/{version}",
    response_model=VersionOut,
    responses=error_responses(403, 404, 409, 422),
)
def update_version(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, version: str, body: VersionUpdate
) -> VersionOut:
    return versions.update_version(session, caller, name, version, body, requirements)


@router.post(
    "/servers/{name:server}/versions/{version}/status",
    response_model=VersionOut,
    responses=error_responses(403, 404, 409, 422),
)
def change_status(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, version: str, body: StatusChange
) -> VersionOut:
    return versions.change_status(session, caller, name, version, body.status, body.reason, requirements)


@router.post(
    "/servers/{name:server}/versions/{version}/reviews",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(403, 404, 409, 422),
)
def add_review(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, version: str, body: ReviewCreate
) -> VersionOut:
    return versions.add_review(session, caller, name, version, body, requirements)


@router.get(
    "/servers/{name:server}/export",
    summary="server.json of a version (default: latest)",
    responses=error_responses(404, 422),
)
def export_server(
    session: DbSession, caller: Caller, name: ServerName, version: str | None = Query(None)
) -> dict[str, Any]:
    visible_server_or_404(session, caller, name)
    return transfer.export_server_json(session, name, version)


@router.get(
    "/servers/{name:server}/policies",
    response_model=list[PolicyOut],
    summary="The server's policies: server-wide, per tool, per prompt (`prompt:NAME`), per resource (`resource:NAME`)",
    responses=error_responses(404, 422),
)
def list_policies(session: DbSession, caller: Caller, name: ServerName) -> list[PolicyOut]:
    return policies.list_policies(session, caller, name)


@router.put(
    "/servers/{name:server}/policy",
    response_model=PolicyOut,
    summary="Server-wide policy",
    responses=error_responses(403, 404, 422),
)
def put_server_policy(session: DbSession, caller: Caller, name: ServerName, body: PolicyPut) -> PolicyOut:
    return policies.put_policy(session, caller, name, None, body)


@router.delete(
    "/servers/{name:server}/policy", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(403, 404, 422)
)
def delete_server_policy(session: DbSession, caller: Caller, name: ServerName) -> Response:
    policies.delete_policy(session, caller, name, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/servers/{name:server}/tools/{tool}/policy",
    response_model=PolicyOut,
    summary="Per-tool policy",
    responses=error_responses(403, 404, 422),
)
def put_tool_policy(session: DbSession, caller: Caller, name: ServerName, tool: str, body: PolicyPut) -> PolicyOut:
    return policies.put_policy(session, caller, name, tool, body)


@router.delete(
    "/servers/{name:server}/tools/{tool}/policy",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(403, 404, 422),
)
def delete_tool_policy(session: DbSession, caller: Caller, name: ServerName, tool: str) -> Response:
    policies.delete_policy(session, caller, name, tool)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


ITEM_POLICY = (
    "Stored like a tool's policy under the key `{kind}:NAME` (PolicyOut `tool`; `item` names it) and evaluated "
    "by the gateway when a caller lists or reads it. `annotations` describe tools: sent here, 422. {also}"
)
PromptName = Path(description="The prompt's name (the tool-name rule: 1-64 of [a-zA-Z0-9_-])")
ResourceName = Path(
    description="The resource's or resource template's name (one namespace; the tool-name rule: 1-64 of [a-zA-Z0-9_-])"
)


@router.put(
    "/servers/{name:server}/prompts/{prompt}/policy",
    response_model=PolicyOut,
    summary="Per-prompt policy (key `prompt:NAME`)",
    description=ITEM_POLICY.format(kind="prompt", also=""),
    responses=error_responses(403, 404, 422),
)
def put_prompt_policy(
    session: DbSession, caller: Caller, name: ServerName, body: PolicyPut, prompt: str = PromptName
) -> PolicyOut:
    return policies.put_policy(session, caller, name, prompt, body, kind="prompt")


@router.delete(
    "/servers/{name:server}/prompts/{prompt}/policy",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a per-prompt policy",
    responses=error_responses(403, 404, 422),
)
def delete_prompt_policy(session: DbSession, caller: Caller, name: ServerName, prompt: str = PromptName) -> Response:
    policies.delete_policy(session, caller, name, prompt, kind="prompt")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/servers/{name:server}/resources/{resource}/policy",
    response_model=PolicyOut,
    summary="Per-resource (or resource template) policy (key `resource:NAME`)",
    description=ITEM_POLICY.format(
        kind="resource", also="A resource and a resource template never share a name, so one key names either."
    ),
    responses=error_responses(403, 404, 422),
)
def put_resource_policy(
    session: DbSession, caller: Caller, name: ServerName, body: PolicyPut, resource: str = ResourceName
) -> PolicyOut:
    return policies.put_policy(session, caller, name, resource, body, kind="resource")


@router.delete(
    "/servers/{name:server}/resources/{resource}/policy",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a per-resource (or resource template) policy",
    responses=error_responses(403, 404, 422),
)
def delete_resource_policy(
    session: DbSession, caller: Caller, name: ServerName, resource: str = ResourceName
) -> Response:
    policies.delete_policy(session, caller, name, resource, kind="resource")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/servers/{name:server}", response_model=ServerOut, responses=error_responses(404, 422))
def get_server(session: DbSession, caller: Caller, name: ServerName) -> ServerOut:
    return servers.read_server(session, caller, name)


@router.patch("/servers/{name:server}", response_model=ServerOut, responses=error_responses(403, 404, 422))
def update_server(
    session: DbSession, caller: Caller, requirements: Requirements, name: ServerName, body: ServerUpdate
) -> ServerOut:
    return servers.update_server(session, caller, name, body, requirements)


@router.post(
    "/import",
    response_model=VersionOut,
    status_code=status.HTTP_201_CREATED,
    summary="Import a server.json",
    responses=error_responses(403, 404, 409, 422),
)
def import_server(
    session: DbSession,
    caller: Caller,
    requirements: Requirements,
    body: JsonObject = Body(..., description="A server.json document (schema 2025-12-11)"),
    team: str | None = Query(None, description="Owning team, when the server is new"),
    submit: bool = Query(False, description="Submit the new version for review"),
) -> VersionOut:
    return transfer.import_server_json(session, caller, body, requirements, team=team, submit=submit)


# --- API keys --------------------------------------------------------------------------------


@router.get("/keys", response_model=Page[ApiKeyOut], responses=error_responses(400, 403, 422))
def list_keys(session: DbSession, caller: Caller, limit: int = Limit, cursor: str | None = Cursor) -> Page[ApiKeyOut]:
    return keys.list_keys(session, caller, limit, cursor)


@router.post(
    "/keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED, responses=error_responses(403, 409, 422)
)
def create_key(session: DbSession, caller: Caller, body: ApiKeyCreate) -> ApiKeyCreated:
    return keys.create_key(session, caller, body)


@router.delete(
    "/keys/{name}", response_model=ApiKeyOut, summary="Revoke a key", responses=error_responses(403, 404, 422)
)
def revoke_key(session: DbSession, caller: Caller, name: str) -> ApiKeyOut:
    return keys.revoke_key(session, caller, name)


# --- change log ------------------------------------------------------------------------------


@router.get(
    "/events",
    response_model=Page[AdminEventOut],
    summary="Administrative change log (newest first)",
    responses=error_responses(400, 403, 404, 422),
)
def list_events(
    session: DbSession,
    caller: Caller,
    limit: int = Limit,
    cursor: str | None = Cursor,
    server: str | None = Query(
        None,
        min_length=1,
        max_length=200,
        description="Only this server's changes (owners and reviewers may read these)",
    ),
) -> Page[AdminEventOut]:
    limit = check_limit(limit)
    stmt = select(AdminEvent).order_by(AdminEvent.id.desc()).limit(limit + 1)
    if server is None:
        require_admin(caller, "read the whole change log")
    else:
        try:
            name = visible_server_or_404(session, caller, server).name
        except NotFound as exc:
            raise NotFound(exc.message, field="server") from None
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(  # the server, its versions (name@version) and its tools' policies (name/tool)
            (AdminEvent.target == name)
            | AdminEvent.target.like(f"{escaped}@%", escape="\\")
            | AdminEvent.target.like(f"{escaped}/%", escape="\\")
        )
    after = decode_cursor(cursor, int)
    if after:
        stmt = stmt.where(AdminEvent.id < after[0])
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda e: [e.id])
    return Page[AdminEventOut](
        items=[AdminEventOut.model_validate(e) for e in rows],
        next_cursor=next_cursor,
    )
