"""'May user X use server Y (tool Z)?' and 'what may I use?', answered from the registry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import ClientRule, PolicyRule, Principal, ToolFacts, evaluate
from registry.auth import roles_for_groups
from registry.db.models import Server, ServerVersion
from registry.errors import Forbidden, NotFound
from registry.schemas.clients import (
    AuthzCheckRequest,
    AuthzCheckResponse,
    CatalogOut,
    CatalogPrompt,
    CatalogResource,
    CatalogResourceTemplate,
    CatalogServer,
    CatalogTool,
)
from registry.schemas.names import namespaced_tool_name
from registry.services.common import check_limit, decode_cursor, encode_cursor
from registry.services.discovery import gateway_url
from registry.services.facts import AccessFacts, ItemEntry, ServerEntry, client_rule
from registry.settings import RegistrySettings


class Access:
    def __init__(self, settings: RegistrySettings, facts: AccessFacts) -> None:
        self.settings = settings
        self.facts = facts

    def _subject(self, caller: Principal, body: AuthzCheckRequest) -> Principal:
        if body.user is None and body.groups is None and body.clearance is None:
            return caller
        if not caller.is_admin:
            raise Forbidden("only admins may ask on behalf of another user", field="user")
        groups = frozenset(body.groups or [])
        return Principal(
            subject=body.user or caller.subject,
            groups=groups,
            clearance=body.clearance or self.settings.default_clearance,
            roles=roles_for_groups(self.settings, groups),
        )

    def check(self, session: Session, caller: Principal, body: AuthzCheckRequest) -> AuthzCheckResponse:
        subject = self._subject(caller, body)
        entry = self.facts.server(session, body.server)
        if entry is None:
            raise NotFound(f"server {body.server!r} does not exist", field="server")
        facts_tool: ToolFacts | None = None
        if body.prompt is not None or body.resource is not None:
            facts_tool = _item_facts(entry, body)
        elif body.tool is not None:
            if entry.published:
                tool = entry.tools.get(body.tool)
                if tool is None:
                    raise NotFound(
                        f"server {entry.name} (version {entry.facts.published_version}) has no tool {body.tool!r}",
                        field="tool",
                    )
                facts_tool = tool.facts
            else:
                facts_tool = ToolFacts(name=body.tool)
        client = client_rule(self.facts, session, subject.client_id)
        decision = evaluate(subject, entry.facts, list(entry.rules), facts_tool, client)
        return AuthzCheckResponse(
            allowed=decision.allowed,
            requires_approval=decision.requires_approval,
            reasons=decision.reasons,
            denied_by=decision.denied_by,
            subject=subject.subject,
        )

    def catalog(self, session: Session, principal: Principal, limit: int, cursor: str | None) -> CatalogOut:
        limit = check_limit(limit)
        after = decode_cursor(cursor, str)
        last_name: str | None = after[0] if after else None
        client = client_rule(self.facts, session, principal.client_id)
        batch_size = limit * 2
        collected: list[CatalogServer] = []
        exhausted = False
        # Policies filter after the query, so read candidates in batches until a page is full.
        while len(collected) < limit and not exhausted:
            stmt = (
                select(Server.name)
                .join(ServerVersion, ServerVersion.server_id == Server.id)
                .where(ServerVersion.is_latest.is_(True))
                .order_by(Server.name)
                .limit(batch_size)
            )
            if last_name is not None:
                stmt = stmt.where(Server.name > last_name)
            names = list(session.scalars(stmt))
            for name in names:
                last_name = name
                entry = self.facts.server(session, name)
                item = self._entry(principal, entry, client) if entry is not None else None
                if item is not None:
                    collected.append(item)
                if len(collected) == limit:
                    break
            exhausted = len(names) < batch_size and (not names or last_name == names[-1])
        return CatalogOut(
            subject=principal.subject,
            servers=collected,
            next_cursor=None if exhausted or last_name is None else encode_cursor([last_name]),
        )

    def _entry(self, principal: Principal, entry: ServerEntry, client: ClientRule | None) -> CatalogServer | None:
        rules = list(entry.rules)
        server_decision = evaluate(principal, entry.facts, rules, None, client)
        if not server_decision.allowed:
            return None
        usable: list[CatalogTool] = []
        for tool in entry.tools.values():
            decision = evaluate(principal, entry.facts, rules, tool.facts, client)
            if decision.allowed:
                usable.append(
                    CatalogTool(
                        name=tool.name,
                        namespaced_name=namespaced_tool_name(entry.short_name, tool.name),
                        description=tool.description,
                        requires_approval=decision.requires_approval,
                        reasons=decision.reasons[len(server_decision.reasons) :] or ["allowed with the server"],
                    )
                )

        def items(of: Mapping[str, ItemEntry]) -> list[dict[str, Any]]:
            return _usable_items(principal, entry, rules, client, len(server_decision.reasons), of)

        return CatalogServer(
            name=entry.name,
            short_name=entry.short_name,
            title=entry.title,
            description=entry.description,
            version=entry.facts.published_version or "",
            team=entry.team,
            support_channel=entry.support_channel,
            environment=entry.facts.environment,
            classification=entry.facts.classification,
            endpoint=gateway_url(self.settings.effective_public_url, entry.short_name),
            reasons=server_decision.reasons,
            tools=usable,
            prompts=[CatalogPrompt.model_validate(d) for d in items(entry.prompts)],
            resources=[CatalogResource.model_validate(d) for d in items(entry.resources)],
            resource_templates=[CatalogResourceTemplate.model_validate(d) for d in items(entry.templates)],
        )


def _item_facts(entry: ServerEntry, body: AuthzCheckRequest) -> ToolFacts:
    """The facts of the prompt or resource (or resource template) the check names, governed under its policy
    key (`prompt:NAME`, `resource:NAME`) as the gateway governs it."""
    kind, name = ("prompt", body.prompt) if body.prompt is not None else ("resource", body.resource)
    assert name is not None
    if not entry.published:
        raise NotFound(f"server {entry.name} has no published version: it serves no {kind}s", field=kind)
    found = entry.prompts.get(name) if kind == "prompt" else entry.resources.get(name) or entry.templates.get(name)
    if found is None:
        raise NotFound(
            f"server {entry.name} (version {entry.facts.published_version}) has no {kind} {name!r}", field=kind
        )
    return found.facts


def _usable_items(
    principal: Principal,
    entry: ServerEntry,
    rules: list[PolicyRule],
    client: ClientRule | None,
    server_reasons: int,
    items: Mapping[str, ItemEntry],
) -> list[dict[str, Any]]:
    """The prompts, resources or templates the caller may use (wire shapes), governed like tools under their
    policy keys (`prompt:NAME`, `resource:NAME`)."""
    out = []
    for item in items.values():
        decision = evaluate(principal, entry.facts, rules, item.facts, client)
        if decision.allowed:
            out.append(
                {
                    **item.definition,
                    "namespacedName": namespaced_tool_name(entry.short_name, item.name),
                    "requiresApproval": decision.requires_approval,
                    "reasons": decision.reasons[server_reasons:] or ["allowed with the server"],
                }
            )
    return out


__all__ = ["Access"]
