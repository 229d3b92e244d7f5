"""API keys: created by admins (or the CLI), shown once, stored hashed, revocable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance import Principal
from registry.auth import apikeys
from registry.db.models import ApiKey
from registry.errors import Conflict, NotFound
from registry.schemas.admin import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from registry.schemas.base import Page
from registry.services.common import check_limit, decode_cursor, page_of, record_event, require_admin


def create_key(session: Session, actor: Principal, body: ApiKeyCreate) -> ApiKeyCreated:
    require_admin(actor, "create API keys")
    secret, key_id, digest = apikeys.generate()
    key = ApiKey(
        key_id=key_id,
        name=body.name,
        secret_hash=digest,
        role=body.role.value,
        groups=body.groups,
        clearance=body.clearance.value if body.clearance else None,
        server_scope=sorted(set(body.server_scope)) if body.server_scope is not None else None,
        created_by=actor.subject,
        expires_at=datetime.now(UTC) + timedelta(days=body.expires_in_days) if body.expires_in_days else None,
    )
    session.add(key)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"an API key named {body.name!r} already exists", field="name") from None
    # The event records what the key may do, never the secret.
    record_event(session, actor, "key.create", body.name, role=body.role.value, groups=body.groups)
    return ApiKeyCreated(**ApiKeyOut.model_validate(key).model_dump(), key=secret)


def revoke_key(session: Session, actor: Principal, name: str) -> ApiKeyOut:
    require_admin(actor, "revoke API keys")
    key = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if key is None:
        raise NotFound(f"no API key named {name!r}", field="name")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        record_event(session, actor, "key.revoke", name)
    return ApiKeyOut.model_validate(key)


def list_keys(session: Session, actor: Principal, limit: int, cursor: str | None) -> Page[ApiKeyOut]:
    require_admin(actor, "list API keys")
    limit = check_limit(limit)
    stmt = select(ApiKey).order_by(ApiKey.name).limit(limit + 1)
    after = decode_cursor(cursor, str)
    if after:
        stmt = stmt.where(ApiKey.name > after[0])
    rows, next_cursor = page_of(list(session.scalars(stmt)), limit, lambda k: [k.name])
    return Page[ApiKeyOut](
        items=[ApiKeyOut.model_validate(k) for k in rows],
        next_cursor=next_cursor,
    )
