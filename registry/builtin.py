"""The registry's own MCP server (`dev.bastion/registry`): discovery and access checks as tools.

The gateway runs it in-process and sets the authenticated caller before each call.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel

from governance import Principal, current_principal
from registry.context import RegistryContext
from registry.errors import RegistryError
from registry.schemas.clients import AuthzCheckRequest, AuthzCheckResponse

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


class ServerHit(BaseModel):
    name: str
    title: str | None
    description: str
    version: str
    team: str
    support_channel: str
    endpoint: str
    tools: list[str]


class ServerSearchResult(BaseModel):
    servers: list[ServerHit]


def _caller() -> Principal:
    caller = current_principal.get()
    if caller is None:
        raise ToolError("no authenticated caller: call this tool through the Bastion gateway")
    return caller


def build(ctx: RegistryContext) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(
        "dev.bastion/registry",
        title="Bastion registry",
        description="Find approved MCP servers and check access before calling them.",
    )

    @server.tool(annotations=READ_ONLY)
    def search_servers(query: str = "", limit: int = 20) -> ServerSearchResult:
        """Find MCP servers you may use whose name, description or tools match the query."""
        if not 1 <= limit <= 100:
            raise ToolError("limit must be between 1 and 100")
        term = query.strip().lower()
        hits: list[ServerHit] = []
        cursor: str | None = None
        with ctx.db.session() as session:
            while len(hits) < limit:
                page = ctx.access.catalog(session, _caller(), 100, cursor)
                for entry in page.servers:
                    haystack = " ".join(
                        [entry.name, entry.title or "", entry.description]
                        + [f"{t.name} {t.description}" for t in entry.tools]
                    ).lower()
                    if term in haystack:
                        hits.append(
                            ServerHit(
                                name=entry.name,
                                title=entry.title,
                                description=entry.description,
                                version=entry.version,
                                team=entry.team,
                                support_channel=entry.support_channel,
                                endpoint=entry.endpoint,
                                tools=[t.namespaced_name for t in entry.tools],
                            )
                        )
                cursor = page.next_cursor
                if cursor is None:
                    break
        return ServerSearchResult(servers=hits[:limit])

    @server.tool(annotations=READ_ONLY)
    def check_access(server_name: str, tool: str | None = None) -> AuthzCheckResponse:
        """Whether you may use a server (or one of its tools), with the reasons."""
        with ctx.db.session() as session:
            try:
                return ctx.access.check(session, _caller(), AuthzCheckRequest(server=server_name, tool=tool))
            except RegistryError as exc:
                raise ToolError(exc.message) from None

    return server
