"""The gateway's MCP server: a low-level `Server` whose tools are computed per caller."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_REQUEST
from mcp_types.version import is_version_at_least
from opentelemetry.trace import StatusCode

from governance import Principal
from registry.gateway.core import APPROVAL_SCHEMA, GatewayCore, principal_key
from registry.gateway.model import View
from registry.gateway.tracing import TRACE_STATE_KEY, HttpStamp, Tracing, cut, meta_parent

log = logging.getLogger("bastion.gateway")

PRINCIPAL_KEY = "bastion.principal"
VIEW_KEY = "bastion.view"
MODERN = "2026-07-28"


def identity(ctx: ServerRequestContext[Any, Any]) -> tuple[Principal, str | None]:
    """The caller and view the HTTP layer authenticated for this message."""
    state = ctx.request.scope.get("state", {}) if ctx.request is not None else {}
    principal = state.get(PRINCIPAL_KEY)
    if not isinstance(principal, Principal):
        raise MCPError(code=INVALID_REQUEST, message="unauthenticated request reached the gateway")
    return principal, state.get(VIEW_KEY)


def _can_elicit_forms(capabilities: types.ClientCapabilities | None) -> bool:
    elicitation = capabilities.elicitation if capabilities is not None else None
    # A bare `elicitation: {}` (before modes existed) means form support; url-only does not.
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


class TracingMiddleware:
    """A SERVER span per inbound MCP request (notifications pass through), the parent of every stage's span.

    Its parent is the caller's trace context (the request's `_meta`, else the HTTP `traceparent` header); it
    starts when the HTTP request arrived, so that authentication (done at the HTTP edge) is its first child."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracing = tracing

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None:
            return await call_next(ctx)
        state = ctx.request.scope.get("state", {}) if ctx.request is not None else {}
        stamp = state.get(TRACE_STATE_KEY)
        stamp = stamp if isinstance(stamp, HttpStamp) else None
        name = ctx.params.get("name") if ctx.params else None
        target = cut(name) if isinstance(name, str) else None
        method = cut(ctx.method)  # an unknown method's name is the client's choice: bounded
        attributes: dict[str, Any] = {
            "mcp.method.name": method,
            "jsonrpc.request.id": cut(str(ctx.request_id)),
            "network.transport": "tcp",
            "network.protocol.name": "http",
        }
        if ctx.protocol_version:
            attributes["mcp.protocol.version"] = ctx.protocol_version
        connection = getattr(ctx.session, "_connection", None)
        if (session_id := getattr(connection, "session_id", None)) is not None:
            attributes["mcp.session.id"] = session_id
        if ctx.method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
            if target is not None:
                attributes["gen_ai.tool.name"] = target
        parent = meta_parent(ctx.meta) or (stamp.parent if stamp else None)
        span_name = f"{method} {target}" if target else method
        with self.tracing.request_span(span_name, attributes, parent, stamp.started if stamp else None) as span:
            if stamp is not None:
                self.tracing.stage("bastion.authentication", stamp.started, stamp.authenticated,
                                   {"bastion.auth.method": stamp.method, "bastion.outcome": "ok"})  # fmt: skip
            try:
                return await call_next(ctx)
            except MCPError as exc:
                code = str(exc.error.code)
                span.set_attributes({"error.type": code, "rpc.response.status_code": code})
                span.set_status(StatusCode.ERROR)
                raise
            except Exception as exc:
                span.set_attribute("error.type", type(exc).__qualname__)
                span.set_status(StatusCode.ERROR)
                raise


class GatewayServer(Server[Any]):
    def create_initialization_options(self, *args: Any, **kwargs: Any) -> InitializationOptions:
        # Sessions are told when the tools they may see change.
        if not args and "notification_options" not in kwargs:
            kwargs["notification_options"] = NotificationOptions(
                tools_changed=True, prompts_changed=True, resources_changed=True
            )
        return super().create_initialization_options(*args, **kwargs)


@dataclass
class _Tracked:
    principal: Principal
    view: str | None
    fingerprint: str
    prompts: str
    resources: str


