"""OpenTelemetry traces at the gateway: the request span and its stages, trace context in and out, the audit
row's trace id, off by default, and export over OTLP/gRPC to a receiver on loopback."""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import grpc
import httpx2
import pytest
from alembic import command
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from sqlalchemy import create_engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.db.migrate import alembic_config, upgrade
from registry.gateway.tracing import provider_from_env
from tests.conftest import scratch_postgres
from tests.gateway_fixtures import start_gateway
from tests.gateway_harness import Gateway, RemoteUpstream, builtin_tools, ops_server, remote_tools
from tests.gateway_harness import text as result_text

pytestmark = pytest.mark.anyio

OPS = "dev.test/ops"
REMOTE = "dev.test/remote"
SECRET_ARGUMENT = "argument-value-that-must-not-reach-a-span"
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
STAGES = {"bastion.authentication", "bastion.rate_limit", "bastion.policy", "bastion.upstream", "bastion.audit"}
OTEL_VARIABLES = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                  "OTEL_SDK_DISABLED")  # fmt: skip


class BodyRecorder:
    """Records the headers and JSON body of every POST an upstream receives."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.posts: list[tuple[dict[str, str], Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        self.posts.append((headers, json.loads(body) if body else None))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def tool_calls(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, b) for h, b in self.posts if isinstance(b, dict) and b.get("method") == "tools/call"]


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def traced(tmp_path: Path, sqlite_url: str, exporter: InMemorySpanExporter) -> Iterator[Gateway]:
    """A gateway tracing into an in-memory exporter, through a provider of its own (not the global one)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway, ctx = start_gateway(tmp_path, sqlite_url, tracer_provider=provider)
    yield gateway
    gateway.live.stop()
    ctx.db.dispose()
    provider.shutdown()


@pytest.fixture
def recorded() -> Iterator[tuple[RemoteUpstream, BodyRecorder]]:
    upstream = RemoteUpstream()
    recorder = BodyRecorder(upstream.recorder)
    upstream.live.server.config.app = recorder
    upstream.live.start()
    yield upstream, recorder
    upstream.live.stop()


@asynccontextmanager
async def client(gw: Gateway, token: str, headers: dict[str, str] | None = None) -> AsyncIterator[Client]:
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    async with (
        httpx2.AsyncClient(headers=sent, timeout=30) as http,
        Client(streamable_http_client(f"{gw.url}/mcp", http_client=http), mode="legacy", cache=None) as c,
    ):
        yield c


async def publish_remote(gw: Gateway, remote: RemoteUpstream) -> None:
    gw.team("platform-eng", ["platform-eng"])
    tools = await remote_tools(remote.mcp_url)
    gw.publish(REMOTE, "remote", "platform-eng", tools, transport="streamable-http", endpoint=remote.mcp_url)


async def publish_ops(gw: Gateway) -> None:
    gw.team("ads-eng", ["ads-eng"])
    gw.publish(OPS, "ops", "ads-eng", await builtin_tools(ops_server()))


def request_span(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name and s.kind == SpanKind.SERVER]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> dict[str, ReadableSpan]:
    assert parent.context is not None
    out = {}
    for s in spans:
        if s.parent is not None and s.parent.span_id == parent.context.span_id:
            assert s.context is not None and s.context.trace_id == parent.context.trace_id
            out[s.name] = s
    return out


def trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return format_trace_id(span.context.trace_id)


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_a_call_is_a_request_span_with_its_stages_and_the_upstream_joins_the_trace(
    traced: Gateway, exporter: InMemorySpanExporter, recorded: tuple[RemoteUpstream, BodyRecorder]
) -> None:
    remote, recorder = recorded
    await publish_remote(traced, remote)
    token = traced.token("ann", ["analysts"])
    async with client(traced, token) as c:
        await c.list_tools()
        recorder.posts.clear()
        exporter.clear()
        result = await c.call_tool("remote__echo", {"text": SECRET_ARGUMENT})
    assert result_text(result) == SECRET_ARGUMENT
    spans = list(exporter.get_finished_spans())

    request = request_span(spans, "tools/call remote__echo")
    assert request.parent is None  # no trace context from the client: a root
    assert attrs(request) | {"jsonrpc.request.id": "-"} == attrs(request) | {
        "mcp.method.name": "tools/call", "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "remote__echo",
        "bastion.server": REMOTE, "bastion.tool": "echo", "bastion.decision": "allowed", "bastion.outcome": "ok",
        "jsonrpc.request.id": "-",
    }  # fmt: skip
    assert "mcp.session.id" in attrs(request) and "mcp.protocol.version" in attrs(request)
    stages = children(spans, request)
    assert set(stages) == STAGES, sorted(stages)  # no approval: echo is read-only
    assert attrs(stages["bastion.authentication"])["bastion.auth.method"] == "jwt"
    assert attrs(stages["bastion.policy"])["bastion.decision"] == "allowed"
    upstream = stages["bastion.upstream"]
    assert upstream.kind == SpanKind.CLIENT
    assert attrs(upstream) | {"server.port": 0} == attrs(upstream) | {
        "mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "bastion.server": REMOTE,
        "server.address": "127.0.0.1", "server.port": 0,
    }  # fmt: skip
    # The stages run in order, inside the request span (authentication started when the HTTP request arrived).
    assert request.start_time == stages["bastion.authentication"].start_time
    order = ["bastion.authentication", "bastion.rate_limit", "bastion.policy", "bastion.upstream", "bastion.audit"]
    starts = [stages[n].start_time or 0 for n in order]
    assert starts == sorted(starts)
    assert all((s.end_time or 0) <= (request.end_time or 0) for s in stages.values())

    # Neither the arguments nor the caller's token are in any span.
    dumped = json.dumps([[s.name, attrs(s)] for s in spans], default=str)
    assert SECRET_ARGUMENT not in dumped and token not in dumped

    # The upstream got the trace context of the gateway's upstream span: HTTP header and `_meta`.
    calls = recorder.tool_calls()
    assert len(calls) == 1
    headers, body = calls[0]
    assert upstream.context is not None
    expected = f"00-{trace_of(request)}-{format_span_id(upstream.context.span_id)}-{upstream.context.trace_flags:02x}"
    assert headers["traceparent"] == expected
    assert body["params"]["_meta"]["traceparent"].split("-")[1] == trace_of(request)
    assert body["params"]["_meta"]["traceparent"] == expected

    # The audit row names the trace.
    rows = traced.audit(kind="call", tool="echo")
    assert [r["traceId"] for r in rows] == [trace_of(request)]
    exported = traced.admin.get("/admin/v1/audit.csv", params={"kind": "call", "tool": "echo"})
    assert exported.status_code == 200
    (header, line) = list(csv.reader(io.StringIO(exported.text)))
    assert header[-1] == "trace_id" and line[-1] == trace_of(request)


