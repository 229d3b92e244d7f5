"""Relational schema of the registry (SQLAlchemy 2 declarative)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# Sort keys must compare bytewise; locale collations (en_US.UTF-8) ignore punctuation.
BytewiseString = String(300).with_variant(String(300, collation="C"), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    support_channel: Mapped[str] = mapped_column(String(200))
    members: Mapped[list[str]] = mapped_column(JSONType, default=list)
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    servers: Mapped[list[Server]] = relationship(back_populates="team")
    memberships: Mapped[list[TeamMember]] = relationship(cascade="all, delete-orphan")


class TeamMember(Base):
    """Who belongs to a team, one row per user (`user:alice`) or group (`group:ads-eng`).

    Mirrors Team.members/groups so "which teams is this caller in?" is one indexed query.
    """

    __tablename__ = "team_members"

    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(210), primary_key=True, index=True)


class Server(Base):
    __tablename__ = "servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    short_name: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(100))
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    support_channel: Mapped[str | None] = mapped_column(String(200))
    environment: Mapped[str] = mapped_column(String(8))
    transport: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str | None] = mapped_column(String(2000))
    # What a remote upstream is told about the caller: none | assertion | token-exchange.
    identity: Mapped[str] = mapped_column(String(16), default="assertion", server_default="assertion")
    classification: Mapped[str] = mapped_column(String(16))
    allowed_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    website_url: Mapped[str | None] = mapped_column(String(2000))
    repository: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    health_status: Mapped[str] = mapped_column(String(16), default="unknown")
    health_latency_ms: Mapped[float | None]
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    health_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    team: Mapped[Team] = relationship(back_populates="servers", lazy="joined")
    versions: Mapped[list[ServerVersion]] = relationship(back_populates="server", cascade="all, delete-orphan")
    policies: Mapped[list[Policy]] = relationship(back_populates="server", cascade="all, delete-orphan")


class ServerVersion(Base):
    __tablename__ = "server_versions"
    __table_args__ = (
        UniqueConstraint("server_id", "version", name="uq_server_versions_server_version"),
        Index("ix_server_versions_server_key", "server_id", "version_key"),
        Index("ix_server_versions_latest", "is_latest", "server_id"),
        Index("ix_server_versions_updated", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(255))
    version_key: Mapped[str] = mapped_column(BytewiseString)
    status: Mapped[str] = mapped_column(String(16))
    is_latest: Mapped[bool] = mapped_column(Boolean, default=False)
    # Fields of server.json we carry but do not interpret (packages, remotes, icons, _meta).
    server_json: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # [{name, annotations, contentHash}] computed on write, so list pages need not read tools.
    tool_summary: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Prompts, resources and resource templates, each in its MCP wire shape plus its pin (`contentHash`);
    # like tools, fixed once the version leaves draft (schemas.items).
    prompts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, server_default="[]")
    resources: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, server_default="[]")
    resource_templates: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list, server_default="[]")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_message: Mapped[str | None] = mapped_column(String(500))

    server: Mapped[Server] = relationship(back_populates="versions")
    tools: Mapped[list[Tool]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="Tool.name"
    )
    reviews: Mapped[list[Review]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="Review.id"
    )
    transitions: Mapped[list[VersionTransition]] = relationship(
        back_populates="version", cascade="all, delete-orphan", order_by="VersionTransition.id"
    )


class Tool(Base):
    __tablename__ = "tools"
    __table_args__ = (UniqueConstraint("version_id", "name", name="uq_tools_version_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("server_versions.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSONType)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    content_hash: Mapped[str] = mapped_column(String(80))

    version: Mapped[ServerVersion] = relationship(back_populates="tools")


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("server_versions.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    decision: Mapped[str] = mapped_column(String(16))
    reviewer: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when a change to the server (its owning team, say) voids the review: it no longer counts.
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invalidated_reason: Mapped[str | None] = mapped_column(String(500))

    version: Mapped[ServerVersion] = relationship(back_populates="reviews")


class ServerOwnership(Base):
    """Which team owned a server when: separation of duties looks at every owner during a review."""

    __tablename__ = "server_ownership"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    changed_by: Mapped[str] = mapped_column(String(200))


class VersionTransition(Base):
    """Append-only record of every lifecycle move: who, when, from, to, why."""

    __tablename__ = "version_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("server_versions.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    version: Mapped[ServerVersion] = relationship(back_populates="transitions")


class Policy(Base):
    """Usage policy for a whole server (tool = '*') or for one of its tools, across versions."""

    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("server_id", "tool", name="uq_policies_server_tool"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    # '*', a tool's name, or `prompt:NAME` / `resource:NAME` for a prompt or a resource (or template).
    tool: Mapped[str] = mapped_column(String(80))
    allowed_groups: Mapped[list[str] | None] = mapped_column(JSONType)
    required_clearance: Mapped[str | None] = mapped_column(String(16))
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # The approver must be someone other than the caller (no self-approval by elicitation).
    second_approver: Mapped[bool] = mapped_column(Boolean, default=False)
    # Curated annotations; they override the hints the upstream serves, which are untrusted.
    annotations: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    server: Mapped[Server] = relationship(back_populates="policies")


class ToolSetting(Base):
    """Owner-maintained, non-governing facts about a tool (minutes saved per invocation)."""

    __tablename__ = "tool_settings"

    server_id: Mapped[int] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"), primary_key=True)
    tool: Mapped[str] = mapped_column(String(64), primary_key=True)
    minutes_saved: Mapped[float] = mapped_column(default=0.0)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ClientPolicy(Base):
    """Coarse rules for one OAuth client or API key: which servers, which environment."""

    __tablename__ = "client_policies"

    client_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    servers: Mapped[list[str] | None] = mapped_column(JSONType)
    environment: Mapped[str | None] = mapped_column(String(8))
    description: Mapped[str] = mapped_column(String(500), default="")
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Approval(Base):
    """A tool call parked until a person approves it; it runs once, exactly as approved."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    requester: Mapped[str] = mapped_column(String(200))
    requester_groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    client_id: Mapped[str | None] = mapped_column(String(200))
    server: Mapped[str] = mapped_column(String(200), index=True)
    tool: Mapped[str] = mapped_column(String(64))
    # Redacted for display; the hash binds the approval to the exact (unredacted) arguments.
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    arguments_hash: Mapped[str] = mapped_column(String(80))
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    second_approver: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(String(1000))
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEvent(Base):
    """Append-only record of every gateway list and call (database triggers refuse edits)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_subject_at", "subject", "at"),
        Index("ix_audit_events_server_tool_at", "server", "tool", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    client_id: Mapped[str | None] = mapped_column(String(200))
    # The client the user came through when a platform client (the chat agent) called on their behalf.
    origin_client_id: Mapped[str | None] = mapped_column(String(200))
    server: Mapped[str | None] = mapped_column(String(200))
    tool: Mapped[str | None] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    arguments_hash: Mapped[str | None] = mapped_column(String(80))
    decision: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(1000))
    latency_ms: Mapped[float] = mapped_column(default=0.0)
    result_size: Mapped[int] = mapped_column(Integer, default=0)
    approval_id: Mapped[str | None] = mapped_column(String(36))
    minutes_saved: Mapped[float] = mapped_column(default=0.0)
    protocol_version: Mapped[str | None] = mapped_column(String(16))
    replica: Mapped[str | None] = mapped_column(String(64))
    # Why a row was stored differently from what was queued (a field truncated to fit, a row isolated
    # after its batch failed); None for an ordinary row.
    flags: Mapped[str | None] = mapped_column(String(200))
    # The OpenTelemetry trace of the request (32 hex digits) when the gateway traces; None otherwise.
    trace_id: Mapped[str | None] = mapped_column(String(32))


class RequestStateUse(Base):
    """Sealed 2026-07-28 request states already answered: each may be used once, on any replica."""

    __tablename__ = "request_state_uses"
    __table_args__ = (Index("ix_request_state_uses_expires", "expires_at"),)

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A long-lived credential. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    groups: Mapped[list[str]] = mapped_column(JSONType, default=list)
    clearance: Mapped[str | None] = mapped_column(String(16))
    server_scope: Mapped[list[str] | None] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RegistryRevision(Base):
    """One row counting committed changes to governed state; caches compare against it."""

    __tablename__ = "registry_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class AdminEvent(Base):
    """Append-only log of administrative changes (teams, servers, policies, keys)."""

    __tablename__ = "admin_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ChatSession(Base):
    """A conversation with the chat agent: one user's, optionally limited to some servers (its scope)."""

    __tablename__ = "chat_sessions"
    __table_args__ = (Index("ix_chat_sessions_owner_updated", "owner", "updated_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(200), default="")
    # Server names the session may use; None: whatever the user may use.
    scope: Mapped[list[str] | None] = mapped_column(JSONType)
    # idle | awaiting_approval (proposals wait for a decision)
    status: Mapped[str] = mapped_column(String(32), default="idle")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ChatMessage(Base):
    """One message of a session, in the OpenAI chat format (user, assistant with tool calls, tool, notice)."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_session_seq", "session_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    body: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatToolCall(Base):
    """A tool call the agent made or proposed in a session, with its outcome through the gateway."""

    __tablename__ = "chat_tool_calls"
    __table_args__ = (Index("ix_chat_tool_calls_session_status", "session_id", "status"),)

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("chat_sessions.id", ondelete="CASCADE"))
    turn: Mapped[int] = mapped_column(Integer)
    # The model's id for the call (the tool message in the conversation answers it).
    call_id: Mapped[str] = mapped_column(String(80))
    tool: Mapped[str] = mapped_column(String(200))
    # Redacted for display.
    arguments: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The exact arguments of a call still waiting for a decision (cleared once it is decided).
    pending_arguments: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # ok | error | denied | not_run | awaiting_user | awaiting_approval | rejected
    status: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(1000), default="")
    rule: Mapped[str | None] = mapped_column(String(200))
    approval_id: Mapped[str | None] = mapped_column(String(36))
    request_state: Mapped[str | None] = mapped_column(String(4000))
    latency_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
