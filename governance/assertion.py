"""The caller assertion: what the gateway tells a remote upstream about who is calling.

A short-lived JWT the gateway signs for every request it proxies (``registry.gateway.identity``) and a
server verifies (``bastion_sdk``). This module is the contract both sides share: where it travels, how it
is typed, and how a principal maps to claims. Pure: no keys, no clock, no I/O.
"""

from __future__ import annotations

from typing import Any

from governance.principal import Principal

# HTTP header carrying the assertion on every request the gateway proxies in `assertion` mode.
ASSERTION_HEADER = "X-Bastion-Assertion"
# The JWT `typ` header (RFC 8725 explicit typing): a Bastion access token or any other JWT signed by a
# key that happens to be trusted cannot pass for a caller assertion, nor the other way round.
ASSERTION_TYPE = "bastion-caller+jwt"
# Ed25519 (RFC 8037): cheaper to sign and verify than P-256 when caches are cold, as they are between calls.
ASSERTION_ALGORITHM = "EdDSA"
# Where the gateway serves the public half of its signing keys.
JWKS_PATH = "/.well-known/jwks.json"
# Claims every assertion carries.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti", "groups", "clearance")

# What a registered server may choose to receive (the `identity` field of a server).
IDENTITY_MODES = ("none", "assertion", "token-exchange")
DEFAULT_IDENTITY_MODE = "assertion"


def assertion_claims(
    principal: Principal,
    *,
    issuer: str,
    audience: str,
    issued_at: int,
    ttl_seconds: int,
    jti: str,
    approval_id: str | None = None,
) -> dict[str, Any]:
    """The claims asserting ``principal`` to ``audience`` (a registered server's name). Never a credential
    of the caller: only who they are, as the gateway established it."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": principal.subject,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
        "jti": jti,
        "groups": sorted(principal.groups),
        "clearance": principal.clearance.value,
    }
    if principal.client_id is not None:
        claims["client_id"] = principal.client_id
    if principal.origin_client_id is not None:
        claims["origin_client_id"] = principal.origin_client_id
    if approval_id is not None:
        claims["approval_id"] = approval_id
    return claims
