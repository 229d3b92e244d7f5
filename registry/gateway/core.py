"""The governed call path: who sees which tools, and what happens to every call.

For each caller the gateway computes a *view*: the tools of every approved server the caller
may use (or of one server, for `/servers/{short}/mcp`), with curated annotations, minus tools
whose upstream no longer serves the pinned definition (`probes`). Every call is rate-limited (denied
and unknown ones too), authorised again, approved by a person when policy or annotations say so
(`approvals`), audited (refused when the audit log cannot keep up), and timed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import mcp_types as types
from opentelemetry.trace import SpanKind
from sqlalchemy import select
from sqlalchemy.orm import Session

from governance import ClientRule, Decision, Principal, evaluate
from registry.context import RegistryContext
from registry.db.models import Server, ServerVersion
from registry.gateway import dbio
from registry.gateway.approvals import APPROVAL_ARG, APPROVAL_META, APPROVAL_SCHEMA, ApprovalGate
from registry.gateway.audit_writer import AuditWriter, audited_arguments
from registry.gateway.items import ItemGateway, build_item_view
from registry.gateway.metrics import GatewayMetrics
from registry.gateway.model import Outcome, Route, View, principal_key, shown
from registry.gateway.probes import Probes
from registry.gateway.ratelimit import Bucket, RateLimiter
from registry.gateway.tracing import Tracing
from registry.gateway.upstreams import Upstream, UpstreamError, error_result
from registry.schemas.names import SHORT_NAME, namespaced_tool_name, split_namespaced_tool_name
from registry.services.facts import MISSING, ItemEntry, ServerEntry, ToolEntry, client_rule, client_rules

log = logging.getLogger("bastion.gateway")

T = TypeVar("T")

MAX_TOOL_NAME = 128  # names beyond this are refused as unknown, never looked up
UNKNOWN_TOOL_LABEL = "(unknown)"
AUDIT_WAIT = 5.0  # seconds a call waits for room in a full audit queue before it is refused
ERROR_KINDS = frozenset({"tool", "upstream", "timeout", "unreachable", "invalid_arguments"})
# How a call to an upstream can fail, as the gateway labels it (upstreams.UpstreamError kinds, identity).
UPSTREAM_ERROR_KINDS = frozenset({"timeout", "unreachable", "protocol", "error", "identity", "invalid_arguments"})

__all__ = ["APPROVAL_ARG", "APPROVAL_META", "APPROVAL_SCHEMA", "GatewayCore", "principal_key"]


class GatewayCore:
    def __init__(
        self,
        ctx: RegistryContext,
        upstreams: dict[str, Upstream],
        limiter: RateLimiter,
        audit: AuditWriter,
        metrics: GatewayMetrics,
        remote_factory: Callable[[ServerEntry], Upstream],
        tracing: Tracing | None = None,
    ) -> None:
        self.ctx = ctx
        self.tracing = tracing or Tracing(None)
        self.settings = ctx.settings
        self.builtins = upstreams
        self.remotes: dict[str, Upstream] = {}
        self.remote_factory = remote_factory
        self.limiter = limiter
        self.audit = audit
        self.metrics = metrics
        # Long-lived upstream connections are held by tasks of the gateway's task group.
        self.task_group: Any = None
        # Exposed name → input schema, from views already built (see `input_schema`).
        self.schemas: dict[str, dict[str, Any]] = {}
        self.probes = Probes(ctx.db, self.upstream, self._published_entries, self._report_drift)
        self.approvals = ApprovalGate(ctx.db, self.settings, metrics)
        self.items = ItemGateway(self)
        self.audit_wait = AUDIT_WAIT
        self.log = log

    # --- database access off the event loop -------------------------------------------------

    async def _db(self, fn: Callable[[Session], T]) -> T:
        return await dbio.read(self.ctx.db, fn)

    db = _db

    def client_rules(self, session: Session, principal: Principal) -> list[ClientRule]:
        return client_rules(self.ctx.facts, session, principal)

    # --- upstreams and pinning -------------------------------------------------------------

    def upstream(self, entry: ServerEntry) -> Upstream | None:
        if entry.transport == "builtin":
            return self.builtins.get(entry.short_name)
        current = self.remotes.get(entry.name)
        if (
            current is None
            or getattr(current, "url", None) != entry.endpoint
            or getattr(current, "identity_mode", None) != entry.identity
        ):
            current = self.remote_factory(entry)
            if hasattr(current, "task_group"):
                current.task_group = self.task_group
            self.remotes[entry.name] = current
        return current

    def upstream_for(self, entry: ServerEntry) -> Upstream:
        upstream = self.upstream(entry)
        if upstream is None:
            raise UpstreamError("error", f"no builtin server named {entry.short_name!r} is installed")
        return upstream

    def _report_drift(self, entry: ServerEntry, tool: ToolEntry | ItemEntry, reason: str) -> None:
        self.audit.record(
            self.row(
                kind="integrity",
                principal=None,
                server=entry.name,
                tool=tool.name,
                arguments=None,
                outcome=Outcome(decision="withheld", rule="integrity.pin", outcome="withheld", error=reason),
                latency_ms=0.0,
                result_size=0,
                protocol=None,
            )
        )

    async def probe(self) -> None:
        """One round of health probes (see `probes`), and housekeeping of answered approval states."""
        await self.probes.probe_all()
        await self.approvals.prune()

    # --- views -----------------------------------------------------------------------------

    def _published_names(self, session: Session) -> list[str]:
        def load() -> list[str]:
            stmt = (
                select(Server.name)
                .join(ServerVersion, ServerVersion.server_id == Server.id)
                .where(ServerVersion.is_latest.is_(True))
                .order_by(Server.name)
            )
            return list(session.scalars(stmt))

        names: list[str] = self.ctx.facts.memo(session, "gateway:published", load)
        return names

    def name_for_short(self, session: Session, short: str) -> str | None:
        if not SHORT_NAME.fullmatch(short):
            return None  # no server has it; and a caller-chosen string never becomes a cache key

        def load() -> str | None:
            return session.scalar(select(Server.name).where(Server.short_name == short))

        name: str | None = self.ctx.facts.memo(session, f"gateway:short:{short}", load)
        return name

    def _published_entries(self, session: Session) -> list[ServerEntry]:
        entries = [self.ctx.facts.server(session, n) for n in self._published_names(session)]
        return [e for e in entries if e is not None]

    def entries_for(self, session: Session, short: str | None) -> list[ServerEntry]:
        names = self._published_names(session) if short is None else [self.name_for_short(session, short)]
        entries = [self.ctx.facts.server(session, n) for n in names if n is not None]
        return [e for e in entries if e is not None]

    def _view_key(self, principal: Principal, short: str | None) -> str:
        return f"gateway:view:{principal_key(principal)}:{short or '*'}:{self.probes.drift_epoch}"

    def build_view(self, session: Session, principal: Principal, short: str | None) -> View:
        client = client_rules(self.ctx.facts, session, principal)
        entries = self.entries_for(session, short)
        routes: dict[str, Route] = {}
        tools: list[types.Tool] = []
        for entry in entries:
            rules = list(entry.rules)
            if not evaluate(principal, entry.facts, rules, None, client).allowed:
                continue
            for tool in entry.tools.values():
                decision = evaluate(principal, entry.facts, rules, tool.facts, client)
                if not decision.allowed:
                    continue
                reason = self.probes.withheld(entry, tool)
                if reason is not None:
                    self.probes.report_drift(entry, tool, reason)
                    continue
                exposed = tool.name if short is not None else namespaced_tool_name(entry.short_name, tool.name)
                routes[exposed] = Route(entry, tool, exposed)
                exposed_tool = self._exposed_tool(entry, tool, exposed, decision)
                tools.append(exposed_tool)
                self.schemas[exposed] = exposed_tool.input_schema
        digest = hashlib.sha256(
            json.dumps(
                sorted((r.exposed, r.tool.content_hash, r.tool.effective_annotations) for r in routes.values()),
                sort_keys=True,
                default=str,
            ).encode()
        ).hexdigest()
        items = build_item_view(entries, principal, client, short, self._item_withheld)
        return View(routes=routes, tools=tools, fingerprint=digest, items=items)

    def _item_withheld(self, entry: ServerEntry, item: ItemEntry) -> str | None:
        reason = self.probes.withheld_item(entry, item)
        if reason is not None:
            self.probes.report_drift(entry, item, reason)
        return reason

    def _exposed_tool(self, entry: ServerEntry, tool: ToolEntry, exposed: str, decision: Decision) -> types.Tool:
        schema = tool.input_schema
        if decision.requires_approval:
            # Give function-calling clients a way to present an approval id.
            properties = dict(schema.get("properties") or {})
            properties[APPROVAL_ARG] = {
                "type": "string",
                "description": "Id of a granted approval, when retrying a call that was parked for approval.",
            }
            schema = {**schema, "properties": properties}
        annotations = {k: v for k, v in tool.effective_annotations.items() if k != "title"}
        return types.Tool(
            name=exposed,
            title=tool.title,
            description=tool.description,
            input_schema=schema,
            output_schema=tool.output_schema,
            annotations=types.ToolAnnotations(
                title=tool.effective_annotations.get("title"),
                read_only_hint=annotations.get("readOnlyHint"),
                destructive_hint=annotations.get("destructiveHint"),
                idempotent_hint=annotations.get("idempotentHint"),
                open_world_hint=annotations.get("openWorldHint"),
            ),
            _meta={"dev.bastion/server": entry.name, "dev.bastion/contentHash": tool.content_hash},
        )

    def input_schema(self, name: str) -> dict[str, Any] | None:
        """For the SDK's 2026-07-28 `Mcp-Param-*` header checks, which otherwise run the whole
        tools/list handler on every call. Not caller-scoped (the SDK asks before authorisation);
        None means there is nothing to check against."""
        return self.schemas.get(name)

    async def view(self, principal: Principal, short: str | None) -> View:
        cached = self.ctx.facts.peek(self._view_key(principal, short))
        if cached is not MISSING:
            view: View = cached
            return view
        entries = await self._db(lambda s: self.entries_for(s, short))
        await self.probes.ensure(entries)
        key = self._view_key(principal, short)
        view = await self._db(lambda s: self.ctx.facts.memo(s, key, lambda: self.build_view(s, principal, short)))
        return view

    async def explain(self, principal: Principal, short: str | None, name: str) -> tuple[str, str]:
        """Why ``name`` is not callable by this caller: (rule, message). Never echoes more than 80 characters
        of a name the caller chose."""
        label = shown(name)

        def work(session: Session) -> tuple[str, str]:
            if len(name) > MAX_TOOL_NAME:
                return "unknown-tool", f"unknown tool {label}: names are at most {MAX_TOOL_NAME} characters"
            if short is None:
                parts = split_namespaced_tool_name(name)
                if parts is None:
                    return "unknown-tool", f"unknown tool {label}: gateway tools are named server__tool"
                server_short, tool_name = parts
            else:
                server_short, tool_name = short, name
            server_name = self.name_for_short(session, server_short)
            entry = self.ctx.facts.server(session, server_name) if server_name else None
            if entry is None:
                return "unknown-tool", f"unknown tool {label}: no server {shown(server_short)}"
            tool = entry.tools.get(tool_name)
            if tool is None:
                return "unknown-tool", f"unknown tool {label}: {entry.name} has no published tool {shown(tool_name)}"
            client = client_rules(self.ctx.facts, session, principal)
            decision = evaluate(principal, entry.facts, list(entry.rules), tool.facts, client)
            if not decision.allowed:
                return decision.denied_by or "policy", f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"
            reason = self.probes.withheld(entry, tool)
            if reason is not None:
                return "integrity.pin", reason
            return "unknown-tool", f"tool {label} is not available"

        return await self._db(work)

    # --- the call ----------------------------------------------------------------------------

    def row(
        self,
        *,
        kind: str,
        principal: Principal | None,
        server: str | None,
        tool: str | None,
        arguments: dict[str, Any] | None,
        outcome: Outcome,
        latency_ms: float,
        result_size: int,
        protocol: str | None,
        minutes_saved: float = 0.0,
    ) -> dict[str, Any]:
        stored, digest, summarised = (
            audited_arguments(arguments, self.settings.audit_pii_keys) if arguments is not None else (None, None, False)
        )
        return {
            "at": datetime.now(UTC),
            "kind": kind,
            "subject": principal.subject if principal else "gateway",
            "groups": sorted(principal.groups) if principal else [],
            "client_id": principal.client_id if principal else None,
            "origin_client_id": principal.origin_client_id if principal else None,
            "server": server,
            "tool": tool,
            "arguments": stored,
            "arguments_hash": digest,
            "arguments_summarised": summarised,
            "decision": outcome.decision,
            "rule": outcome.rule,
            "outcome": outcome.outcome,
            "error": (outcome.error or None) and outcome.error[:1000],
            "latency_ms": latency_ms,
            "result_size": result_size,
            "approval_id": outcome.approval_id,
            "minutes_saved": minutes_saved if outcome.outcome == "ok" else 0.0,
            "protocol_version": protocol,
            "replica": self.settings.effective_replica_id,
            "trace_id": self.tracing.trace_id(),
        }

    def record_list(
        self,
        principal: Principal,
        short: str | None,
        view: View,
        protocol: str | None,
        *,
        method: str = "tools/list",
        count: int | None = None,
    ) -> None:
        """A `list` audit row: tools/list as before; prompts and resources lists name their method."""
        self.metrics.lists.inc()
        size = len(view.tools) if count is None else count
        with self.tracing.span("bastion.audit", {"bastion.audit.kind": "list"} if self.tracing.on else None):
            self.audit.record(
                self.row(
                    kind="list",
                    principal=principal,
                    server=None if short is None else self._server_of(view),
                    tool=None,
                    arguments=None if method == "tools/list" else {"method": method},
                    outcome=Outcome(extra={"tools": size}),
                    latency_ms=0.0,
                    result_size=size,
                    protocol=protocol,
                )
            )

    @staticmethod
    def _server_of(view: View) -> str | None:
        route = next(iter(view.routes.values()), None)
        return route.entry.name if route else None

    async def call(
        self,
        principal: Principal,
        short: str | None,
        params: types.CallToolRequestParams,
        *,
        protocol: str | None,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult:
        started = time.perf_counter()
        arguments = dict(params.arguments or {})
        approval_id = arguments.pop(APPROVAL_ARG, None)
        if approval_id is None and params.meta:
            approval_id = dict(params.meta).get(APPROVAL_META)
        outcome = Outcome()
        routed: list[Route] = []
        result: types.CallToolResult | types.InputRequiredResult
        try:
            result = await self._call(principal, short, params, arguments, approval_id, outcome, routed,
                                       ask_user=ask_user, modern=modern)  # fmt: skip
        except Exception:
            log.exception("gateway failed on tools/call %s", shown(params.name))
            outcome.outcome, outcome.error = "error", "internal gateway error"
            result = error_result("The gateway failed to handle this call; the error is in its log.")
        except BaseException:
            # Cancelled (the client went away, or the gateway is stopping): the row still says it was asked.
            outcome.outcome, outcome.error = "cancelled", "the call was cancelled before it completed"
            self._record_call(principal, routed[0] if routed else None, params, arguments, outcome, started, None,
                              protocol)  # fmt: skip
            raise
        self._record_call(principal, routed[0] if routed else None, params, arguments, outcome, started, result,
                          protocol)  # fmt: skip
        return result

    async def _call(
        self,
        principal: Principal,
        short: str | None,
        params: types.CallToolRequestParams,
        arguments: dict[str, Any],
        approval_id: object,
        outcome: Outcome,
        routed: list[Route],
        *,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Back-pressure, rate limit, the refusal of an unknown or hidden tool, then the authorised call.
        Sets ``outcome``; appends the route it found to ``routed``."""
        view = await self.view(principal, short)
        route = view.routes.get(params.name)
        if route is not None:
            routed.append(route)
        if not await self.audit.room(AUDIT_WAIT):
            # Fail closed: a call that cannot be audited does not run.
            outcome.decision, outcome.rule, outcome.outcome = "denied", "audit_backlog", "refused"
            outcome.error = "the audit log is behind; the call was not run"
            self.metrics.denials.labels("audit_backlog").inc()
            return error_result("Not run: the gateway cannot write its audit log right now; retry shortly.",
                                error="audit_backlog", retryAfterSeconds=AUDIT_WAIT)  # fmt: skip
        if (limited := await self._rate_limit(principal, route, outcome)) is not None:
            return limited
        if route is None:
            with self.tracing.span("bastion.policy"):
                rule, message = await self.explain(principal, short, params.name)
                self.tracing.annotate({"bastion.decision": "denied", "bastion.rule": rule})
            outcome.decision, outcome.rule, outcome.outcome, outcome.error = "denied", rule, "denied", message
            self.metrics.denials.labels(rule).inc()
            return error_result(message, error="denied", rule=rule)
        return await self._authorised_call(
            principal, route, arguments, approval_id, outcome, params, ask_user=ask_user, modern=modern
        )

    def _record_call(
        self,
        principal: Principal,
        route: Route | None,
        params: types.CallToolRequestParams,
        arguments: dict[str, Any],
        outcome: Outcome,
        started: float,
        result: types.CallToolResult | types.InputRequiredResult | None,
        protocol: str | None,
    ) -> None:
        """The call's audit row and metrics (a cancelled call has no result)."""
        elapsed = time.perf_counter() - started
        size = 0
        if isinstance(result, types.InputRequiredResult):
            outcome.outcome = "input_required"
        elif result is not None:
            # The text the model reads (builtins' structured content is the same data again): counted, not
            # serialised once more on the request path.
            size = sum(len(c.text) for c in result.content if isinstance(c, types.TextContent))
            if outcome.outcome == "ok" and result.is_error:
                outcome.outcome = "error"
        if self.tracing.on:
            self._annotate_request(route, outcome)
        with self.tracing.span("bastion.audit", {"bastion.audit.kind": "call"} if self.tracing.on else None):
            self.audit.record(
                self.row(
                    kind="call",
                    principal=principal,
                    server=route.entry.name if route else None,
                    tool=route.tool.name if route else params.name,
                    arguments=arguments,
                    outcome=outcome,
                    latency_ms=elapsed * 1000,
                    result_size=size,
                    protocol=protocol,
                    minutes_saved=route.tool.minutes_saved if route else 0.0,
                )
            )
        # Metrics carry registered names only: a caller-chosen name would mint a series per call.
        labels = (route.entry.name, route.tool.name) if route else ("-", UNKNOWN_TOOL_LABEL)
        self.metrics.calls.labels(*labels, outcome.outcome).inc()
        self.metrics.latency.labels(*labels).observe(elapsed)

    def _annotate_request(self, route: Route | None, outcome: Outcome) -> None:
        """The call's decision and outcome on the request span (registered names only: no caller-chosen text)."""
        attributes: dict[str, Any] = {"bastion.decision": outcome.decision, "bastion.outcome": outcome.outcome,
                                      "bastion.rule": outcome.rule}  # fmt: skip
        if route is not None:
            attributes |= {"bastion.server": route.entry.name, "bastion.tool": route.tool.name}
        if outcome.approval_id is not None:
            attributes["bastion.approval.id"] = outcome.approval_id
        self.tracing.annotate(attributes, None if outcome.outcome == "ok" else outcome.outcome)

    async def _rate_limit(
        self, principal: Principal, route: Route | None, outcome: Outcome
    ) -> types.CallToolResult | None:
        """Every call takes a token from the caller's bucket — denied and unknown ones too; a routed call also
        from its per-tool bucket (keyed by registered names only, so callers cannot mint buckets)."""
        bucket = None
        if route is not None:
            bucket = Bucket(
                f"tool:{principal.subject}:{route.entry.name}:{route.tool.name}",
                route.tool.rate_limit_per_minute or self.settings.rate_limit_per_tool,
                f"per user for {route.exposed}",
            )
        retry = await self.take_tokens(principal, bucket, outcome, "calls")
        if retry is None:
            return None
        return error_result(outcome.error or "", error="rate_limited", retryAfterSeconds=retry)

    async def take_tokens(
        self, principal: Principal, bucket: Bucket | None, outcome: Outcome, unit: str
    ) -> float | None:
        """A token from the caller's bucket and from ``bucket`` (a tool's or an item's). None when allowed;
        else the seconds to wait, with ``outcome`` set to the denial (its error names the bucket and rate)."""
        buckets = [Bucket(f"user:{principal.subject}", self.settings.rate_limit_per_user, "per user")]
        if bucket is not None:
            buckets.append(bucket)
        with self.tracing.span("bastion.rate_limit"):
            verdict = await self.limiter.take(buckets)
            if self.tracing.on:
                self.tracing.annotate(
                    {"bastion.rate_limit.buckets": len(buckets),
                     "bastion.decision": "allowed" if verdict.allowed else "denied",
                     "bastion.rule": None if verdict.allowed else "rate_limit"},
                    None if verdict.allowed else "rate_limited",
                )  # fmt: skip
        if verdict.allowed:
            return None
        assert verdict.bucket is not None
        outcome.decision, outcome.rule, outcome.outcome = "denied", "rate_limit", "rate_limited"
        outcome.error = (
            f"rate limit {verdict.bucket.label} ({verdict.bucket.rate_per_minute} {unit}/min) reached; "
            f"retry in {verdict.retry_after:.1f} s"
        )
        self.metrics.denials.labels("rate_limit").inc()
        return round(verdict.retry_after, 3)

    async def _authorised_call(
        self,
        principal: Principal,
        route: Route,
        arguments: dict[str, Any],
        approval_id: object,
        outcome: Outcome,
        params: types.CallToolRequestParams,
        *,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult:
        entry, tool = route.entry, route.tool
        # The view was authorised when built; re-evaluate for the decision details (cheap, pure).
        with self.tracing.span("bastion.policy"):
            decision = await self._decide(principal, entry, tool)
            if self.tracing.on:
                self.tracing.annotate(
                    {"bastion.server": entry.name, "bastion.tool": tool.name,
                     "bastion.decision": "allowed" if decision.allowed else "denied",
                     "bastion.rule": decision.denied_by, "bastion.approval.required": decision.requires_approval}
                )  # fmt: skip
        if not decision.allowed:
            outcome.decision, outcome.rule, outcome.outcome = "denied", decision.denied_by, "denied"
            outcome.error = f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"
            self.metrics.denials.labels(decision.denied_by or "policy").inc()
            return error_result(outcome.error, error="denied", rule=decision.denied_by)

        if decision.requires_approval:
            with self.tracing.span("bastion.approval"):
                gate = await self.approvals.check(
                    principal, route, arguments, approval_id, decision, outcome, params, ask_user, modern
                )
                if self.tracing.on:
                    self.tracing.annotate(
                        {"bastion.decision": outcome.decision, "bastion.rule": outcome.rule,
                         "bastion.approval.id": outcome.approval_id,
                         "bastion.outcome": "proceed" if gate is None else outcome.outcome}
                    )  # fmt: skip
            if gate is not None:
                return gate

        upstream = self.upstream(entry)
        if upstream is None:
            outcome.outcome, outcome.error = "error", f"no builtin server named {entry.short_name!r} is installed"
            self.metrics.errors.labels(entry.name, tool.name, "missing").inc()
            return error_result(outcome.error)
        attributes = self._upstream_attributes(entry, tool) if self.tracing.on else None
        with self.tracing.span("bastion.upstream", attributes, kind=SpanKind.CLIENT):
            result = await upstream.call_tool(tool.name, arguments, principal, outcome.approval_id)
            if self.tracing.on and result.is_error:
                # A fixed set of labels: a remote upstream's structured content is not ours to copy into spans.
                kind = str((result.structured_content or {}).get("error"))
                self.tracing.annotate({}, kind if kind in UPSTREAM_ERROR_KINDS else "tool_error")
        if result.is_error:
            structured = result.structured_content or {}
            kind = str(structured.get("error", "tool")) if route.entry.transport == "builtin" else "upstream"
            kind = kind if kind in ERROR_KINDS else "tool"  # labels stay a small, fixed set
            outcome.outcome = "error"
            outcome.error = "; ".join(c.text for c in result.content if isinstance(c, types.TextContent))[:1000]
            self.metrics.errors.labels(entry.name, tool.name, kind).inc()
        return result

    @staticmethod
    def _upstream_attributes(entry: ServerEntry, tool: ToolEntry) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool.name,
            "bastion.server": entry.name,
            "bastion.tool": tool.name,
            "bastion.transport": entry.transport,
        }
        if entry.transport != "builtin" and entry.endpoint:
            url = urlsplit(entry.endpoint)
            attributes["server.address"] = url.hostname or ""
            if url.port is not None:
                attributes["server.port"] = url.port
        return attributes

    def _client_rule(self, client_id: str, session: Session) -> ClientRule | None:
        return client_rule(self.ctx.facts, session, client_id)

    async def _decide(self, principal: Principal, entry: ServerEntry, tool: ToolEntry) -> Decision:
        rules = await self.client_rules_for(principal)
        return evaluate(principal, entry.facts, list(entry.rules), tool.facts, rules)

    async def client_rules_for(self, principal: Principal) -> list[ClientRule]:
        """The client rules of the caller's clients, from the cache when it is fresh."""
        rules: list[ClientRule] = []
        for client_id in (principal.client_id, principal.origin_client_id):
            if client_id is None:
                continue
            found: ClientRule | None = self.ctx.facts.peek(f"client:{client_id}")
            if found is MISSING:
                found = await self._db(functools.partial(self._client_rule, client_id))
            if found is not None:
                rules.append(found)
        return rules
