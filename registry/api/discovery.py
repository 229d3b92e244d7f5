"""/v0.1: discovery, shaped like the official MCP registry's API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

import registry.api.convertors  # noqa: F401  (the {name:server} convertor)
from registry.api.deps import Ctx, DbSession, MaybeCaller

router = APIRouter(prefix="/v0.1", tags=["discovery"])


@router.get("/servers", summary="List MCP servers (official registry API)")
def list_servers(
    ctx: Ctx,
    session: DbSession,
    caller: MaybeCaller,
    search: str | None = Query(None, max_length=200, description="Substring of name, title or description"),
    limit: int = Query(30, description="Page size, 1-100"),
    cursor: str | None = Query(None, description="metadata.nextCursor of the previous page"),
    updated_since: datetime | None = Query(None, description="RFC 3339 time; includes deleted entries"),
    version: str | None = Query(None, description="'latest' or an exact version"),
    include_deleted: bool = Query(False),
) -> dict[str, Any]:
    return ctx.discovery.list_servers(
        session,
        caller,
        search=search,
        limit=limit,
        cursor=cursor,
        updated_since=updated_since,
        version=version,
        include_deleted=include_deleted,
    )


@router.get("/servers/{name:server}/versions", summary="List all versions of a server")
def list_versions(
    ctx: Ctx, session: DbSession, caller: MaybeCaller, name: str, include_deleted: bool = Query(False)
) -> dict[str, Any]:
    return ctx.discovery.versions(session, caller, name, include_deleted)


@router.get("/servers/{name:server}/versions/{version}", summary="Get one version ('latest' allowed)")
def get_version(
    ctx: Ctx, session: DbSession, caller: MaybeCaller, name: str, version: str, include_deleted: bool = Query(False)
) -> dict[str, Any]:
    return ctx.discovery.version(session, caller, name, version, include_deleted)
