"""Pure evaluation of "may this principal use this server (and tool)?".

Every check contributes a human-readable reason, so a decision can always be explained;
the first failing check names the rule that denied it.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from governance.classification import Classification, highest
from governance.principal import Principal, TeamFacts


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class ToolAnnotations(BaseModel):
    """The curated (registry-side) behaviour hints of a tool; upstream hints are not trusted."""

    model_config = ConfigDict(frozen=True)

    read_only: bool = False
    destructive: bool = True
    idempotent: bool = False
    open_world: bool = True


class PolicyRule(BaseModel):
    """One policy row: server-wide when ``tool`` is None, otherwise for that tool."""

    model_config = ConfigDict(frozen=True)

    tool: str | None = None
    allowed_groups: frozenset[str] | None = None
    required_clearance: Classification | None = None
    require_approval: bool = False
    second_approver: bool = False
    rate_limit_per_minute: int | None = None


class ClientRule(BaseModel):
    """Coarse rules for one OAuth client (``azp``/``client_id``) or API key.

    ``servers`` limits the client to named servers; ``environment=prod`` keeps a production
    client (say, the prod chat app) off experimental dev servers.
    """

    model_config = ConfigDict(frozen=True)

    client_id: str
    servers: frozenset[str] | None = None
    environment: Environment | None = None


class ServerFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    environment: Environment
    classification: Classification
    allowed_groups: frozenset[str] = frozenset()
    owner: TeamFacts
    published_version: str | None = None


class ToolFacts(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    annotations: ToolAnnotations = ToolAnnotations()


class Decision(BaseModel):
    allowed: bool
    requires_approval: bool = False
    reasons: list[str]
    denied_by: str | None = None
    approval_reasons: list[str] = []
    # Someone other than the caller must approve (the caller's own confirmation is not enough).
    second_approver: bool = False


class _Trail:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.approval: list[str] = []

    def ok(self, message: str) -> None:
        self.reasons.append(message)

    def deny(self, rule: str, message: str) -> Decision:
        self.reasons.append(message)
        return Decision(allowed=False, reasons=self.reasons, denied_by=rule)


def _groups_text(groups: frozenset[str]) -> str:
    return ", ".join(sorted(groups)) or "(none)"


def _label(name: str) -> str:
    """How a rule's target reads: `tool x`, or `prompt x` / `resource x` for a per-item key (`prompt:x`)."""
    kind, sep, item = name.partition(":")
    return f"{kind} {item}" if sep and kind in ("prompt", "resource") else f"tool {name}"


def evaluate(
    principal: Principal,
    server: ServerFacts,
    rules: list[PolicyRule],
    tool: ToolFacts | None = None,
    client: ClientRule | Sequence[ClientRule] | None = None,
) -> Decision:
    """Decide whether ``principal`` may use ``server`` (and ``tool`` when given).

    ``client`` may be several rules (a platform client calling on behalf of another): each must allow."""
    trail = _Trail()

    if server.published_version is None:
        return trail.deny("lifecycle", f"server {server.name} has no approved version")
    trail.ok(f"server {server.name} is approved (version {server.published_version})")

    for client_rule in [client] if isinstance(client, ClientRule) else list(client or []):
        name = client_rule.client_id
        if client_rule.servers is not None and server.name not in client_rule.servers:
            return trail.deny("client.scope", f"client {name} is limited to {_groups_text(client_rule.servers)}")
        if client_rule.environment is Environment.PROD and server.environment is Environment.DEV:
            return trail.deny("client.environment", f"client {name} is a prod client; {server.name} is a dev server")
        trail.ok(f"client {name} may reach {server.name}")

    if principal.server_scope is not None:
        if server.name not in principal.server_scope:
            return trail.deny(
                "credential.scope",
                f"the credential in use is scoped to {_groups_text(principal.server_scope)}, not {server.name}",
            )
        trail.ok(f"the credential's scope includes {server.name}")

    if server.environment is Environment.DEV:
        if not server.owner.has_member(principal):
            return trail.deny(
                "environment",
                f"{server.name} is a dev server; only team {server.owner.name} may use it",
            )
        trail.ok(f"dev server: {principal.subject} is in owning team {server.owner.name}")

    if server.allowed_groups:
        shared = principal.groups & server.allowed_groups
        if not shared:
            return trail.deny(
                "server.allowed_groups",
                f"{server.name} is limited to groups {_groups_text(server.allowed_groups)}; "
                f"{principal.subject} is in {_groups_text(principal.groups)}",
            )
        trail.ok(f"group {sorted(shared)[0]} is allowed on {server.name}")
    else:
        trail.ok(f"{server.name} is open to every authenticated user")

    server_rules = [r for r in rules if r.tool is None]
    tool_rules = [r for r in rules if tool is not None and r.tool == tool.name]

    needed = highest(
        server.classification,
        *(r.required_clearance for r in server_rules),
        *(r.required_clearance for r in tool_rules),
    )
    if not principal.clearance.covers(needed):
        return trail.deny(
            "classification",
            f"clearance {principal.clearance.value} does not cover {needed.value} "
            f"required by {server.name}{'/' + (tool.name.partition(':')[2] or tool.name) if tool else ''}",
        )
    trail.ok(f"clearance {principal.clearance.value} covers {needed.value}")

    for rule in [*server_rules, *tool_rules]:
        scope = _label(tool.name) if rule.tool is not None and tool else f"server {server.name}"
        if rule.allowed_groups is not None:
            shared = principal.groups & rule.allowed_groups
            if not shared:
                return trail.deny(
                    "policy.tool.allowed_groups" if rule.tool else "policy.server.allowed_groups",
                    f"policy limits {scope} to groups {_groups_text(rule.allowed_groups)}",
                )
            trail.ok(f"policy allows group {sorted(shared)[0]} on {scope}")
        if rule.require_approval or rule.second_approver:
            trail.approval.append(f"policy requires human approval for {scope}")

    if tool is not None:
        notes = tool.annotations
        if not notes.read_only:
            trail.approval.append(f"tool {tool.name} is not read-only")
        if notes.destructive and not notes.read_only:
            trail.approval.append(f"tool {tool.name} is destructive")

    decision = Decision(allowed=True, reasons=trail.reasons)
    decision.second_approver = any(r.second_approver for r in [*server_rules, *tool_rules])
    if trail.approval:
        decision.requires_approval = True
        decision.approval_reasons = trail.approval
        decision.reasons = [*trail.reasons, *trail.approval]
    return decision
