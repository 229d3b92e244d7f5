"""Prompts, resources and resource templates through the gateway, governed like tools.

A caller sees the prompts, resources and templates of the published versions of servers they may use (the
same `evaluate` as tools, with per-item rules keyed `prompt:NAME` / `resource:NAME`), minus any whose upstream
no longer serves the pinned definition. On `/mcp` names are namespaced like tools (`short__name`) and URIs
are prefixed with the server (`bastion://short/<upstream uri>`); on `/servers/{short}/mcp` both are as the
server registered them. A read or get is rate-limited, authorised again, audited and timed like a call.
Reads need no approval: an item whose policy asks for one is not served (fail closed), and says why.

A resource read is served only for a registered URI, or one a registered template admits (governance.uritemplate:
linear-time matching, only what an RFC 6570 expansion can produce, no dot segments or encoded separators);
anything else is refused without asking the upstream. A URI that is a registered resource is that resource,
even when a template would admit it too; a URI several templates admit needs the caller to be allowed on each.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from opentelemetry.trace import SpanKind

from governance import ClientRule, Decision, Principal, evaluate
from governance.uritemplate import UriTemplate, unsafe_reason
from registry.gateway.model import ItemRoute, ItemView, Outcome, shown
from registry.gateway.ratelimit import Bucket
from registry.gateway.upstreams import UpstreamError
from registry.schemas.names import namespaced_tool_name
from registry.services.facts import ItemEntry, ServerEntry

if TYPE_CHECKING:
    from registry.gateway.core import GatewayCore

# Implementation-defined JSON-RPC codes (-32000..-32019): what a refused read or get answers.
DENIED = -32010
RATE_LIMITED = -32011
UPSTREAM_FAILED = -32012
UNAVAILABLE = -32013
SCHEME = "bastion://"
MAX_URI = 2000  # longer URIs are refused unread, never matched or echoed
MAX_PROMPT_ARGUMENTS = 64
MAX_NAME = 128  # prompt names beyond this are refused unread, as tool names are


def exposed_uri(short: str, uri: str, namespaced: bool) -> str:
    return f"{SCHEME}{short}/{uri}" if namespaced else uri


def upstream_uri(uri: str, short: str | None) -> tuple[str, str] | None:
    """(server short name, upstream URI) of a URI a client sent; None when it names no server."""
    if short is not None:
        return short, uri
    if not uri.startswith(SCHEME):
        return None
    server, sep, rest = uri[len(SCHEME) :].partition("/")
    return (server, rest) if sep and server and rest else None


@functools.lru_cache(maxsize=4096)
def compiled(template: str) -> UriTemplate:
    """A registered template, compiled once (registered strings only: the cache is bounded by the registry)."""
    return UriTemplate(template)


def _fingerprint(routes: list[ItemRoute]) -> str:
    pairs = sorted((r.exposed, r.item.kind, r.item.content_hash) for r in routes)
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _meta(entry: ServerEntry, item: ItemEntry) -> dict[str, Any]:
    return {"dev.bastion/server": entry.name, "dev.bastion/contentHash": item.content_hash}


def build_item_view(
    entries: list[ServerEntry],
    principal: Principal,
    client: list[ClientRule],
    short: str | None,
    withheld: Callable[[ServerEntry, ItemEntry], str | None],
) -> ItemView:
    """What of the published prompts, resources and templates this caller may see (``short``: one server's)."""
    view = ItemView()
    for entry in entries:
        if not entry.has_items:
            continue
        rules = list(entry.rules)
        if not evaluate(principal, entry.facts, rules, None, client).allowed:
            continue
        namespaced = short is None
        for item in [*entry.prompts.values(), *entry.resources.values(), *entry.templates.values()]:
            decision = evaluate(principal, entry.facts, rules, item.facts, client)
            if not decision.allowed or decision.requires_approval or withheld(entry, item) is not None:
                continue
            d = item.definition
            if item.kind == "prompt":
                name = namespaced_tool_name(entry.short_name, item.name) if namespaced else item.name
                view.prompts[name] = ItemRoute(entry, item, name)
                view.prompt_list.append(
                    types.Prompt(
                        name=name,
                        title=d.get("title"),
                        description=d.get("description"),
                        arguments=[types.PromptArgument.model_validate(a) for a in d.get("arguments", [])],
                        _meta=_meta(entry, item),
                    )
                )
                continue
            name = namespaced_tool_name(entry.short_name, item.name) if namespaced else item.name
            shared: dict[str, Any] = {"name": name, "title": d.get("title"), "description": d.get("description"),
                                      "mime_type": d.get("mimeType"), "_meta": _meta(entry, item)}  # fmt: skip
            if item.kind == "resource":
                uri = exposed_uri(entry.short_name, d["uri"], namespaced)
                view.resources[uri] = ItemRoute(entry, item, uri)
                view.resource_list.append(types.Resource(uri=uri, **shared))
            else:
                template = exposed_uri(entry.short_name, d["uriTemplate"], namespaced)
                view.templates.append(ItemRoute(entry, item, template, compiled(d["uriTemplate"])))
                view.template_list.append(types.ResourceTemplate(uri_template=template, **shared))
    return dataclasses.replace(
        view,
        prompts_fingerprint=_fingerprint(list(view.prompts.values())),
        resources_fingerprint=_fingerprint([*view.resources.values(), *view.templates]),
    )


def _resources_for(entry: ServerEntry, uri: str) -> list[ItemEntry]:
    """The registered resource with this (upstream) URI; else every registered template that admits it."""
    exact = [item for item in entry.resources.values() if item.definition["uri"] == uri]
    if exact:
        return exact
    return [item for item in entry.templates.values() if compiled(item.definition["uriTemplate"]).matches(uri)]


def _refuse(code: int, message: str, **data: Any) -> MCPError:
    return MCPError(code=code, message=message, data=data or None)


class ItemGateway:
    """prompts/get and resources/read: the governed path (lists come from the view: `GatewayCore.view`)."""

    def __init__(self, core: GatewayCore) -> None:
        self.core = core

    # --- finding what was asked for ------------------------------------------------------------

    async def _explain(
        self, principal: Principal, short: str | None, server_short: str | None, kind: str, name: str | None
    ) -> tuple[str, str]:
        """Why an item is not served to this caller: (rule, message). Names only what it was asked for."""
        core = self.core

        def work(session: Any) -> tuple[str, str]:
            noun = "prompt" if kind == "prompt" else "resource"
            server_name = core.name_for_short(session, server_short) if server_short else None
            entry = core.ctx.facts.server(session, server_name) if server_name else None
            if entry is None:
                return "unknown", f"unknown {noun}: no server {shown(server_short or '')}"
            if kind == "prompt":
                found = entry.prompts.get(name) if name else None
                items = [found] if found else []
            else:
                items = _resources_for(entry, name) if name else []
            client = core.client_rules(session, principal)
            server_decision = evaluate(principal, entry.facts, list(entry.rules), None, client)
            if not server_decision.allowed:
                rule = server_decision.denied_by
                return rule or "policy", f"denied by rule {rule}: {server_decision.reasons[-1]}"
            if not items:
                return "unknown", f"unknown {noun}: {entry.name} publishes no matching {noun}"
            for item in items:  # the first refusal of any of them (a read needs every matching one)
                decision = evaluate(principal, entry.facts, list(entry.rules), item.facts, client)
                if not decision.allowed:
                    rule = decision.denied_by
                    return rule or "policy", f"denied by rule {rule}: {decision.reasons[-1]}"
                if decision.requires_approval:
                    return "approval", (
                        f"{noun} {item.name} of {entry.name} needs a person's approval by policy; the gateway asks "
                        "for approval of tool calls only, so it is not served"
                    )
                reason = core.probes.withheld_item(entry, item)
                if reason is not None:
                    return "integrity.pin", reason
            return "unknown", f"{noun} {shown(name or '')} is not available"

        return await core.db(work)

    def _resource_route(self, view: ItemView, short: str | None, uri: str) -> ItemRoute | None:
        """The route of a read, or None (refused: `_explain` says why). A registered resource's URI is that
        resource only; otherwise every registered template that admits the URI must be in the caller's view."""
        target = upstream_uri(uri, short)
        if target is None:
            return None
        server_short, inner = target
        route = view.resources.get(uri)
        if route is not None:
            return route
        routes = [*view.templates, *view.resources.values()]
        entry = next((r.entry for r in routes if r.entry.short_name == server_short), None)
        if entry is None:
            return None
        registered = _resources_for(entry, inner)
        if not registered or registered[0].kind == "resource":
            return None  # no such resource, or a registered resource this caller may not read
        admitted = [
            r for r in view.templates if r.entry.short_name == server_short and r.pattern and r.pattern.matches(inner)
        ]
        return admitted[0] if len(admitted) == len(registered) else None

    # --- the governed path -----------------------------------------------------------------------

    async def get_prompt(
        self, principal: Principal, short: str | None, params: types.GetPromptRequestParams, protocol: str | None
    ) -> types.GetPromptResult:
        arguments = dict(params.arguments or {})
        problem = None
        if len(params.name) > MAX_NAME:
            problem = f"unknown prompt: names are at most {MAX_NAME} characters"
        elif len(arguments) > MAX_PROMPT_ARGUMENTS:
            problem = f"at most {MAX_PROMPT_ARGUMENTS} prompt arguments"

        async def lookup(view: ItemView) -> tuple[ItemRoute | None, str | None, str | None]:
            route = view.prompts.get(params.name)
            if route is not None:
                return route, route.entry.short_name, route.item.name
            if short is not None:
                return None, short, params.name
            server, sep, name = params.name.partition("__")
            return None, server if sep else None, name if sep else None

        async def upstream(route: ItemRoute) -> types.GetPromptResult:
            return await self.core.upstream_for(route.entry).get_prompt(route.item.name, arguments, principal)

        result = await self._governed(
            "prompt", principal, short, params.name, arguments, protocol, lookup, upstream, problem
        )
        assert isinstance(result, types.GetPromptResult)
        return result

    async def read_resource(
        self, principal: Principal, short: str | None, params: types.ReadResourceRequestParams, protocol: str | None
    ) -> types.ReadResourceResult:
        uri = params.uri
        problem = None
        if len(uri) > MAX_URI:
            problem = f"unknown resource: URIs are at most {MAX_URI} characters"
        elif (unsafe := unsafe_reason(uri)) is not None:
            problem = f"unknown resource: the URI is not read because {unsafe}"

        async def lookup(view: ItemView) -> tuple[ItemRoute | None, str | None, str | None]:
            route = self._resource_route(view, short, uri)
            if route is not None:
                return route, route.entry.short_name, route.item.name
            target = upstream_uri(uri, short)
            # Not this caller's: `_explain` finds which registered resource the URI is, to say why.
            return None, target[0] if target else None, target[1] if target else None

        async def upstream(route: ItemRoute) -> types.ReadResourceResult:
            inner = upstream_uri(uri, short)
            assert inner is not None
            result = await self.core.upstream_for(route.entry).read_resource(inner[1], principal)
            # Contents are relayed under the URI the client asked for, and only those the upstream gave for the
            # URI read: contents labelled as another resource are not this read's (nor this caller's to see).
            contents = [c for c in result.contents if c.uri == inner[1]]
            if not contents:
                raise UpstreamError(
                    "protocol", f"upstream {route.entry.name} answered with no contents for the URI read"
                )
            for content in contents:
                content.uri = uri
            result.contents = contents
            return result

        result = await self._governed(
            "resource", principal, short, uri, {"uri": uri}, protocol, lookup, upstream, problem
        )
        assert isinstance(result, types.ReadResourceResult)
        return result

    async def _governed(
        self,
        kind: str,
        principal: Principal,
        short: str | None,
        asked: str,
        arguments: dict[str, Any],
        protocol: str | None,
        lookup: Callable[[ItemView], Awaitable[tuple[ItemRoute | None, str | None, str | None]]],
        upstream: Callable[[ItemRoute], Awaitable[types.GetPromptResult | types.ReadResourceResult]],
        problem: str | None = None,
    ) -> types.GetPromptResult | types.ReadResourceResult:
        """The request's one path: every outcome (refused unread, denied, failed, cancelled) is one audit row."""
        core = self.core
        started = time.perf_counter()
        outcome = Outcome()
        routed: list[ItemRoute] = []
        failure: MCPError | None = None
        result: types.GetPromptResult | types.ReadResourceResult | None = None
        try:
            try:
                result, failure = await self._serve(kind, principal, short, lookup, upstream, problem, outcome, routed)
            except UpstreamError as exc:
                outcome.outcome, outcome.error = "error", str(exc)
                failure = _refuse(UPSTREAM_FAILED, str(exc), error=exc.kind)
            except MCPError as exc:
                outcome.outcome, outcome.error = "error", exc.error.message[:1000]
                failure = exc
            except Exception:
                core.log.exception("gateway failed on %s %s", kind, shown(asked))
                outcome.outcome, outcome.error = "error", "internal gateway error"
                failure = _refuse(
                    UPSTREAM_FAILED, "The gateway failed to handle this request; the error is in its log."
                )
        except BaseException:
            # Cancelled (the client went away, or the gateway is stopping): the row still says it was asked.
            outcome.outcome, outcome.error = "cancelled", "the request was cancelled before it completed"
            raise
        finally:
            route = routed[0] if routed else None
            elapsed = time.perf_counter() - started
            with core.tracing.span("bastion.audit", {"bastion.audit.kind": kind} if core.tracing.on else None):
                core.audit.record(
                    core.row(
                        kind=kind,
                        principal=principal,
                        server=route.entry.name if route else None,
                        tool=route.item.name if route else asked[:64],
                        arguments=arguments,
                        outcome=outcome,
                        latency_ms=elapsed * 1000,
                        result_size=_size(result) if result is not None else 0,
                        protocol=protocol,
                    )
                )
            labels = (route.entry.name, route.item.name) if route else ("-", "(unknown)")
            core.metrics.calls.labels(*labels, outcome.outcome).inc()
            core.metrics.latency.labels(*labels).observe(elapsed)
        if failure is not None:
            raise failure
        assert result is not None
        return result

    async def _serve(
        self,
        kind: str,
        principal: Principal,
        short: str | None,
        lookup: Callable[[ItemView], Awaitable[tuple[ItemRoute | None, str | None, str | None]]],
        upstream: Callable[[ItemRoute], Awaitable[types.GetPromptResult | types.ReadResourceResult]],
        problem: str | None,
        outcome: Outcome,
        routed: list[ItemRoute],
    ) -> tuple[types.GetPromptResult | types.ReadResourceResult | None, MCPError | None]:
        """Back-pressure, rate limit, the refusals, then the upstream. Sets ``outcome``; appends the route."""
        core = self.core
        view = (await core.view(principal, short)).items
        route, server_short, name = (None, None, None) if problem else await lookup(view)
        if route is not None:
            routed.append(route)
        if not await core.audit.room(core.audit_wait):
            outcome.decision, outcome.rule, outcome.outcome = "denied", "audit_backlog", "refused"
            outcome.error = "the audit log is behind; not served"
            message = "Not served: the gateway cannot write its audit log right now; retry shortly."
            return None, _refuse(UNAVAILABLE, message, error="audit_backlog")
        if (limited := await self._rate_limit(principal, route, outcome)) is not None:
            return None, limited
        if problem is not None:
            outcome.decision, outcome.rule, outcome.outcome, outcome.error = "denied", "invalid", "denied", problem
            core.metrics.denials.labels("invalid").inc()
            return None, _refuse(INVALID_PARAMS, problem, error="invalid")
        if route is None:
            with core.tracing.span("bastion.policy"):
                rule, message = await self._explain(principal, short, server_short, kind, name)
            outcome.decision, outcome.rule, outcome.outcome, outcome.error = "denied", rule, "denied", message
            core.metrics.denials.labels(rule).inc()
            code = INVALID_PARAMS if rule == "unknown" else DENIED
            return None, _refuse(code, message, error="denied" if code == DENIED else "unknown", rule=rule)
        decision = await self._decide(principal, route)
        if not decision.allowed:  # the view was built a moment ago: a policy may have changed since
            outcome.decision, outcome.rule, outcome.outcome = "denied", decision.denied_by, "denied"
            outcome.error = f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"
            return None, _refuse(DENIED, outcome.error, error="denied", rule=decision.denied_by)
        attributes = {"bastion.server": route.entry.name, f"bastion.{kind}": route.item.name}
        with core.tracing.span("bastion.upstream", attributes, kind=SpanKind.CLIENT):
            return await upstream(route), None

    async def _decide(self, principal: Principal, route: ItemRoute) -> Decision:
        rules = await self.core.client_rules_for(principal)
        decision = evaluate(principal, route.entry.facts, list(route.entry.rules), route.item.facts, rules)
        if decision.allowed and decision.requires_approval:
            return Decision(allowed=False, reasons=[*decision.reasons, "approval is asked for tool calls only"],
                            denied_by="approval")  # fmt: skip
        return decision

    async def _rate_limit(self, principal: Principal, route: ItemRoute | None, outcome: Outcome) -> MCPError | None:
        bucket = None
        if route is not None:
            bucket = Bucket(
                f"item:{principal.subject}:{route.entry.name}:{route.item.policy_key}",
                route.item.rate_limit_per_minute or self.core.settings.rate_limit_per_tool,
                f"per user for {route.item.kind} {route.item.name}",
            )
        retry = await self.core.take_tokens(principal, bucket, outcome, "requests")
        if retry is None:
            return None
        return _refuse(RATE_LIMITED, outcome.error or "", error="rate_limited", retryAfterSeconds=retry)


def _size(result: types.GetPromptResult | types.ReadResourceResult) -> int:
    if isinstance(result, types.GetPromptResult):
        return sum(len(m.content.text) for m in result.messages if isinstance(m.content, types.TextContent))
    return sum(len(c.text) if isinstance(c, types.TextResourceContents) else len(c.blob) for c in result.contents)
