"""/v0.1: discovery, shaped like the official MCP registry's API."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from registry.api.convertors import ServerName
from registry.api.deps import DiscoveryRoute, bearer_scheme
from registry.api.errors import error_responses
from registry.api.handler import respond
from registry.schemas.base import Instant
from registry.services.common import MAX_LIMIT

router = APIRouter(
    prefix="/v0.1",
    tags=["discovery"],
    dependencies=[Depends(bearer_scheme)],
    route_class=DiscoveryRoute,
    responses=error_responses(401),
)


@router.get("/servers", summary="List MCP servers (official registry API)", responses=error_responses(400, 422))
async def list_servers(
    request: Request,
    search: str | None = Query(None, max_length=200, description="Substring of name, title or description"),
    limit: int = Query(30, ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}"),
    cursor: str | None = Query(None, description="metadata.nextCursor of the previous page"),
    updated_since: Instant | None = Query(None, description="RFC 3339 time; includes deleted entries"),
    version: str | None = Query(None, description="'latest' or an exact version"),
    include_deleted: bool = Query(False),
) -> Response:
    discovery = request.app.state.registry.discovery
    return await respond(
        request,
        lambda session, caller: discovery.list_servers(
            session,
            caller,
            search=search,
            limit=limit,
            cursor=cursor,
            updated_since=updated_since,
            version=version,
            include_deleted=include_deleted,
        ),
        anonymous=True,
    )


@router.get(
    "/servers/{name:server}/versions", summary="List all versions of a server", responses=error_responses(404, 422)
)
async def list_versions(request: Request, name: ServerName, include_deleted: bool = Query(False)) -> Response:
    discovery = request.app.state.registry.discovery
    return await respond(
        request, lambda session, caller: discovery.versions(session, caller, name, include_deleted), anonymous=True
    )


@router.get(
    "/servers/{name:server}/versions/{version}",
    summary="Get one version ('latest' allowed)",
    responses=error_responses(404, 422),
)
async def get_version(
    request: Request, name: ServerName, version: str, include_deleted: bool = Query(False)
) -> Response:
    discovery = request.app.state.registry.discovery
    return await respond(
        request,
        lambda session, caller: discovery.version(session, caller, name, version, include_deleted),
        anonymous=True,
    )
