"""The governance tax: the same echo tool three ways, measured side by side in one run.

(a) a bare `mcp` server; (b) through the gateway with everything on (JWT auth, policy,
audit, rate limits) calling it as an in-process builtin; (c) through the gateway proxying
the bare server as a remote upstream. Reports p50/p99 per call (one client), calls/s with
16 concurrent clients, errors, and audit rows written versus gateway calls made.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import create_engine, func, select

from bench.common import ROOT, console, free_port, histogram, render, save, summary
from governance import SYSTEM
from registry.auth import mint_token
from registry.context import RegistryContext
from registry.db import upgrade
from registry.db.models import AuditEvent
from registry.schemas.tools import served_definition
from registry.services.seed import SeedFile, apply_seed
from registry.settings import RegistrySettings

SEQUENTIAL_CALLS = 500
CONCURRENCY = 16
WORKERS = 2
THROUGHPUT_SECONDS = 5.0
REVISIONS = ["2026-07-28", "legacy"]
SECRET = "bench-" + "s" * 40


@dataclass(frozen=True)
class Target:
    case: str
    url: str
    tool: str
    token: str | None


def _client(target: Target, mode: str, http: httpx2.AsyncClient) -> Client:
    return Client(streamable_http_client(target.url, http_client=http), mode=mode, cache=None)


def _headers(target: Target) -> dict[str, str]:
    return {"Authorization": f"Bearer {target.token}"} if target.token else {}


async def _round_robin(targets: list[Target], mode: str, calls: int) -> dict[str, tuple[list[float], int]]:
    """One client per target, calls interleaved a, b, c, a, b, c… so noise hits all alike."""
    from contextlib import AsyncExitStack

    samples: dict[str, list[float]] = {t.case: [] for t in targets}
    errors: dict[str, int] = {t.case: 0 for t in targets}
    async with AsyncExitStack() as stack:
        clients = []
        for target in targets:
            http = await stack.enter_async_context(httpx2.AsyncClient(headers=_headers(target), timeout=30))
            clients.append((target, await stack.enter_async_context(_client(target, mode, http))))
        for i in range(calls + 50):
            for target, client in clients:
                started = time.perf_counter()
                result = await client.call_tool(target.tool, {"text": f"hello {i}"})
                elapsed = (time.perf_counter() - started) * 1000
                errors[target.case] += int(bool(result.is_error))
                if i >= 50:
                    samples[target.case].append(elapsed)
    return {case: (samples[case], errors[case]) for case in samples}


def _worker(target: Target, mode: str, clients: int, seconds: float, queue: Any) -> None:
    async def one(deadline: float, tally: list[int]) -> None:
        async with (
            httpx2.AsyncClient(headers=_headers(target), timeout=30) as http,
            _client(target, mode, http) as client,
        ):
            while time.perf_counter() < deadline:
                try:
                    result = await client.call_tool(target.tool, {"text": "load"})
                    tally[0 if not result.is_error else 1] += 1
                except Exception:
                    tally[1] += 1

    async def run() -> tuple[int, int]:
        tally = [0, 0]
        deadline = time.perf_counter() + seconds
        async with anyio.create_task_group() as tg:
            for _ in range(clients):
                tg.start_soon(one, deadline, tally)
        return tally[0], tally[1]

    queue.put(anyio.run(run))


def _throughput(target: Target, mode: str) -> tuple[float, int, int]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_worker, args=(target, mode, CONCURRENCY // WORKERS, THROUGHPUT_SECONDS, queue))
        for _ in range(WORKERS)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=THROUGHPUT_SECONDS + 120) for _ in procs]
    for p in procs:
        p.join()
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    return ok / THROUGHPUT_SECONDS, ok, errors


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if proc.poll() is not None:
                raise RuntimeError(f"{url}: server exited") from None
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _prepare_registry(settings: RegistrySettings, bare_url: str) -> None:
    from bastion.builtins import definitions_resolver

    upgrade(settings.effective_database_url)
    ctx = RegistryContext.create(settings)

    async def remote_tools() -> list[dict[str, Any]]:
        async with Client(bare_url, mode="legacy", cache=None) as client:
            return [served_definition(t) for t in (await client.list_tools()).tools]

    seed = SeedFile.model_validate(
        {
            "teams": [{"name": "bench", "supportChannel": "#bench", "groups": ["bench"]}],
            "servers": [
                {
                    "name": "bench.local/echo",
                    "shortName": "echo",
                    "team": "bench",
                    "description": "echo",
                    "environment": "prod",
                    "transport": "builtin",
                    "builtin": "echo",
                },
                {
                    "name": "bench.local/remote-echo",
                    "shortName": "recho",
                    "team": "bench",
                    "description": "echo",
                    "environment": "prod",
                    "transport": "streamable-http",
                    "endpoint": bare_url,
                    "tools": anyio.run(remote_tools),
                },
            ],
        }
    )
    with ctx.db.transaction() as session:
        apply_seed(session, seed, settings.review_requirements, definitions_resolver(ctx))
    ctx.db.dispose()
    assert SYSTEM is not None


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bare_port, gw_port = free_port(), free_port()
        bare = subprocess.Popen([sys.executable, "-m", "bench.echo_server", "--port", str(bare_port)], cwd=ROOT)
        bare_url = f"http://127.0.0.1:{bare_port}/mcp"
        env = {
            "BASTION_DATA_DIR": str(Path(tmp) / "data"),
            "BASTION_DATABASE_URL": f"sqlite:///{Path(tmp) / 'registry.db'}",
            "BASTION_JWT_SECRET": SECRET,
            "BASTION_EXTRA_BUILTINS": "echo=bench.echo_server:build",
            "BASTION_RATE_LIMIT_PER_USER": "100000000",
            "BASTION_RATE_LIMIT_PER_TOOL": "100000000",
            "BASTION_LOG_LEVEL": "WARNING",
            "BASTION_PORT": str(gw_port),
        }
        gateway = None
        try:
            _wait_http(f"http://127.0.0.1:{bare_port}/mcp", bare)
            os.environ.update(env)
            settings = RegistrySettings()
            _prepare_registry(settings, bare_url)
            gateway = subprocess.Popen([sys.executable, "-m", "bastion", "serve"], cwd=ROOT, env={**os.environ, **env})
            _wait_http(f"http://127.0.0.1:{gw_port}/healthz", gateway)
            token = mint_token(settings, user="bench-user", groups=["bench"])
            gw_url = f"http://127.0.0.1:{gw_port}/mcp"
            targets = [
                Target("a bare mcp", bare_url, "echo", None),
                Target("b gateway, builtin", gw_url, "echo__echo", token),
                Target("c gateway, remote", gw_url, "recho__echo", token),
            ]
            results: dict[tuple[str, str], dict[str, Any]] = {}
            gateway_calls = 0
            for mode in REVISIONS:
                console.print(f"[bold]{mode}[/]: {SEQUENTIAL_CALLS} calls per target, interleaved a, b, c")
                latency = anyio.run(_round_robin, targets, mode, SEQUENTIAL_CALLS)
                gateway_calls += sum(SEQUENTIAL_CALLS + 50 for t in targets if t.token)
                rates: dict[str, list[float]] = {t.case: [] for t in targets}
                errors_total: dict[str, int] = {t.case: latency[t.case][1] for t in targets}
                # Throughput phases in mirrored order (a b c c b a), averaged: drift cancels out.
                for target in [*targets, *reversed(targets)]:
                    console.print(f"  {target.case}: {CONCURRENCY} clients for {THROUGHPUT_SECONDS:g} s")
                    rate, ok, errors = _throughput(target, mode)
                    rates[target.case].append(rate)
                    errors_total[target.case] += errors
                    if target.token:
                        gateway_calls += ok + errors
                for target in targets:
                    samples = latency[target.case][0]
                    results[(target.case, mode)] = {
                        "samples": samples,
                        "rate": sum(rates[target.case]) / len(rates[target.case]),
                        "errors": errors_total[target.case],
                        **summary(samples),
                    }
            time.sleep(1.5)  # the audit writer flushes every 50 ms
            engine = create_engine(settings.effective_database_url)
            with engine.connect() as conn:
                rows = conn.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.kind == "call"))
            engine.dispose()
        finally:
            for proc in (gateway, bare):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=15)

    table = []
    payload: dict[str, Any] = {"audit_rows": rows, "gateway_calls": gateway_calls}
    for mode in REVISIONS:
        base = results[(targets[0].case, mode)]
        for target in targets:
            r = results[(target.case, mode)]
            ratio_p50 = r["p50"] / base["p50"]
            ratio_rate = r["rate"] / base["rate"]
            table.append([target.case, mode, r["p50"], r["p99"], r["rate"], r["errors"], ratio_p50, ratio_rate])
            payload[f"{target.case}/{mode}"] = {k: v for k, v in r.items() if k != "samples"}
    render(
        "Echo tool three ways (latency ms; throughput with 16 concurrent clients)",
        ["case", "revision", "p50", "p99", "calls/s", "errors", "p50 ÷ a", "calls/s ÷ a"],
        table,
        note=(
            f"audit rows written {rows} / gateway calls made {gateway_calls}"
            f" ({'equal' if rows == gateway_calls else 'MISMATCH'})\n"
            "targets: b/a ≤ 1.3 at p50; gateway calls/s ≥ 0.6 × bare; 0 errors; audit rows = calls"
        ),
    )
    plot = histogram("gateway_latency", {f"{case} ({mode})": r["samples"] for (case, mode), r in results.items()})
    console.print(f"results: {save('gateway', payload)}  plot: {plot}")