async def test_a_denied_call_records_the_rule_and_an_approval_has_its_span(
    traced: Gateway, exporter: InMemorySpanExporter
) -> None:
    await publish_ops(traced)
    traced.policy(OPS, {"allowedGroups": ["ads-eng"]}, tool="pause_campaign")
    async with client(traced, traced.token("ann", ["analysts"])) as c:
        exporter.clear()
        denied = await c.call_tool("ops__pause_campaign", {"campaign_id": "c1"})
    assert denied.is_error
    spans = list(exporter.get_finished_spans())
    request = request_span(spans, "tools/call ops__pause_campaign")
    assert attrs(request)["bastion.decision"] == "denied"
    assert attrs(request)["bastion.rule"] == "policy.tool.allowed_groups"
    assert attrs(request)["error.type"] == "denied"
    assert request.status.status_code == StatusCode.ERROR
    stages = children(spans, request)
    assert "bastion.upstream" not in stages and "bastion.approval" not in stages
    assert attrs(stages["bastion.policy"])["bastion.rule"] == "policy.tool.allowed_groups"
    assert [r["traceId"] for r in traced.audit(kind="call", outcome="denied")] == [trace_of(request)]

    # A destructive call by its own team needs approval: parked (no form in this client), with its span.
    async with client(traced, traced.token("eli", ["ads-eng"])) as c:
        exporter.clear()
        parked = await c.call_tool("ops__pause_campaign", {"campaign_id": "c2"})
    assert (parked.structured_content or {}).get("status") == "awaiting_approval"
    spans = list(exporter.get_finished_spans())
    request = request_span(spans, "tools/call ops__pause_campaign")
    approval = children(spans, request)["bastion.approval"]
    assert attrs(approval)["bastion.outcome"] == "awaiting_approval"
    assert attrs(approval)["bastion.approval.id"] == (parked.structured_content or {})["approvalId"]
    assert attrs(request)["bastion.outcome"] == "awaiting_approval"


async def test_the_clients_trace_context_is_the_parent(traced: Gateway, exporter: InMemorySpanExporter) -> None:
    await publish_ops(traced)
    token = traced.token("ann", ["analysts"])
    header = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
    async with client(traced, token, {"traceparent": header, "tracestate": "vendor=1"}) as c:
        exporter.clear()
        await c.call_tool("ops__read_metric", {"name": "spend"})
        by_header = request_span(list(exporter.get_finished_spans()), "tools/call ops__read_metric")
        # `_meta` wins over the HTTP header (it belongs to this very request).
        meta_trace, meta_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        exporter.clear()
        await c.call_tool(
            "ops__read_metric", {"name": "spend"}, meta={"traceparent": f"00-{meta_trace}-{meta_span}-01"}
        )
        by_meta = request_span(list(exporter.get_finished_spans()), "tools/call ops__read_metric")
    assert by_header.parent is not None and by_header.parent.is_remote
    assert (trace_of(by_header), format_span_id(by_header.parent.span_id)) == (CLIENT_TRACE, CLIENT_SPAN)
    assert by_meta.parent is not None
    assert (trace_of(by_meta), format_span_id(by_meta.parent.span_id)) == (meta_trace, meta_span)
    assert {r["traceId"] for r in traced.audit(kind="call")} == {CLIENT_TRACE, meta_trace}


