"""What the gateway's parts pass between them: routes, views, what upstreams serve, a call's outcome."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types

from governance import Principal
from governance.uritemplate import UriTemplate
from registry.services.facts import ItemEntry, ServerEntry, ToolEntry


@dataclass(frozen=True, slots=True)
class Route:
    entry: ServerEntry
    tool: ToolEntry
    exposed: str


@dataclass(frozen=True, slots=True)
class ItemRoute:
    entry: ServerEntry
    item: ItemEntry
    exposed: str  # the name (prompts) or URI / URI template (resources, templates) a client uses
    pattern: UriTemplate | None = None  # templates: which upstream URIs it admits


@dataclass(frozen=True, slots=True)
class ItemView:
    prompts: dict[str, ItemRoute] = field(default_factory=dict)
    resources: dict[str, ItemRoute] = field(default_factory=dict)
    templates: list[ItemRoute] = field(default_factory=list)
    prompt_list: list[types.Prompt] = field(default_factory=list)
    resource_list: list[types.Resource] = field(default_factory=list)
    template_list: list[types.ResourceTemplate] = field(default_factory=list)
    prompts_fingerprint: str = ""
    resources_fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class View:
    routes: dict[str, Route]
    tools: list[types.Tool]
    fingerprint: str
    items: ItemView = field(default_factory=ItemView)


@dataclass
class Served:
    """What an upstream currently serves: tool name → content hash (None: not known); prompts, resources and
    templates by `kind:name` → content hash (None: not known, or the version registers none)."""

    tools: dict[str, str] | None = None
    items: dict[str, str] | None = None
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
