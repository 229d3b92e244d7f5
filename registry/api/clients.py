"""/v1: what clients ask before calling — my catalog, and may X use Y."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from registry.api.deps import Caller, bearer_scheme
from registry.api.handler import respond
from registry.errors import Unauthorized
from registry.schemas.clients import AuthzCheckRequest, AuthzCheckResponse, CatalogOut

router = APIRouter(prefix="/v1", tags=["clients"], dependencies=[Depends(bearer_scheme)])


def _required(caller: Any) -> Any:
    if caller is None:  # pragma: no cover - respond() authenticates unless anonymous=True
        raise Unauthorized("missing bearer token")
    return caller


@router.get(
    "/catalog",
    summary="Servers and tools the caller may use, with why",
    responses={200: {"model": CatalogOut}},
)
async def catalog(request: Request, limit: int = Query(50), cursor: str | None = Query(None)) -> Response:
    access = request.app.state.registry.access
    return await respond(request, lambda session, caller: access.catalog(session, _required(caller), limit, cursor))


@router.post(
    "/authz/check",
    summary="May this user use this server (tool)?",
    responses={200: {"model": AuthzCheckResponse}},
)
async def authz_check(request: Request, body: AuthzCheckRequest) -> Response:
    access = request.app.state.registry.access
    return await respond(request, lambda session, caller: access.check(session, _required(caller), body))


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
