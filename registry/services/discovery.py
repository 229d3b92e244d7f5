"""Discovery API compatible with the official MCP registry (`/v0.1`, server.json 2025-12-11).

Users reach servers through the gateway, so the published `remotes` point at the gateway's
per-server endpoint; the upstream endpoint is an admin concern (see export).

Next to a version's tools, `_meta["dev.bastion/registry"]` shows its prompts, resources and resource
templates: list pages a summary of each (name, title, URI or URI template, MIME type), one version every
definition with its pin (`contentHash`), as for tools.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Row, Text, cast, or_, select, tuple_
from sqlalchemy.orm import Session

from governance import Principal, VersionStatus
from registry.db.models import Review, Server, ServerVersion, Team, Tool
from registry.errors import BadRequest, NotFound
from registry.schemas.serverjson import BASTION_META, OFFICIAL_META
from registry.services.common import check_limit, decode_cursor, membership_keys, page_of, team_ids_of
from registry.services.facts import AccessFacts
from registry.services.render import server_json_head, tool_json

_OFFICIAL_STATUS = {
    VersionStatus.APPROVED.value: "active",
    VersionStatus.DEPRECATED.value: "deprecated",
    VersionStatus.REVOKED.value: "deleted",
}

_COLUMNS = (
    Server.id.label("server_id"),
    Server.name,
    Server.short_name,
    Server.title,
    Server.description,
    Server.environment,
    Server.transport,
    Server.classification,
    Server.allowed_groups,
    Server.support_channel,
    Server.website_url,
    Server.repository,
    Server.health_status,
    Server.health_latency_ms,
    Server.health_checked_at,
    Team.name.label("team"),
    Team.support_channel.label("team_support_channel"),
    ServerVersion.id.label("version_id"),
    ServerVersion.version,
    ServerVersion.version_key,
    ServerVersion.status,
    ServerVersion.is_latest,
    ServerVersion.server_json,
    # Read as text and emitted as a pre-encoded fragment: list pages never decode it.
    cast(ServerVersion.tool_summary, Text).label("tool_summary_json"),
    ServerVersion.prompts,
    ServerVersion.resources,
    ServerVersion.resource_templates,
    ServerVersion.published_at,
    ServerVersion.updated_at,
    ServerVersion.status_changed_at,
    ServerVersion.status_message,
)


# What list pages show of each prompt, resource and resource template (one version shows them whole).
_SUMMARY_FIELDS = {
    "prompts": ("name", "title"),
    "resources": ("name", "title", "uri", "mimeType"),
    "resourceTemplates": ("name", "title", "uriTemplate", "mimeType"),
}


def _items(row: Row[Any], *, whole: bool) -> dict[str, list[dict[str, Any]]]:
    stored = {"prompts": row.prompts, "resources": row.resources, "resourceTemplates": row.resource_templates}
    if whole:
        return {key: list(items or []) for key, items in stored.items()}
    return {
        key: [{f: d[f] for f in _SUMMARY_FIELDS[key] if f in d} for d in items or []] for key, items in stored.items()
    }


def gateway_url(public_url: str, short_name: str) -> str:
    return f"{public_url}/servers/{short_name}/mcp"


_AUTH_HEADER = [
    {
        "name": "Authorization",
        "description": "Bearer token (JWT or Bastion API key)",
        "isRequired": True,
        "isSecret": True,
    }
]


class Discovery:
    def __init__(self, public_url: str, facts: AccessFacts) -> None:
        self.public_url = public_url
        self.facts = facts

    def _visibility(self, session: Session, principal: Principal | None, include_deleted: bool) -> list[Any]:
        statuses = [VersionStatus.APPROVED.value, VersionStatus.DEPRECATED.value]
        if include_deleted:
            statuses.append(VersionStatus.REVOKED.value)
        clauses: list[Any] = [ServerVersion.status.in_(statuses)]
        if principal is None:
            clauses.append(Server.environment == "prod")
        elif not principal.is_reviewer:
            # Ordinary users see prod servers; owning teams also see their dev servers.
            teams = self.facts.memo(
                session, "teams:" + ",".join(membership_keys(principal)), lambda: team_ids_of(session, principal)
            )
            clauses.append(or_(Server.environment == "prod", Server.team_id.in_(teams)))
        return clauses

    def _keys(self) -> Any:
        """The narrow rows a page is ordered and filtered on; entries come from the cache."""
        return select(ServerVersion.id.label("version_id"), Server.name, ServerVersion.version_key).join(
            Server, Server.id == ServerVersion.server_id
        )

    def _entries(self, session: Session, version_ids: list[int]) -> dict[int, orjson.Fragment]:
        """Pre-encoded entries by version id. Every field lives in governed rows, so an entry
        stays valid until the registry revision changes."""

        def load(missing: list[int]) -> dict[int, orjson.Fragment]:
            rows = session.execute(self._base().where(ServerVersion.id.in_(missing))).all()
            return {
                r.version_id: orjson.Fragment(
                    orjson.dumps(
                        self._entry(r, tools=orjson.Fragment(r.tool_summary_json), items=_items(r, whole=False))
                    )
                )
                for r in rows
            }

        return self.facts.memo_many(session, "discovery:", version_ids, load)

    def _base(self) -> Any:
        return (
            select(*_COLUMNS).join(Server, Server.id == ServerVersion.server_id).join(Team, Team.id == Server.team_id)
        )

    def list_servers(
        self,
        session: Session,
        principal: Principal | None,
        *,
        search: str | None,
        limit: int,
        cursor: str | None,
        updated_since: datetime | None,
        version: str | None,
        include_deleted: bool,
    ) -> dict[str, Any]:
        limit = check_limit(limit)
        # As in the official registry: a sync from a point in time must also see deletions.
        include_deleted = include_deleted or updated_since is not None
        stmt = self._keys().where(*self._visibility(session, principal, include_deleted))
        if search:
            term = search.strip().lower()
            stmt = stmt.where(
                or_(
                    Server.name.icontains(term, autoescape=True),
                    Server.title.icontains(term, autoescape=True),
                    Server.description.icontains(term, autoescape=True),
                )
            )
        if updated_since is not None:
            stmt = stmt.where(ServerVersion.updated_at >= updated_since)
        if version == "latest":
            stmt = stmt.where(ServerVersion.is_latest.is_(True))
        elif version:
            stmt = stmt.where(ServerVersion.version == version)
        after = decode_cursor(cursor, str, str)
        if after:
            stmt = stmt.where(tuple_(Server.name, ServerVersion.version_key) > tuple_(after[0], after[1]))
        stmt = stmt.order_by(Server.name, ServerVersion.version_key).limit(limit + 1)
        keys, next_cursor = page_of(list(session.execute(stmt).all()), limit, lambda k: [k.name, k.version_key])
        entries = self._entries(session, [k.version_id for k in keys])
        metadata: dict[str, Any] = {"count": len(keys)}
        if next_cursor:
            metadata["nextCursor"] = next_cursor
        return {"servers": [entries[k.version_id] for k in keys], "metadata": metadata}

    def versions(
        self, session: Session, principal: Principal | None, name: str, include_deleted: bool
    ) -> dict[str, Any]:
        stmt = (
            self._keys()
            .where(Server.name == name, *self._visibility(session, principal, include_deleted))
            .order_by(ServerVersion.version_key.desc())
        )
        keys = session.execute(stmt).all()
        if not keys:
            raise NotFound("Server not found", field="serverName")
        entries = self._entries(session, [k.version_id for k in keys])
        return {"servers": [entries[k.version_id] for k in keys], "metadata": {"count": len(keys)}}

    def version(
        self, session: Session, principal: Principal | None, name: str, version: str, include_deleted: bool
    ) -> dict[str, Any]:
        stmt = self._base().where(Server.name == name, *self._visibility(session, principal, include_deleted))
        if version == "latest":
            stmt = stmt.where(ServerVersion.is_latest.is_(True))
        else:
            if not version:
                raise BadRequest("version is required", field="version")
            stmt = stmt.where(ServerVersion.version == version)
        row = session.execute(stmt).first()
        if row is None:
            raise NotFound("Server not found", field="serverName")
        tools = session.scalars(select(Tool).where(Tool.version_id == row.version_id).order_by(Tool.name)).all()
        reviews = session.scalars(select(Review).where(Review.version_id == row.version_id).order_by(Review.id)).all()
        full_tools = [tool_json(t, with_hash=True) for t in tools]
        entry = self._entry(row, tools=full_tools, items=_items(row, whole=True))
        entry["_meta"][BASTION_META]["reviews"] = [
            {"kind": r.kind, "decision": r.decision, "reviewer": r.reviewer, "at": _iso(r.created_at)} for r in reviews
        ]
        return entry

    def _entry(
        self,
        row: Row[Any],
        *,
        tools: list[dict[str, Any]] | orjson.Fragment,
        items: dict[str, list[dict[str, Any]]],
    ) -> dict[str, Any]:
        server = server_json_head(
            name=row.name,
            description=row.description,
            version=row.version,
            title=row.title,
            website_url=row.website_url,
            repository=row.repository,
            carried=row.server_json or {},
            # Published remotes point at the gateway, never at the upstream.
            carried_keys=("icons", "packages"),
        )
        server["remotes"] = [
            {"type": "streamable-http", "url": gateway_url(self.public_url, row.short_name), "headers": _AUTH_HEADER}
        ]
        official: dict[str, Any] = {
            "status": _OFFICIAL_STATUS.get(row.status, "active"),
            "publishedAt": _iso(row.published_at or row.updated_at),
            "updatedAt": _iso(row.updated_at),
            "statusChangedAt": _iso(row.status_changed_at),
            "isLatest": bool(row.is_latest),
        }
        if row.status_message:
            official["statusMessage"] = row.status_message
        ours: dict[str, Any] = {
            "shortName": row.short_name,
            "owner": {"team": row.team, "supportChannel": row.support_channel or row.team_support_channel},
            "environment": row.environment,
            "classification": row.classification,
            "allowedGroups": row.allowed_groups or [],
            "transport": row.transport,
            "reviewStatus": row.status,
            "health": {
                "status": row.health_status,
                "latencyMs": row.health_latency_ms,
                "checkedAt": _iso(row.health_checked_at) if row.health_checked_at else None,
            },
            "tools": tools,
            **items,
        }
        return {"server": server, "_meta": {OFFICIAL_META: official, BASTION_META: ours}}


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


__all__ = ["Discovery", "gateway_url"]
