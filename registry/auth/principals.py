"""Turn a bearer credential (JWT or API key) into a governance Principal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from governance import Classification, Principal, Role
from registry.auth import apikeys
from registry.auth.tokens import TokenVerifier
from registry.errors import Unauthorized
from registry.settings import RegistrySettings

if TYPE_CHECKING:
    from registry.services.facts import AccessFacts


def roles_for_groups(settings: RegistrySettings, groups: frozenset[str]) -> frozenset[Role]:
    roles = {Role.USER}
    if groups & set(settings.admin_groups):
        roles.add(Role.ADMIN)
    if groups & set(settings.reviewer_groups):
        roles.add(Role.REVIEWER)
    return frozenset(roles)


def _groups_claim(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(part for part in value.replace(",", " ").split() if part)
    if isinstance(value, list) and all(isinstance(g, str) for g in value):
        return frozenset(value)
    raise Unauthorized("token claim 'groups' must be a list of strings")


def principal_from_claims(settings: RegistrySettings, claims: dict[str, Any]) -> Principal:
    groups = _groups_claim(claims.get("groups"))
    clearance_claim = claims.get("clearance")
    try:
        clearance = Classification(clearance_claim) if clearance_claim else settings.default_clearance
    except ValueError:
        raise Unauthorized(f"token claim 'clearance' has unknown level {clearance_claim!r}") from None
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("token has no subject")
    client = claims.get("azp") or claims.get("client_id")
    try:
        return Principal(
            subject=sub,
            groups=groups,
            clearance=clearance,
            roles=roles_for_groups(settings, groups),
            client_id=client if isinstance(client, str) else None,
            auth_method="jwt",
        )
    except ValidationError as exc:
        raise Unauthorized(f"token claims are invalid: {exc.errors()[0]['msg']}") from None


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthorized("missing bearer token")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("expected 'Authorization: Bearer <token>'")
    return token.strip()


def authenticate(
    settings: RegistrySettings,
    verifier: TokenVerifier,
    session: Session,
    authorization: str | None,
    facts: AccessFacts | None = None,
) -> Principal:
    token = bearer_token(authorization)
    if apikeys.looks_like_key(token):
        return apikeys.authenticate(session, token, facts)
    return principal_from_claims(settings, verifier.verify(token))
