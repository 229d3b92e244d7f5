"""Bearer JWTs: verification (HS256 secret or an identity provider's JWKS) and dev minting."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt

from registry.errors import Unauthorized
from registry.settings import RegistrySettings

ASYMMETRIC = ["RS256", "ES256"]


_CACHE_SIZE = 10_000


class TokenVerifier:
    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self._hs_secret = settings.hs_secret()
        self._jwks = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300) if settings.jwks_url else None
        # Verified tokens until they expire: a JWT cannot be revoked before `exp` anyway, so this
        # changes nothing but the cost (signature checks dominate the gateway's auth time).
        self._verified: dict[str, dict[str, Any]] = {}

    def verify(self, token: str) -> dict[str, Any]:
        cached = self._verified.get(token)
        if cached is not None:
            if cached["exp"] + self.settings.jwt_leeway > time.time():
                return cached
            self._verified.pop(token, None)
        claims = self._verify(token)
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)), None)  # drop the oldest entry
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed bearer token") from None
        alg = header.get("alg")
        try:
            if alg == "HS256":
                key: Any = self._hs_secret
            elif alg in ASYMMETRIC and self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
            else:
                raise Unauthorized(f"token algorithm {str(alg)[:40]!r} is not accepted")
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "sub", "iss", "aud"]},
                leeway=self.settings.jwt_leeway,
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"token is not for this audience (expected {self.settings.jwt_audience!r})") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized("token issuer is not trusted") from None
        except jwt.PyJWKClientError as exc:
            raise Unauthorized(f"cannot verify token signature: {str(exc)[:200]}") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {str(exc)[:200]}") from None
        return claims


def mint_token(
    settings: RegistrySettings,
    *,
    user: str,
    groups: list[str] | None = None,
    clearance: str | None = None,
    client_id: str | None = None,
    ttl_seconds: int = 12 * 3600,
    audience: str | None = None,
) -> str:
    """A dev token signed with the HS256 secret (what an identity provider does in production)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": audience or settings.jwt_audience,
        "sub": user,
        "groups": sorted(set(groups or [])),
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    if clearance:
        claims["clearance"] = clearance
    if client_id:
        claims["azp"] = client_id
    return jwt.encode(claims, settings.hs_secret(), algorithm="HS256")
