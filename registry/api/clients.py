"""/v1: what clients ask before calling — my catalog, and may X use Y."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from registry.api.deps import Caller, Ctx, DbSession
from registry.schemas.clients import AuthzCheckRequest, AuthzCheckResponse, CatalogOut

router = APIRouter(prefix="/v1", tags=["clients"])


@router.get("/catalog", response_model=CatalogOut, summary="Servers and tools the caller may use, with why")
def catalog(
    ctx: Ctx, session: DbSession, caller: Caller, limit: int = Query(50), cursor: str | None = Query(None)
) -> CatalogOut:
    return ctx.access.catalog(session, caller, limit, cursor)


@router.post("/authz/check", response_model=AuthzCheckResponse, summary="May this user use this server (tool)?")
def authz_check(ctx: Ctx, session: DbSession, caller: Caller, body: AuthzCheckRequest) -> AuthzCheckResponse:
    return ctx.access.check(session, caller, body)


@router.get("/me", summary="Who the registry thinks you are")
def me(caller: Caller) -> dict[str, Any]:
    return {
        "subject": caller.subject,
        "groups": sorted(caller.groups),
        "clearance": caller.clearance.value,
        "roles": sorted(r.value for r in caller.roles),
        "clientId": caller.client_id,
        "authMethod": caller.auth_method,
    }
