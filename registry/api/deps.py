"""FastAPI dependencies: context, session, caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from governance import Principal, ReviewRequirements
from registry.auth import authenticate
from registry.context import RegistryContext

# Declares the bearer scheme in OpenAPI (the "Authorize" button in /docs); we validate ourselves.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT or a Bastion API key (bst_...)")
_bearer = bearer_scheme


async def get_context(request: Request) -> RegistryContext:
    ctx: RegistryContext = request.app.state.registry
    return ctx


Ctx = Annotated[RegistryContext, Depends(get_context)]


def get_session(ctx: Ctx) -> Iterator[Session]:
    with ctx.db.transaction() as session:
        yield session


# scope="function": the commit happens before the response is sent, so a client never sees
# success for a write that then failed to commit.
DbSession = Annotated[Session, Depends(get_session, scope="function")]


def get_principal(
    request: Request,
    ctx: Ctx,
    session: DbSession,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    return authenticate(ctx.settings, ctx.verifier, session, request.headers.get("authorization"), ctx.facts)


def get_optional_principal(
    request: Request,
    ctx: Ctx,
    session: DbSession,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    header = request.headers.get("authorization")
    if header is None and ctx.settings.discovery_anonymous:
        return None
    return authenticate(ctx.settings, ctx.verifier, session, header, ctx.facts)


Caller = Annotated[Principal, Depends(get_principal)]
MaybeCaller = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_requirements(ctx: Ctx) -> ReviewRequirements:
    return ctx.settings.review_requirements


Requirements = Annotated[ReviewRequirements, Depends(get_requirements)]
