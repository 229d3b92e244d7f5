"""OpenTelemetry traces of the gateway: a span per MCP request, child spans for its stages, W3C trace context.

Off unless the standard variables ask for it (``OTEL_TRACES_EXPORTER``, or an OTLP endpoint in
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``; ``OTEL_SDK_DISABLED=true`` wins).
When off there is no tracer at all: each stage costs one attribute check. The gateway never sets the
process-wide tracer provider: it builds its own (or is given one), so embedding applications and tests keep
theirs.

Spans carry names and decisions, never arguments or credentials:

- the request (kind SERVER): ``{mcp.method.name} {tool}``, with ``mcp.method.name``, ``mcp.protocol.version``,
  ``mcp.session.id``, ``jsonrpc.request.id``, ``gen_ai.operation.name``/``gen_ai.tool.name`` for calls, and
  ``bastion.server``, ``bastion.tool``, ``bastion.decision``, ``bastion.rule``, ``bastion.outcome``;
- its children ``bastion.authentication``, ``bastion.rate_limit``, ``bastion.policy``, ``bastion.approval``,
  ``bastion.upstream`` (kind CLIENT) and ``bastion.audit``.

A client's ``traceparent`` (the ``_meta`` of the request first, else the HTTP header) makes the request span
its child; the upstream span's context is sent on to remote upstreams as the ``traceparent``/``tracestate``
HTTP headers of that call's requests and in the ``_meta`` of the proxied request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("bastion.gateway.tracing")

DEFAULT_SERVICE_NAME = "bastion-gateway"
TRACE_STATE_KEY = "bastion.trace"  # scope["state"] key: what the HTTP layer measured for the request span
MAX_NAME = 128  # caller-chosen names in span names and attributes are cut to this

W3C = TraceContextTextMapPropagator()
_OFF: AbstractContextManager[None] = nullcontext()


@dataclass(frozen=True, slots=True)
class HttpStamp:
    """What the HTTP edge saw before the MCP layer took over: for the request span and its auth child."""

    started: int  # ns since the epoch
    authenticated: int
    parent: Context | None
    method: str  # how the caller authenticated: "api_key" or "jwt"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names; none when tracing is off."""
    if _truthy(environ.get("OTEL_SDK_DISABLED")):
        return []
    names = environ.get("OTEL_TRACES_EXPORTER")
    if names is None:
        # Off by default; an OTLP endpoint on its own means OTLP.
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        names = "otlp" if endpoint else "none"
    exporters: list[SpanExporter] = []
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        if name == "none":
            continue
        if name in ("otlp", "otlp_proto_grpc"):
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            if protocol not in (None, "", "grpc"):
                raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: the gateway exports OTLP over gRPC only")
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            exporters.append(OTLPSpanExporter())  # reads OTEL_EXPORTER_OTLP_* itself
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        else:
            raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (use otlp, console or none)")
    return exporters


def provider_from_env(version: str = "", environ: Mapping[str, str] | None = None) -> TracerProvider | None:
    """A tracer provider as the ``OTEL_*`` variables describe it, or None when tracing is off (the default).

    Sampling (``OTEL_TRACES_SAMPLER``), batching (``OTEL_BSP_*``), resource (``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``) and the exporter's endpoint, headers and TLS are the SDK's own readings."""
    exporters = _exporters(os.environ if environ is None else environ)
    if not exporters:
        return None
    resource = Resource.create({SERVICE_VERSION: version} if version else {})
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


class Tracing:
    """The gateway's tracer, or nothing (``on`` is False: every helper is a no-op)."""

    def __init__(self, provider: trace.TracerProvider | None, version: str = "", *, owned: bool = False) -> None:
        self.provider = provider
        self.owned = owned  # built here from the environment: flushed and shut down with the gateway
        self.tracer: trace.Tracer | None = (
            provider.get_tracer("bastion.gateway", version or None) if provider is not None else None
        )
        self.on = self.tracer is not None

    @classmethod
    def create(cls, provider: trace.TracerProvider | None, version: str = "") -> Tracing:
        if provider is not None:
            return cls(provider, version)
        built = provider_from_env(version)
        if built is not None:
            log.info("traces on: exporting spans as the OTEL_* variables say")
        return cls(built, version, owned=built is not None)

    def span(
        self,
        name: str,
        attributes: dict[str, Any] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> AbstractContextManager[Span | None]:
        """A child of the current span, made current; a shared no-op when off."""
        if self.tracer is None:
            return _OFF
        return self.tracer.start_as_current_span(
            name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False
        )

    def request_span(
        self, name: str, attributes: dict[str, Any], parent: Context | None, start_time: int | None
    ) -> AbstractContextManager[Span]:
        assert self.tracer is not None
        # Exceptions are labelled by type by the caller: their messages may quote what the client sent.
        return self.tracer.start_as_current_span(
            name, context=parent, kind=SpanKind.SERVER, attributes=attributes, start_time=start_time,
            record_exception=False, set_status_on_exception=False,
        )  # fmt: skip

    def stage(self, name: str, start: int, end: int, attributes: dict[str, Any]) -> None:
        """A child span of the current one for a stage that already happened (authentication, at the HTTP edge)."""
        if self.tracer is None:
            return
        span = self.tracer.start_span(name, attributes=attributes, start_time=start)
        span.end(end_time=end)

    def trace_id(self) -> str | None:
        """The current trace id (32 hex digits) when tracing is on: what the audit row keeps."""
        if self.tracer is None:
            return None
        context = trace.get_current_span().get_span_context()
        return format_trace_id(context.trace_id) if context.is_valid else None

    def headers(self) -> dict[str, str]:
        """W3C ``traceparent`` (and ``tracestate``) of the current span, for a request sent on its behalf."""
        carrier: dict[str, str] = {}
        if self.tracer is not None:
            W3C.inject(carrier)
        return carrier

    def annotate(self, attributes: dict[str, Any], error: str | None = None) -> None:
        """Attributes (and an error) on the current span."""
        if self.tracer is None:
            return
        span = trace.get_current_span()
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(StatusCode.ERROR)

    def shutdown(self) -> None:
        """Flush and stop a provider built from the environment (blocking: run it off the event loop)."""
        if self.owned and isinstance(self.provider, TracerProvider):
            self.provider.shutdown()


def incoming_parent(headers: Mapping[str, str]) -> Context | None:
    """The caller's W3C trace context from HTTP headers (lower-case names), if it carries a valid one."""
    if "traceparent" not in headers:
        return None
    context = W3C.extract(headers)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def meta_parent(meta: Mapping[str, Any] | None) -> Context | None:
    """The caller's W3C trace context from a request's ``_meta`` (``traceparent``/``tracestate`` keys)."""
    if not meta or not isinstance(meta.get("traceparent"), str):
        return None
    carrier = {k: v for k in ("traceparent", "tracestate") if isinstance(v := meta.get(k), str)}
    context = W3C.extract(carrier)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def cut(text: str) -> str:
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"


__all__ = ["TRACE_STATE_KEY", "HttpStamp", "Tracing", "incoming_parent", "meta_parent", "provider_from_env"]
