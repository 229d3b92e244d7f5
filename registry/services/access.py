"""'May user X use server Y (tool Z)?' and 'what may I use?', answered from the registry."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import (
    Classification,
    Decision,
    Environment,
    PolicyRule,
    Principal,
    ServerFacts,
    ToolFacts,
    evaluate,
)
from registry.auth import roles_for_groups
from registry.db.models import Policy, Server, ServerVersion, Tool
from registry.errors import Forbidden, NotFound
from registry.schemas.clients import (
    AuthzCheckRequest,
    AuthzCheckResponse,
    CatalogOut,
    CatalogServer,
    CatalogTool,
)
from registry.schemas.names import namespaced_tool_name
from registry.schemas.tools import annotations_from_mcp
from registry.services.common import check_limit, decode_cursor, encode_cursor, team_facts
from registry.services.discovery import gateway_url
from registry.services.facts import AccessFacts
from registry.services.policies import rule_of
from registry.settings import RegistrySettings


def server_facts(server: Server, published_version: str | None) -> ServerFacts:
    return ServerFacts(
        name=server.name,
        environment=Environment(server.environment),
        classification=Classification(server.classification),
        allowed_groups=frozenset(server.allowed_groups or []),
        owner=team_facts(server.team),
        published_version=published_version,
    )


def tool_facts(tool: Tool) -> ToolFacts:
    return ToolFacts(name=tool.name, annotations=annotations_from_mcp(tool.annotations or {}))


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
        if body.tool is not None:
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
        decision = evaluate(subject, entry.facts, list(entry.rules), facts_tool)
        return AuthzCheckResponse(
            allowed=decision.allowed,
            requires_approval=decision.requires_approval,
            reasons=decision.reasons,
            denied_by=decision.denied_by,
            subject=subject.subject,
        )

    def catalog(self, session: Session, principal: Principal, limit: int, cursor: str | None) -> CatalogOut:
        limit = check_limit(limit)
        after = decode_cursor(cursor, 1)
        last_name: str | None = after[0] if after else None
        batch_size = limit * 2
        collected: list[CatalogServer] = []
        exhausted = False
        # Policies filter after the query, so read candidates in batches until a page is full.
        while len(collected) < limit and not exhausted:
            stmt = (
                select(Server, ServerVersion)
                .join(ServerVersion, ServerVersion.server_id == Server.id)
                .where(ServerVersion.is_latest.is_(True))
                .order_by(Server.name)
                .limit(batch_size)
            )
            if last_name is not None:
                stmt = stmt.where(Server.name > last_name)
            batch = [(row[0], row[1]) for row in session.execute(stmt)]
            rules = self._rules(session, [s.id for s, _ in batch])
            tools = self._tools(session, [v.id for _, v in batch])
            for server, version in batch:
                last_name = server.name
                entry = self._entry(principal, server, version, rules[server.id], tools[version.id])
                if entry is not None:
                    collected.append(entry)
                if len(collected) == limit:
                    break
            exhausted = len(batch) < batch_size and (not batch or last_name == batch[-1][0].name)
        return CatalogOut(
            subject=principal.subject,
            servers=collected,
            next_cursor=None if exhausted or last_name is None else encode_cursor([last_name]),
        )

    def _rules(self, session: Session, server_ids: list[int]) -> dict[int, list[PolicyRule]]:
        out: dict[int, list[PolicyRule]] = defaultdict(list)
        for p in session.scalars(select(Policy).where(Policy.server_id.in_(server_ids))):
            out[p.server_id].append(rule_of(p))
        return out

    def _tools(self, session: Session, version_ids: list[int]) -> dict[int, list[Tool]]:
        out: dict[int, list[Tool]] = defaultdict(list)
        for t in session.scalars(select(Tool).where(Tool.version_id.in_(version_ids)).order_by(Tool.name)):
            out[t.version_id].append(t)
        return out

    def _entry(
        self, principal: Principal, server: Server, version: ServerVersion, rules: list[PolicyRule], tools: list[Tool]
    ) -> CatalogServer | None:
        facts = server_facts(server, version.version)
        server_decision = evaluate(principal, facts, rules)
        if not server_decision.allowed:
            return None
        usable: list[CatalogTool] = []
        for tool in tools:
            decision: Decision = evaluate(principal, facts, rules, tool_facts(tool))
            if decision.allowed:
                usable.append(
                    CatalogTool(
                        name=tool.name,
                        namespaced_name=namespaced_tool_name(server.short_name, tool.name),
                        description=tool.description,
                        requires_approval=decision.requires_approval,
                        reasons=decision.reasons[len(server_decision.reasons) :] or ["allowed with the server"],
                    )
                )
        return CatalogServer(
            name=server.name,
            short_name=server.short_name,
            title=server.title,
            description=server.description,
            version=version.version,
            team=server.team.name,
            support_channel=server.support_channel or server.team.support_channel,
            environment=Environment(server.environment),
            classification=Classification(server.classification),
            endpoint=gateway_url(self.settings.effective_public_url, server.short_name),
            reasons=server_decision.reasons,
            tools=usable,
        )


__all__ = ["Access", "server_facts", "tool_facts"]