class SessionTracker:
    """Remembers open 2025-11-25 sessions and pushes `tools/list_changed` (and `prompts/list_changed`,
    `resources/list_changed`) when what their caller may see changes."""

    def __init__(self, core: GatewayCore, interval: float = 1.0) -> None:
        self.core = core
        self.interval = interval
        self._sessions: weakref.WeakKeyDictionary[Connection, _Tracked] = weakref.WeakKeyDictionary()
        self.notified = 0

    def track(self, ctx: ServerRequestContext[Any, Any], principal: Principal, name: str | None, view: View) -> None:
        connection = getattr(ctx.session, "_connection", None)  # the SDK keeps it private
        if connection is None or connection.session_id is None:
            return  # stateless: there is no open channel to notify
        if connection in self._sessions:
            return  # tracked since its first list: the fingerprints are what it was last told
        items = view.items
        self._sessions[connection] = _Tracked(
            principal, name, view.fingerprint, items.prompts_fingerprint, items.resources_fingerprint
        )

    async def check(self) -> None:
        for connection, tracked in list(self._sessions.items()):
            try:
                view = await self.core.view(tracked.principal, tracked.view)
            except Exception:
                log.exception("could not recompute a session's tool view")
                continue
            changes = []
            if view.fingerprint != tracked.fingerprint:
                tracked.fingerprint = view.fingerprint
                changes.append(connection.send_tool_list_changed)
            if view.items.prompts_fingerprint != tracked.prompts:
                tracked.prompts = view.items.prompts_fingerprint
                changes.append(connection.send_prompt_list_changed)
            if view.items.resources_fingerprint != tracked.resources:
                tracked.resources = view.items.resources_fingerprint
                changes.append(connection.send_resource_list_changed)
            for send in changes:
                try:
                    await send()
                    self.notified += 1
                except Exception:
                    self._sessions.pop(connection, None)
                    break

    async def run(self) -> None:
        while True:
            await anyio.sleep(self.interval)
            await self.check()


def build_server(core: GatewayCore, sessions: SessionTracker, version: str) -> GatewayServer:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal, view_name = identity(ctx)
        view = await core.view(principal, view_name)
        core.record_list(principal, view_name, view, ctx.protocol_version)
        sessions.track(ctx, principal, view_name, view)
        return types.ListToolsResult(tools=view.tools)

    async def item_view(ctx: ServerRequestContext[Any, Any], method: str, count: Callable[[View], int]) -> View:
        principal, view_name = identity(ctx)
        view = await core.view(principal, view_name)
        core.record_list(principal, view_name, view, ctx.protocol_version, method=method, count=count(view))
        sessions.track(ctx, principal, view_name, view)
        return view

    async def list_prompts(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        view = await item_view(ctx, "prompts/list", lambda v: len(v.items.prompt_list))
        return types.ListPromptsResult(prompts=view.items.prompt_list)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        view = await item_view(ctx, "resources/list", lambda v: len(v.items.resource_list))
        return types.ListResourcesResult(resources=view.items.resource_list)

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        view = await item_view(ctx, "resources/templates/list", lambda v: len(v.items.template_list))
        return types.ListResourceTemplatesResult(resource_templates=view.items.template_list)

    async def get_prompt(
        ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        principal, view_name = identity(ctx)
        return await core.items.get_prompt(principal, view_name, params, ctx.protocol_version)

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        principal, view_name = identity(ctx)
        return await core.items.read_resource(principal, view_name, params, ctx.protocol_version)

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        principal, view_name = identity(ctx)
        capabilities = ctx.session.client_capabilities
        modern = is_version_at_least(ctx.protocol_version, MODERN)
        ask_user = None
        if not modern and ctx.session.can_send_request and _can_elicit_forms(capabilities):

            async def ask_user(message: str) -> types.ElicitResult:
                return await ctx.session.elicit_form(message, APPROVAL_SCHEMA, related_request_id=ctx.request_id)

        return await core.call(
            principal,
            view_name,
            params,
            protocol=ctx.protocol_version,
            ask_user=ask_user,
            modern=modern and _can_elicit_forms(capabilities),
        )

    server = GatewayServer(
        "bastion-gateway",
        version=version,
        title="Bastion gateway",
        instructions="Every approved tool you may use, governed: calls are authorised, rate-limited, audited, "
        "and risky ones need a person's approval.",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        get_tool_input_schema=core.input_schema,
    )
    security = RequestStateSecurity(
        keys=core.settings.state_keys(),
        ttl=core.settings.approval_ttl,
        bind_principal=lambda ctx: principal_key(identity(ctx)[0]),
    )
    if core.tracing.on:
        # Ours replaces the SDK's span per message (which would go to the process-wide provider, unparented).
        server.middleware = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
        server.middleware.insert(0, TracingMiddleware(core.tracing))
    server.middleware.append(RequestStateBoundary(security, default_audience="bastion-gateway"))
    return server
