"""/v0.1: discovery, shaped like the official MCP registry's API."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request, Response

import registry.api.convertors  # noqa: F401  (registers the {name:server} path convertor)
from registry.api.deps import bearer_scheme
from registry.api.handler import respond

router = APIRouter(prefix="/v0.1", tags=["discovery"], dependencies=[Depends(bearer_scheme)])


@router.get("/servers", summary="List MCP servers (official registry API)")
async def list_servers(
    request: Request,
    search: str | None = Query(None, max_length=200, description="Substring of name, title or description"),
    limit: int = Query(30, description="Page size, 1-100"),
    cursor: str | None = Query(None, description="metadata.nextCursor of the previous page"),
    updated_since: datetime | None = Query(None, description="RFC 3339 time; includes deleted entries"),
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


@router.get("/servers/{name:server}/versions", summary="List all versions of a server")
async def list_versions(request: Request, name: str, include_deleted: bool = Query(False)) -> Response:
    discovery = request.app.state.registry.discovery
    return await respond(
        request, lambda session, caller: discovery.versions(session, caller, name, include_deleted), anonymous=True
    )


@router.get("/servers/{name:server}/versions/{version}", summary="Get one version ('latest' allowed)")
async def get_version(request: Request, name: str, version: str, include_deleted: bool = Query(False)) -> Response:
    discovery = request.app.state.registry.discovery
    return await respond(
        request,
        lambda session, caller: discovery.version(session, caller, name, version, include_deleted),
        anonymous=True,
    )
