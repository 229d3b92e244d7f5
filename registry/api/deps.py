"""FastAPI dependencies (context, session, caller) and the route class that authenticates first.

Every route that needs a token is an `AuthenticatedRoute`: the caller is authenticated before FastAPI reads,
parses or validates anything of the request, so an unauthenticated request gets 401 with the challenge —
never a 422 that tells a stranger what the endpoint expects, never a parse of a body nobody vouched for.
The principal is kept in the request scope; `Caller` and `respond` use it instead of authenticating again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any, ClassVar

import anyio.to_thread
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from governance import Principal, ReviewRequirements
from registry.auth import authenticate, bearer_token, principal_from_claims
from registry.auth.apikeys import looks_like_key
from registry.context import RegistryContext
from registry.errors import Unauthorized

# Declares the bearer scheme in OpenAPI (the "Authorize" button in /docs); we validate ourselves.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT or a Bastion API key (bst_...)")
_bearer = bearer_scheme

# Request-scope key of the principal `AuthenticatedRoute` established (None: anonymous discovery).
PRINCIPAL = "bastion.principal"


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


async def authenticate_request(request: Request, *, anonymous: bool = False) -> Principal | None:
    """The caller of `request`, or None for anonymous discovery (`anonymous` and the deployment allows it).

    JWTs are verified on the event loop (CPU only, verified tokens are cached), as the gateway does; API keys
    are looked up in the database and tokens of an identity provider may need its JWKS: off the loop.
    """
    ctx: RegistryContext = request.app.state.registry
    header = request.headers.get("authorization")
    if header is None and anonymous and ctx.settings.discovery_anonymous:
        return None
    token = bearer_token(header)
    if looks_like_key(token) or ctx.settings.jwks_url:

        def check() -> Principal:
            with ctx.db.read() as session:
                return authenticate(ctx.settings, ctx.verifier, session, header, ctx.facts)

        return await anyio.to_thread.run_sync(check)
    return principal_from_claims(ctx.settings, ctx.verifier.verify(token))


class Unset:
    pass


UNSET = Unset()


def established(request: Request) -> Principal | Unset | None:
    """The principal `AuthenticatedRoute` established for this request, or UNSET outside one."""
    value: Principal | Unset | None = request.scope.get(PRINCIPAL, UNSET)
    return value


def _unstorable(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no unpaired surrogate escapes)"
    return None


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value, keys included (iteratively: JSON may nest deeply)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def refuse_unstorable_text(request: Request) -> None:
    """422 for text no database here can store (NUL; unpaired surrogates, which only JSON escapes can carry),
    wherever it is — path, query or body — before any of it reaches a query."""
    errors: list[dict[str, Any]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (reason := _unstorable(value)):
            errors.append({"type": "value_error", "loc": ("path", name), "msg": reason})
    for key, value in request.query_params.multi_items():
        if reason := _unstorable(key + value):
            errors.append({"type": "value_error", "loc": ("query", key), "msg": reason})
    if request.method in ("POST", "PUT", "PATCH"):
        raw = await request.body()
        # JSON can only carry either through a `\u` escape: most bodies have none and are not parsed twice.
        if b"\\u" in raw:
            try:
                parsed = json.loads(raw)
            except (ValueError, RecursionError):
                parsed = None  # not JSON: FastAPI says so
            if reason := next(filter(None, map(_unstorable, _strings(parsed))), None):
                errors.append({"type": "value_error", "loc": ("body",), "msg": reason})
    if errors:
        raise RequestValidationError(errors)


def _unparsable_body(cause: BaseException) -> dict[str, Any]:
    """The 422 entry for a body FastAPI could not parse, naming why (never echoing the body)."""
    if isinstance(cause, UnicodeDecodeError):
        reason = "not UTF-8"
    elif isinstance(cause, RecursionError):
        reason = "nested too deeply"
    else:
        reason = "not parsable"
    return {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": reason}}


class AuthenticatedRoute(APIRoute):
    """A route that authenticates before anything of the request is read, parsed or validated."""

    anonymous: ClassVar[bool] = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        anonymous = self.anonymous

        async def authenticated(request: Request) -> Response:
            request.scope[PRINCIPAL] = await authenticate_request(request, anonymous=anonymous)
            await refuse_unstorable_text(request)
            try:
                return await handler(request)
            except HTTPException as exc:
                # FastAPI's answer to a body it cannot parse (not UTF-8, nested deeper than the JSON parser
                # goes): a 422 naming the body and why, like bad JSON.
                if exc.status_code == 400 and exc.__cause__ is not None:
                    raise RequestValidationError([_unparsable_body(exc.__cause__)]) from exc
                raise

        return authenticated


class DiscoveryRoute(AuthenticatedRoute):
    """Authenticates like `AuthenticatedRoute`, but lets a request without a token through when the
    deployment allows anonymous discovery (`BASTION_DISCOVERY_ANONYMOUS`)."""

    anonymous = True


async def get_principal(
    request: Request,
    ctx: Ctx,
    _creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal = established(request)
    if isinstance(principal, Unset):
        principal = await authenticate_request(request)
    if principal is None:
        raise Unauthorized("missing bearer token")
    return principal


Caller = Annotated[Principal, Depends(get_principal)]


async def get_requirements(ctx: Ctx) -> ReviewRequirements:
    return ctx.settings.review_requirements


Requirements = Annotated[ReviewRequirements, Depends(get_requirements)]
