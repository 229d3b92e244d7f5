"""The governed call path: who sees which tools, and what happens to every call.

For each caller the gateway computes a *view*: the tools of every approved server the caller
may use (or of one server, for `/servers/{short}/mcp`), with curated annotations, minus tools
whose upstream no longer serves the pinned definition. Every call is authorised again,
rate-limited, approved by a person when policy or annotations say so, audited, and timed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import mcp_types as types
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governance import ClientRule, Decision, Principal, arguments_hash, evaluate, redact
from registry.context import RegistryContext
from registry.db import revision
from registry.db.models import Server, ServerVersion
from registry.errors import RegistryError
from registry.gateway.audit_writer import AuditWriter
from registry.gateway.metrics import GatewayMetrics
from registry.gateway.ratelimit import Bucket, RateLimiter
from registry.gateway.upstreams import Upstream, UpstreamError, error_result
from registry.schemas.names import namespaced_tool_name, split_namespaced_tool_name
from registry.schemas.tools import served_hash
from registry.services import approvals
from registry.services.facts import MISSING, ServerEntry, ToolEntry, client_rule

log = logging.getLogger("bastion.gateway")

APPROVAL_ARG = "_approval_id"
APPROVAL_META = "dev.bastion/approvalId"
ELICIT_KEY = "bastion.approval"
ELICIT_STATE = "bastion-approval:v1"
APPROVAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "approve": {
            "type": "boolean",
            "title": "Run this call",
            "description": "Tick to let the gateway run the call exactly as shown.",
        }
    },
    "required": ["approve"],
}

T = TypeVar("T")


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
    raw = f"{p.subject}|{','.join(sorted(p.groups))}|{p.clearance.value}|{p.client_id}|{scope}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


class GatewayCore:
    def __init__(
        self,
        ctx: RegistryContext,
        upstreams: dict[str, Upstream],
        limiter: RateLimiter,
        audit: AuditWriter,
        metrics: GatewayMetrics,
        remote_factory: Callable[[ServerEntry], Upstream],
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.builtins = upstreams
        self.remotes: dict[str, Upstream] = {}
        self.remote_factory = remote_factory
        self.limiter = limiter
        self.audit = audit
        self.metrics = metrics
        self.served: dict[str, Served] = {}
        # Long-lived upstream connections are held by tasks of the gateway's task group.
        self.task_group: Any = None
        # Exposed name → input schema, from views already built (see `input_schema`).
        self.schemas: dict[str, dict[str, Any]] = {}
        self.drift_epoch = 0
        self._reported_drift: set[tuple[str, str, str | None]] = set()

    # --- database access off the event loop -------------------------------------------------

    async def _db(self, fn: Callable[[Session], T]) -> T:
        def job() -> T:
            with self.ctx.db.read() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(job)

    async def _tx(self, fn: Callable[[Session], T]) -> T:
        def job() -> T:
            with self.ctx.db.transaction() as session:
                return fn(session)

        return await anyio.to_thread.run_sync(job)

    # --- upstreams and pinning -------------------------------------------------------------

    def upstream(self, entry: ServerEntry) -> Upstream | None:
        if entry.transport == "builtin":
            return self.builtins.get(entry.short_name)
        current = self.remotes.get(entry.name)
        if current is None or getattr(current, "url", None) != entry.endpoint:
            current = self.remote_factory(entry)
            if hasattr(current, "task_group"):
                current.task_group = self.task_group
            self.remotes[entry.name] = current
        return current

    async def refresh_served(self, entry: ServerEntry) -> Served:
        """Ask the upstream what it serves now; detect definitions that drifted from the pins."""
        upstream = self.upstream(entry)
        state = self.served.setdefault(entry.name, Served())
        if upstream is None:
            state.tools, state.error = None, f"no builtin server named {entry.short_name!r} is installed"
            return state
        try:
            tools = await upstream.list_tools()
        except UpstreamError as exc:
            state.error, state.checked_at = str(exc), time.monotonic()
            return state
        now_serving = {t.name: served_hash(t) for t in tools}
        if now_serving != state.tools:
            state.tools = now_serving
            self.drift_epoch += 1
        state.error, state.checked_at = None, time.monotonic()
        return state

    async def ensure_served(self, entries: list[ServerEntry]) -> None:
        unknown = [e for e in entries if e.name not in self.served and e.published]
        for entry in unknown:
            await self.refresh_served(entry)

    def withheld(self, entry: ServerEntry, tool: ToolEntry) -> str | None:
        """Why a tool is held back because its upstream serves something other than the pin."""
        state = self.served.get(entry.name)
        if state is None or state.tools is None:
            return None  # not known (unreachable): listed, and calls fail with the reason
        served = state.tools.get(tool.name)
        if served == tool.content_hash:
            return None
        if served is None:
            return f"upstream {entry.name} no longer serves tool {tool.name}"
        return (
            f"upstream {entry.name} serves a changed definition of {tool.name} "
            f"(pinned {tool.content_hash[:19]}…, served {served[:19]}…); withheld until a new version is approved"
        )

    def report_drift(self, entry: ServerEntry, tool: ToolEntry, reason: str) -> None:
        state = self.served.get(entry.name)
        observed = state.tools.get(tool.name) if state and state.tools else None
        key = (entry.name, tool.name, observed)
        if key in self._reported_drift:
            return
        self._reported_drift.add(key)
        log.warning("integrity: %s", reason)
        self.audit.record(
            self._row(
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
        def load() -> str | None:
            return session.scalar(select(Server.name).where(Server.short_name == short))

        name: str | None = self.ctx.facts.memo(session, f"gateway:short:{short}", load)
        return name

    def entries_for(self, session: Session, short: str | None) -> list[ServerEntry]:
        names = self._published_names(session) if short is None else [self.name_for_short(session, short)]
        entries = [self.ctx.facts.server(session, n) for n in names if n is not None]
        return [e for e in entries if e is not None]

    def _view_key(self, principal: Principal, short: str | None) -> str:
        return f"gateway:view:{principal_key(principal)}:{short or '*'}:{self.drift_epoch}"

    def build_view(self, session: Session, principal: Principal, short: str | None) -> View:
        client = client_rule(self.ctx.facts, session, principal.client_id)
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
                reason = self.withheld(entry, tool)
                if reason is not None:
                    self.report_drift(entry, tool, reason)
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
        return View(routes=routes, tools=tools, fingerprint=digest)

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
        await self.ensure_served(entries)
        key = self._view_key(principal, short)
        view = await self._db(lambda s: self.ctx.facts.memo(s, key, lambda: self.build_view(s, principal, short)))
        return view

    async def explain(self, principal: Principal, short: str | None, name: str) -> tuple[str, str]:
        """Why ``name`` is not callable by this caller: (rule, message)."""

        def work(session: Session) -> tuple[str, str]:
            if short is None:
                parts = split_namespaced_tool_name(name)
                if parts is None:
                    return "unknown-tool", f"unknown tool {name!r}: gateway tools are named server__tool"
                server_short, tool_name = parts
            else:
                server_short, tool_name = short, name
            server_name = self.name_for_short(session, server_short)
            entry = self.ctx.facts.server(session, server_name) if server_name else None
            if entry is None:
                return "unknown-tool", f"unknown tool {name!r}: no server {server_short!r}"
            tool = entry.tools.get(tool_name)
            if tool is None:
                return "unknown-tool", f"unknown tool {name!r}: {entry.name} has no published tool {tool_name!r}"
            client = client_rule(self.ctx.facts, session, principal.client_id)
            decision = evaluate(principal, entry.facts, list(entry.rules), tool.facts, client)
            if not decision.allowed:
                return decision.denied_by or "policy", f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"
            reason = self.withheld(entry, tool)
            if reason is not None:
                return "integrity.pin", reason
            return "unknown-tool", f"tool {name!r} is not available"

        return await self._db(work)

    # --- the call ----------------------------------------------------------------------------

    def _row(
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
        return {
            "at": datetime.now(UTC),
            "kind": kind,
            "subject": principal.subject if principal else "gateway",
            "groups": sorted(principal.groups) if principal else [],
            "client_id": principal.client_id if principal else None,
            "server": server,
            "tool": tool,
            "arguments": redact(arguments, self.settings.audit_pii_keys) if arguments is not None else None,
            "arguments_hash": arguments_hash(arguments) if arguments is not None else None,
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
        }

    def record_list(self, principal: Principal, short: str | None, view: View, protocol: str | None) -> None:
        self.metrics.lists.inc()
        self.audit.record(
            self._row(
                kind="list",
                principal=principal,
                server=None if short is None else self._server_of(view),
                tool=None,
                arguments=None,
                outcome=Outcome(extra={"tools": len(view.tools)}),
                latency_ms=0.0,
                result_size=len(view.tools),
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
        route: Route | None = None
        result: types.CallToolResult | types.InputRequiredResult
        try:
            view = await self.view(principal, short)
            route = view.routes.get(params.name)
            if route is None:
                rule, message = await self.explain(principal, short, params.name)
                outcome = Outcome(decision="denied", rule=rule, outcome="denied", error=message)
                self.metrics.denials.labels(rule).inc()
                result = error_result(message, error="denied", rule=rule)
            else:
                result = await self._authorised_call(
                    principal, route, arguments, approval_id, outcome, params, ask_user=ask_user, modern=modern
                )
        except Exception:
            log.exception("gateway failed on tools/call %s", params.name)
            outcome.outcome, outcome.error = "error", "internal gateway error"
            result = error_result("The gateway failed to handle this call; the error is in its log.")

        elapsed = time.perf_counter() - started
        if isinstance(result, types.InputRequiredResult):
            outcome.outcome, size = "input_required", 0
        else:
            size = len(result.__pydantic_serializer__.to_json(result))
            if outcome.outcome == "ok" and result.is_error:
                outcome.outcome = "error"
        server_name = route.entry.name if route else None
        tool_name = route.tool.name if route else params.name
        self.audit.record(
            self._row(
                kind="call",
                principal=principal,
                server=server_name,
                tool=tool_name,
                arguments=arguments,
                outcome=outcome,
                latency_ms=elapsed * 1000,
                result_size=size,
                protocol=protocol,
                minutes_saved=route.tool.minutes_saved if route else 0.0,
            )
        )
        labels = (server_name or "-", tool_name)
        self.metrics.calls.labels(*labels, outcome.outcome).inc()
        self.metrics.latency.labels(*labels).observe(elapsed)
        return result

    async def _authorised_call(
        self,
        principal: Principal,
        route: Route,
        arguments: dict[str, Any],
        approval_id: str | None,
        outcome: Outcome,
        params: types.CallToolRequestParams,
        *,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult:
        entry, tool = route.entry, route.tool
        # The view was authorised when built; re-evaluate for the decision details (cheap, pure).
        decision = await self._decide(principal, entry, tool)
        if not decision.allowed:
            outcome.decision, outcome.rule, outcome.outcome = "denied", decision.denied_by, "denied"
            outcome.error = f"denied by rule {decision.denied_by}: {decision.reasons[-1]}"
            self.metrics.denials.labels(decision.denied_by or "policy").inc()
            return error_result(outcome.error, error="denied", rule=decision.denied_by)

        verdict = await self.limiter.take(
            [
                Bucket(f"user:{principal.subject}", self.settings.rate_limit_per_user, "per user"),
                Bucket(
                    f"tool:{principal.subject}:{entry.name}:{tool.name}",
                    tool.rate_limit_per_minute or self.settings.rate_limit_per_tool,
                    f"per user for {route.exposed}",
                ),
            ]
        )
        if not verdict.allowed:
            assert verdict.bucket is not None
            outcome.decision, outcome.rule, outcome.outcome = "denied", "rate_limit", "rate_limited"
            outcome.error = (
                f"rate limit {verdict.bucket.label} ({verdict.bucket.rate_per_minute} calls/min) reached; "
                f"retry in {verdict.retry_after:.1f} s"
            )
            self.metrics.denials.labels("rate_limit").inc()
            return error_result(outcome.error, error="rate_limited", retryAfterSeconds=round(verdict.retry_after, 3))

        if decision.requires_approval:
            gate = await self._approve(
                principal, route, arguments, approval_id, decision, outcome, params, ask_user, modern
            )
            if gate is not None:
                return gate

        upstream = self.upstream(entry)
        if upstream is None:
            outcome.outcome, outcome.error = "error", f"no builtin server named {entry.short_name!r} is installed"
            self.metrics.errors.labels(entry.name, tool.name, "missing").inc()
            return error_result(outcome.error)
        result = await upstream.call_tool(tool.name, arguments, principal)
        if result.is_error:
            structured = result.structured_content or {}
            kind = str(structured.get("error", "tool"))
            outcome.outcome = "error"
            outcome.error = "; ".join(c.text for c in result.content if isinstance(c, types.TextContent))[:1000]
            self.metrics.errors.labels(entry.name, tool.name, kind).inc()
        return result

    async def _decide(self, principal: Principal, entry: ServerEntry, tool: ToolEntry) -> Decision:
        key = f"client:{principal.client_id}"
        client = self.ctx.facts.peek(key) if principal.client_id else None
        if client is MISSING:
            client = await self._db(lambda s: client_rule(self.ctx.facts, s, principal.client_id))
        rule: ClientRule | None = client
        return evaluate(principal, entry.facts, list(entry.rules), tool.facts, rule)

    async def _approve(
        self,
        principal: Principal,
        route: Route,
        arguments: dict[str, Any],
        approval_id: str | None,
        decision: Decision,
        outcome: Outcome,
        params: types.CallToolRequestParams,
        ask_user: Callable[[str], Any] | None,
        modern: bool,
    ) -> types.CallToolResult | types.InputRequiredResult | None:
        """Return None when the call may proceed; otherwise the result to send instead."""
        entry, tool = route.entry, route.tool
        why = "; ".join(decision.approval_reasons)
        if approval_id is not None:
            try:
                granted = await self._tx(
                    lambda s: approvals.consume(
                        s, str(approval_id), principal, server=entry.name, tool=tool.name, arguments=arguments
                    )
                )
            except RegistryError as exc:
                outcome.decision, outcome.rule, outcome.outcome, outcome.error = (
                    "denied",
                    "approval",
                    "denied",
                    exc.message,
                )
                outcome.approval_id = str(approval_id)
                self.metrics.approvals.labels("queue", "refused").inc()
                return error_result(exc.message, error="approval", approvalId=str(approval_id))
            outcome.decision, outcome.approval_id = f"approved-by:{granted.decided_by}", granted.id
            self.metrics.approvals.labels("queue", "used").inc()
            return None

        message = self._approval_message(route, arguments, why)
        if not decision.second_approver and modern and ask_user is None:
            # 2026-07-28: ask through input_required; the sealed state binds the answer to this call.
            answer = (params.input_responses or {}).get(ELICIT_KEY)
            if params.request_state == ELICIT_STATE and isinstance(answer, types.ElicitResult):
                return self._judge(answer, outcome, "input_required")
            self.metrics.approvals.labels("input_required", "asked").inc()
            outcome.decision = "awaiting-user"
            return types.InputRequiredResult(
                input_requests={
                    ELICIT_KEY: types.ElicitRequest(
                        params=types.ElicitRequestFormParams(message=message, requested_schema=APPROVAL_SCHEMA)
                    )
                },
                request_state=ELICIT_STATE,
            )
        if not decision.second_approver and ask_user is not None:
            self.metrics.approvals.labels("elicitation", "asked").inc()
            try:
                with anyio.fail_after(self.settings.approval_ttl):
                    answer = await ask_user(message)
            except TimeoutError:
                answer = types.ElicitResult(action="cancel")
            return self._judge(answer, outcome, "elicitation")

        approval = await self._tx(
            lambda s: approvals.park(
                s,
                principal,
                server=entry.name,
                tool=tool.name,
                arguments=arguments,
                reasons=decision.approval_reasons,
                second_approver=decision.second_approver,
                ttl_seconds=self.settings.approval_ttl,
                pii_keys=self.settings.audit_pii_keys,
            )
        )
        self.metrics.approvals.labels("queue", "parked").inc()
        outcome.decision, outcome.outcome, outcome.approval_id = "awaiting", "awaiting_approval", approval.id
        approver = (
            "someone other than you (admin or team " + entry.team + ")"
            if decision.second_approver
            else ("an admin or team " + entry.team)
        )
        text = (
            f"Not run: {route.exposed} needs approval ({why}). Approval {approval.id} is pending until "
            f"{approval.expires_at.isoformat()}. Once {approver} approves it (POST /admin/v1/approvals/decide), "
            f'call {route.exposed} again with the same arguments plus "{APPROVAL_ARG}": "{approval.id}".'
        )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content={
                "status": "awaiting_approval",
                "approvalId": approval.id,
                "expiresAt": approval.expires_at.isoformat(),
                "reasons": decision.approval_reasons,
            },
            is_error=True,
        )

    def _approval_message(self, route: Route, arguments: dict[str, Any], why: str) -> str:
        shown = json.dumps(redact(arguments, self.settings.audit_pii_keys), indent=2, sort_keys=True, default=str)
        return (
            f"Approve {route.exposed} on {route.entry.name}?\nArguments:\n{shown}\nApproval is needed because: {why}."
        )

    def _judge(self, answer: types.ElicitResult, outcome: Outcome, mode: str) -> types.CallToolResult | None:
        approved = answer.action == "accept" and bool((answer.content or {}).get("approve"))
        self.metrics.approvals.labels(mode, "approved" if approved else answer.action).inc()
        if approved:
            outcome.decision = f"approved-by:caller ({mode})"
            return None
        outcome.decision, outcome.rule, outcome.outcome = "denied", "approval", "declined"
        outcome.error = f"the call was not approved ({answer.action})"
        return error_result(f"Not run: {outcome.error}.", error="declined")

    # --- health ----------------------------------------------------------------------------

    async def probe(self) -> None:
        """Probe every upstream once (builtins too: their code can change under a pinned
        version); record status and latency in the registry."""

        def published_entries(session: Session) -> list[ServerEntry]:
            entries = [self.ctx.facts.server(session, n) for n in self._published_names(session)]
            return [e for e in entries if e is not None]

        for entry in await self._db(published_entries):
            started = time.perf_counter()
            state = await self.refresh_served(entry)
            latency = (time.perf_counter() - started) * 1000
            status = "down" if state.error else "up"
            await self._tx(
                functools.partial(self._store_health, entry=entry, status=status, latency=latency, error=state.error)
            )

    @staticmethod
    def _store_health(session: Session, entry: ServerEntry, status: str, latency: float, error: str | None) -> None:
        previous = session.scalar(select(Server.health_status).where(Server.id == entry.id))
        session.execute(
            update(Server)
            .where(Server.id == entry.id)
            .values(
                health_status=status,
                health_latency_ms=latency,
                health_checked_at=datetime.now(UTC),
                health_error=error[:500] if error else None,
            )
            .execution_options(synchronize_session=False)
        )
        if previous != status:
            # Discovery shows health; a changed status must not wait for an unrelated change.
            revision.mark_changed(session)
