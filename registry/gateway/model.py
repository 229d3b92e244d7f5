"""What the gateway's parts pass between them: routes, views, what upstreams serve, a call's outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from governance import Principal
from registry.services.facts import ServerEntry, ToolEntry


@dataclass(frozen=True, slots=True)
class Route:
    entry: ServerEntry
    tool: ToolEntry
    exposed: str


@dataclass(frozen=True, slots=True)
class View:
    routes: dict[str, Route]
    tools: list[types.Tool]
    fingerprint: str


@dataclass
class Served:
    """What an upstream currently serves: tool name → content hash (None: not known)."""

    tools: dict[str, str] | None = None
    error: str | None = None
    checked_at: float = 0.0


@dataclass
class Outcome:
    """What the audit row and metrics record about one call."""

    decision: str = "allowed"
    rule: str | None = None
    outcome: str = "ok"
    error: str | None = None
    approval_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def principal_key(p: Principal) -> str:
    scope = ",".join(sorted(p.server_scope)) if p.server_scope is not None else "*"
    raw = f"{p.subject}|{','.join(sorted(p.groups))}|{p.clearance.value}|{p.client_id}|{p.origin_client_id}|{scope}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def shown(text: str, limit: int = 80) -> str:
    """A caller-chosen string for a message: quoted, bounded (errors never echo unbounded input)."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
