"""API keys: `bst_<key id>_<secret>`, shown once; only a SHA-256 of the secret is stored.

A fast hash is appropriate here (unlike for passwords): the secret is 256 random bits, so
there is nothing to brute-force, and verification sits on the hot path of every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import Classification, Principal, Role
from registry.db.models import ApiKey
from registry.errors import Unauthorized

PREFIX = "bst_"
_LAST_USED_RESOLUTION = timedelta(minutes=1)


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate() -> tuple[str, str, str]:
    """Return (full key, key id, secret hash)."""
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}{key_id}_{secret}", key_id, _hash(secret)


def _parse(token: str) -> tuple[str, str]:
    body = token[len(PREFIX) :]
    key_id, sep, secret = body.partition("_")
    if not sep or len(key_id) != 12 or not secret:
        raise Unauthorized("malformed API key")
    return key_id, secret


def principal_for(key: ApiKey) -> Principal:
    roles = {Role.USER, Role(key.role)}
    return Principal(
        subject=f"key:{key.name}",
        groups=frozenset(key.groups or []),
        clearance=Classification(key.clearance) if key.clearance else Classification.INTERNAL,
        roles=frozenset(roles),
        client_id=f"key:{key.name}",
        auth_method="api_key",
        server_scope=frozenset(key.server_scope) if key.server_scope is not None else None,
    )


def authenticate(session: Session, token: str) -> Principal:
    key_id, secret = _parse(token)
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    # Compare even when the key is unknown, so timing does not reveal which key ids exist.
    expected = key.secret_hash if key is not None else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or key is None:
        raise Unauthorized("unknown API key")
    now = datetime.now(UTC)
    if key.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("API key has expired")
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
    return principal_for(key)
