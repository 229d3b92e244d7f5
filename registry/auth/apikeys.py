"""API keys: `bst_<key id>_<secret>`, shown once; only a SHA-256 of the secret is stored.

A fast hash is appropriate here (unlike for passwords): the secret is 256 random bits, so
there is nothing to brute-force, and verification sits on the hot path of every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governance import Classification, Principal, Role
from registry.db.models import ApiKey
from registry.errors import Unauthorized

if TYPE_CHECKING:
    from registry.services.facts import AccessFacts

PREFIX = "bst_"
_TOUCH_EVERY_SECONDS = 60.0
_touched: dict[str, float] = {}
_touch_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    secret_hash: str
    principal: Principal
    expires_at: datetime | None
    revoked_at: datetime | None


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
    return Principal(
        subject=f"key:{key.name}",
        groups=frozenset(key.groups or []),
        clearance=Classification(key.clearance) if key.clearance else Classification.INTERNAL,
        roles=frozenset({Role.USER, Role(key.role)}),
        client_id=f"key:{key.name}",
        auth_method="api_key",
        server_scope=frozenset(key.server_scope) if key.server_scope is not None else None,
    )


def _load(session: Session, key_id: str) -> KeyRecord | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
    if key is None:
        return None
    return KeyRecord(key.key_id, key.secret_hash, principal_for(key), key.expires_at, key.revoked_at)


def _touch(session: Session, key_id: str) -> None:
    """Record use at most once a minute per key and process, outside governed-change tracking."""
    now = time.monotonic()
    with _touch_lock:
        if now - _touched.get(key_id, -_TOUCH_EVERY_SECONDS) < _TOUCH_EVERY_SECONDS:
            return
        _touched[key_id] = now
    session.execute(update(ApiKey).where(ApiKey.key_id == key_id).values(last_used_at=datetime.now(UTC)))


def authenticate(session: Session, token: str, facts: AccessFacts | None = None) -> Principal:
    key_id, secret = _parse(token)
    record = (
        facts.memo(session, f"apikey:{key_id}", lambda: _load(session, key_id))
        if facts is not None
        else _load(session, key_id)
    )
    # Compare even when the key is unknown, so timing does not reveal which key ids exist.
    expected = record.secret_hash if record is not None else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or record is None:
        raise Unauthorized("unknown API key")
    if record.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
        raise Unauthorized("API key has expired")
    _touch(session, key_id)
    return record.principal
