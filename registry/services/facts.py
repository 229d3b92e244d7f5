"""A per-process cache of what authorisation needs, invalidated by the registry revision.

Answering "may X use Y?" or authorising a gateway call must not cost database round trips
on every request. Entries are loaded on first use and dropped when the registry revision
changes: immediately for writes made through this process, and within `ttl` seconds for
writes made by other replicas.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import (
    Classification,
    ClientRule,
    Environment,
    PolicyRule,
    Principal,
    ServerFacts,
    TeamFacts,
    ToolAnnotations,
    ToolFacts,
)
from governance.assertion import DEFAULT_IDENTITY_MODE
from registry.db import revision
from registry.db.models import ClientPolicy, Policy, Server, ServerVersion, Team, Tool, ToolSetting
from registry.schemas.tools import annotations_from_mcp
from registry.services import clients
from registry.services.policies import SERVER_WIDE, rule_of


@dataclass(frozen=True, slots=True)
class ToolEntry:
    name: str
    title: str | None
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    # As registered (and pinned by content_hash); `effective_annotations` adds the curation.
    annotations: dict[str, Any]
    content_hash: str
    effective_annotations: dict[str, Any]
    facts: ToolFacts
    minutes_saved: float = 0.0
    rate_limit_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class ItemEntry:
    """A prompt, resource or resource template of the published version, as pinned."""

    kind: str  # prompt | resource | resourceTemplate
    name: str
    definition: dict[str, Any]  # the MCP wire shape, without the pin
    content_hash: str
    facts: ToolFacts  # named by its policy key (`prompt:NAME`, `resource:NAME`); read-only
    rate_limit_per_minute: int | None = None

    @property
    def policy_key(self) -> str:
        return self.facts.name


READ_ONLY = ToolAnnotations(read_only=True, destructive=False, idempotent=True, open_world=False)


def item_policy_key(kind: str, name: str) -> str:
    """The `policies.tool` key of a per-prompt or per-resource rule (templates share the resource namespace)."""
    return f"{'prompt' if kind == 'prompt' else 'resource'}:{name}"


def _items(kind: str, stored: list[dict[str, Any]], limits: dict[str, int | None]) -> dict[str, ItemEntry]:
    out: dict[str, ItemEntry] = {}
    for d in stored or []:
        key = item_policy_key(kind, d["name"])
        out[d["name"]] = ItemEntry(
            kind=kind,
            name=d["name"],
            definition={k: v for k, v in d.items() if k != "contentHash"},
            content_hash=d["contentHash"],
            facts=ToolFacts(name=key, annotations=READ_ONLY),
            rate_limit_per_minute=limits.get(key) or limits.get(SERVER_WIDE),
        )
    return out


@dataclass(frozen=True, slots=True)
class ServerEntry:
    id: int
    name: str
    short_name: str
    title: str | None
    description: str
    transport: str
    endpoint: str | None
    team: str
    support_channel: str
    facts: ServerFacts
    version_id: int | None
    tools: Mapping[str, ToolEntry] = field(default_factory=dict)
    rules: tuple[PolicyRule, ...] = ()
    identity: str = DEFAULT_IDENTITY_MODE
    prompts: Mapping[str, ItemEntry] = field(default_factory=dict)
    resources: Mapping[str, ItemEntry] = field(default_factory=dict)
    templates: Mapping[str, ItemEntry] = field(default_factory=dict)

    @property
    def has_items(self) -> bool:
        return bool(self.prompts or self.resources or self.templates)

    @property
    def published(self) -> bool:
        return self.version_id is not None


def load_server(session: Session, name: str) -> ServerEntry | None:
    row = session.execute(
        select(Server, Team, ServerVersion)
        .join(Team, Team.id == Server.team_id)
        .outerjoin(ServerVersion, (ServerVersion.server_id == Server.id) & ServerVersion.is_latest.is_(True))
        .where(Server.name == name)
    ).first()
    if row is None:
        return None
    server, team, version = row
    policies = list(session.scalars(select(Policy).where(Policy.server_id == server.id)))
    curated = {p.tool: p.annotations or {} for p in policies}
    limits = {p.tool: p.rate_limit_per_minute for p in policies}
    settings = select(ToolSetting.tool, ToolSetting.minutes_saved).where(ToolSetting.server_id == server.id)
    minutes: dict[str, float] = dict(session.execute(settings).all())
    tools: dict[str, ToolEntry] = {}
    if version is not None:
        for t in session.scalars(select(Tool).where(Tool.version_id == version.id).order_by(Tool.name)):
            # Curation wins over what the upstream declared: tool-level over server-wide.
            effective = {**(t.annotations or {}), **curated.get(SERVER_WIDE, {}), **curated.get(t.name, {})}
            tools[t.name] = ToolEntry(
                name=t.name,
                title=t.title,
                description=t.description,
                input_schema=t.input_schema,
                output_schema=t.output_schema,
                annotations=t.annotations or {},
                content_hash=t.content_hash,
                effective_annotations=effective,
                facts=ToolFacts(name=t.name, annotations=annotations_from_mcp(effective)),
                minutes_saved=float(minutes.get(t.name, 0.0)),
                rate_limit_per_minute=limits.get(t.name) or limits.get(SERVER_WIDE),
            )
    rules = tuple(rule_of(p) for p in policies)
    return ServerEntry(
        id=server.id,
        name=server.name,
        short_name=server.short_name,
        title=server.title,
        description=server.description,
        transport=server.transport,
        endpoint=server.endpoint,
        team=team.name,
        support_channel=server.support_channel or team.support_channel,
        facts=ServerFacts(
            name=server.name,
            environment=Environment(server.environment),
            classification=Classification(server.classification),
            allowed_groups=frozenset(server.allowed_groups or []),
            owner=TeamFacts(name=team.name, members=frozenset(team.members or []), groups=frozenset(team.groups or [])),
            published_version=version.version if version is not None else None,
        ),
        version_id=version.id if version is not None else None,
        tools=tools,
        rules=rules,
        identity=server.identity,
        prompts=_items("prompt", version.prompts, limits) if version is not None else {},
        resources=_items("resource", version.resources, limits) if version is not None else {},
        templates=_items("resourceTemplate", version.resource_templates, limits) if version is not None else {},
    )


_MISSING = object()
MISSING = _MISSING


class AccessFacts:
    def __init__(self, ttl_seconds: float = 1.0) -> None:
        self.ttl = ttl_seconds
        self._lock = threading.Lock()
        self._entries: dict[str, ServerEntry | None] = {}
        self._other: dict[str, Any] = {}
        self._revision: int | None = None
        self._checked_at = 0.0

    def invalidate(self) -> None:
        """A local write committed: re-read the revision on next use."""
        self._checked_at = 0.0

    def _sync(self, session: Session) -> int:
        now = time.monotonic()
        if self._revision is not None and now - self._checked_at < self.ttl:
            return self._revision
        current = revision.current(session)
        with self._lock:
            if current != self._revision:
                self._entries = {}
                self._other = {}
                self._revision = current
            self._checked_at = now
        return current

    def server(self, session: Session, name: str) -> ServerEntry | None:
        seen = self._sync(session)
        cached = self._entries.get(name, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        entry = load_server(session, name)
        with self._lock:
            # A load that raced an invalidation must not re-insert stale data.
            if self._revision == seen:
                self._entries[name] = entry
        return entry

    def peek(self, key: str) -> Any:
        """A cached value without touching the database, or MISSING when the revision is due
        for a re-check or the key is absent (then use ``memo`` from a worker thread)."""
        if self._revision is None or time.monotonic() - self._checked_at >= self.ttl:
            return MISSING
        return self._other.get(key, MISSING)

    def memo_many(
        self, session: Session, prefix: str, ids: list[int], load: Callable[[list[int]], dict[int, Any]]
    ) -> dict[int, Any]:
        """Like memo, for a batch: one ``load(missing_ids)`` call fills every miss."""
        seen = self._sync(session)
        out: dict[int, Any] = {}
        missing: list[int] = []
        for i in ids:
            cached = self._other.get(f"{prefix}{i}", _MISSING)
            if cached is _MISSING:
                missing.append(i)
            else:
                out[i] = cached
        if missing:
            loaded = load(missing)
            with self._lock:
                if self._revision == seen:
                    for i, value in loaded.items():
                        self._other[f"{prefix}{i}"] = value
            out.update(loaded)
        return out

    def memo(self, session: Session, key: str, load: Any) -> Any:
        """Cache any other governed lookup (API keys, team membership) under the same revision."""
        seen = self._sync(session)
        cached = self._other.get(key, _MISSING)
        if cached is not _MISSING:
            return cached
        value = load()
        with self._lock:
            if self._revision == seen:
                self._other[key] = value
        return value


def client_rules(facts: AccessFacts, session: Session, principal: Principal) -> list[ClientRule]:
    """The rules of every client the call comes through: the client, and the one its user came through."""
    ids = [principal.client_id, principal.origin_client_id]
    return [rule for cid in ids if cid is not None and (rule := client_rule(facts, session, cid)) is not None]


def client_rule(facts: AccessFacts, session: Session, client_id: str | None) -> ClientRule | None:
    """The coarse rule for an OAuth client or API key, if one is registered."""
    if client_id is None:
        return None

    def load() -> ClientRule | None:
        policy = session.get(ClientPolicy, client_id)
        return clients.rule_of(policy) if policy is not None else None

    rule: ClientRule | None = facts.memo(session, f"client:{client_id}", load)
    return rule
