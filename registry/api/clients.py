"""/v1: what clients ask before calling — my catalog, and may X use Y."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from registry.api.deps import AuthenticatedRoute, bearer_scheme
from registry.api.errors import error_responses
from registry.api.handler import respond
from registry.errors import Unauthorized
from registry.schemas.clients import AuthzCheckRequest, AuthzCheckResponse, CatalogOut, WhoAmI
from registry.services.common import MAX_LIMIT, team_names_of

router = APIRouter(
    prefix="/v1",
    tags=["clients"],
    dependencies=[Depends(bearer_scheme)],
    route_class=AuthenticatedRoute,
    responses=error_responses(401),
)


def _required(caller: Any) -> Any:
    if caller is None:  # pragma: no cover - AuthenticatedRoute authenticated the caller
        raise Unauthorized("missing bearer token")
    return caller


@router.get(
    "/catalog",
    summary="Servers and tools the caller may use, with why",
    responses={200: {"model": CatalogOut}, **error_responses(400, 422)},
)
async def catalog(
    request: Request,
    limit: int = Query(50, ge=1, le=MAX_LIMIT, description=f"Page size, 1-{MAX_LIMIT}"),
    cursor: str | None = Query(None, description="nextCursor of the previous page"),
) -> Response:
    access = request.app.state.registry.access
    return await respond(request, lambda session, caller: access.catalog(session, _required(caller), limit, cursor))


@router.post(
    "/authz/check",
    summary="May this user use this server (tool)?",
    responses={200: {"model": AuthzCheckResponse}, **error_responses(403, 404, 422)},
)
async def authz_check(request: Request, body: AuthzCheckRequest) -> Response:
    access = request.app.state.registry.access
    return await respond(request, lambda session, caller: access.check(session, _required(caller), body))


@router.get("/me", summary="Who the registry thinks you are, and the teams you belong to", response_model=WhoAmI)
async def me(request: Request) -> Response:
    def who(session: Any, caller: Any) -> WhoAmI:
        caller = _required(caller)
        return WhoAmI(
            subject=caller.subject,
            groups=sorted(caller.groups),
            clearance=caller.clearance,
            roles=sorted(r.value for r in caller.roles),
            client_id=caller.client_id,
            auth_method=caller.auth_method,
            teams=team_names_of(session, caller),
        )

    return await respond(request, who)