async def test_stateless_gateway_traces_alike(tmp_path: Path, sqlite_url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw, ctx = start_gateway(tmp_path, sqlite_url, tracer_provider=provider, gateway_stateless=True)
    try:
        await publish_ops(gw)
        async with client(gw, gw.token("ann", ["analysts"])) as c:
            exporter.clear()
            await c.call_tool("ops__read_metric", {"name": "spend"})
        spans = list(exporter.get_finished_spans())
        request = request_span(spans, "tools/call ops__read_metric")
        assert set(children(spans, request)) == STAGES
        assert [r["traceId"] for r in gw.audit(kind="call")] == [trace_of(request)]
    finally:
        gw.live.stop()
        ctx.db.dispose()
        provider.shutdown()


async def test_a_refused_credential_is_traced_too(traced: Gateway, exporter: InMemorySpanExporter) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            f"{traced.url}/mcp",
            json={},
            headers={
                "Authorization": "Bearer forged",
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
            },
        )
    assert response.status_code == 401
    spans = list(exporter.get_finished_spans())
    request = request_span(spans, "POST /mcp")
    assert trace_of(request) == CLIENT_TRACE and request.status.status_code == StatusCode.ERROR
    assert attrs(request)["http.response.status_code"] == 401
    assert attrs(children(spans, request)["bastion.authentication"])["bastion.outcome"] == "refused"
    assert "forged" not in json.dumps([attrs(s) for s in spans])


async def test_off_by_default(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, recorded: tuple[RemoteUpstream, BodyRecorder]
) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert provider_from_env() is None
    assert provider_from_env(environ={"OTEL_TRACES_EXPORTER": "none"}) is None
    assert provider_from_env(environ={"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}) is None
    with pytest.raises(ValueError, match="unknown exporter"):
        provider_from_env(environ={"OTEL_TRACES_EXPORTER": "zipkin"})
    remote, recorder = recorded
    gw, ctx = start_gateway(tmp_path, sqlite_url)
    try:
        gateway = gw.live.server.config.app.state.gateway
        assert not gateway.tracing.on and gateway.tracing.tracer is None
        await publish_remote(gw, remote)
        async with client(gw, gw.token("ann", ["analysts"])) as c:
            await c.call_tool("remote__echo", {"text": "hi"})
        (headers, _), *_ = recorder.tool_calls()
        assert "traceparent" not in headers
        assert [r["traceId"] for r in gw.audit(kind="call")] == [None]
    finally:
        gw.live.stop()
        ctx.db.dispose()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: keeps every export request."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    def Export(  # the gRPC method's name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, Any]]:
        """(service.name, span) for every span received."""
        out = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                service = next(
                    (a.value.string_value for a in resource_spans.resource.attributes if a.key == "service.name"), ""
                )
                out += [(service, s) for scope in resource_spans.scope_spans for s in scope.spans]
        return out


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


async def test_spans_reach_an_otlp_receiver_configured_by_otel_variables(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, receiver: tuple[Receiver, int]
) -> None:
    servicer, port = receiver
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "bastion-otlp-test")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    gw, ctx = start_gateway(tmp_path, sqlite_url)
    try:
        await publish_ops(gw)
        async with client(gw, gw.token("ann", ["analysts"])) as c:
            await c.call_tool("ops__read_metric", {"name": "spend"})
        deadline = time.monotonic() + 10
        while not any(s.name == "bastion.audit" for _, s in servicer.spans()):
            assert time.monotonic() < deadline, "no spans reached the receiver"
            await anyio.sleep(0.1)
        row = gw.audit(kind="call", tool="read_metric")[0]
    finally:
        gw.live.stop()
        ctx.db.dispose()
    received = servicer.spans()
    assert {service for service, _ in received} == {"bastion-otlp-test"}
    (request,) = [s for _, s in received if s.name == "tools/call ops__read_metric"]
    assert request.trace_id.hex() == row["traceId"]
    names = {s.name for _, s in received if s.parent_span_id == request.span_id}
    assert names >= {"bastion.authentication", "bastion.rate_limit", "bastion.policy", "bastion.upstream",
                     "bastion.audit"}  # fmt: skip


INSERT = (
    "INSERT INTO audit_events (at, kind, subject, groups, decision, outcome, latency_ms, result_size, minutes_saved"
    "{columns}) VALUES (now(), 'call', 'ann', '[]', 'allowed', 'ok', 0, 0, 0{values})"
)


@pytest.mark.postgres
def test_migration_0006_keeps_the_audit_log_append_only_on_postgresql() -> None:
    with scratch_postgres(migrate=False) as url:
        upgrade(url, "0005")
        engine = create_engine(url)
        with engine.begin() as conn:
            conn.execute(text(INSERT.format(columns="", values="")))
        upgrade(url)
        with engine.begin() as conn:
            assert conn.execute(text("SELECT trace_id FROM audit_events")).all() == [(None,)]
            conn.execute(text(INSERT.format(columns=", trace_id", values=f", '{CLIENT_TRACE}'")))
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET trace_id = NULL"))
        command.downgrade(alembic_config(url), "0005")
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text("DELETE FROM audit_events"))
        engine.dispose()
