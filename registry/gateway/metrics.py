"""Prometheus metrics of the gateway (one registry per gateway, so tests stay independent)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "bastion_gateway_tool_calls", "Tool calls by outcome", ["server", "tool", "outcome"], registry=self.registry
        )
        self.denials = Counter("bastion_gateway_denials", "Calls denied, by rule", ["rule"], registry=self.registry)
        self.approvals = Counter(
            "bastion_gateway_approvals",
            "Approval events by mode and result",
            ["mode", "result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "bastion_gateway_errors", "Failed calls by kind", ["server", "tool", "kind"], registry=self.registry
        )
        self.lists = Counter("bastion_gateway_tool_lists", "tools/list requests", registry=self.registry)
        self.latency = Histogram(
            "bastion_gateway_tool_call_seconds",
            "Tool call latency through the gateway",
            ["server", "tool"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.audit_queue = Gauge("bastion_audit_queue_rows", "Audit rows waiting to be written", registry=self.registry)
        self.audit_lag = Gauge(
            "bastion_audit_lag_seconds", "Age of the oldest audit row not yet written", registry=self.registry
        )
        self.audit_written = Counter("bastion_audit_rows_written", "Audit rows committed", registry=self.registry)
        self.audit_failures = Counter(
            "bastion_audit_write_failures", "Failed audit flushes (rows kept and retried)", registry=self.registry
        )
        self.audit_poisoned = Counter(
            "bastion_audit_rows_poisoned",
            "Rows the database refused alone, stored cut down and flagged",
            registry=self.registry,
        )
