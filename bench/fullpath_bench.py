"""Every builtin tool the way agents call it: an MCP client → `/mcp` → the tool → back.

Three ways side by side in one run, calls interleaved (a, b, c, then rotated) so noise hits all alike:
(a) the tool called in-process through its MCP server object (`server.call_tool`: argument validation and
result conversion, no transport) — the floor for the work; (b) the same server served bare by the SDK over
Streamable HTTP — the floor for the protocol; (c) through `bastion serve` with everything on (JWT, policy,
audit, rate limits). The MCP client is the SDK's, revision 2026-07-28. Reports p50/p99 per case, the
ratios, and request/response sizes. Uses the data of `make run` (demo warehouse, index, trained model);
prepares what is missing the way `make run` does.
"""

from __future__ import annotations

import base64
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import numpy as np
import orjson
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from rich.progress import Progress

from bench.common import ROOT, console, free_port, histogram, percentile, render, save
from registry.auth import mint_token
from registry.settings import RegistrySettings

SECRET = "bench-" + "s" * 40
CALLS = int(os.environ.get("BASTION_BENCH_FULLPATH_CALLS", "200"))  # a p99 needs more than 60 samples
ONLY = os.environ.get("BASTION_BENCH_FULLPATH_ONLY", "")  # run only the cases whose name contains this
WARMUP = 5
SERVERS = ("inference", "rerank", "dedupe", "sql")


@dataclass(frozen=True)
class Case:
    name: str
    server: str
    tool: str
    arguments: dict[str, Any]


def _inference_arguments(data_dir: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    from tools.inference.registry import ModelRegistry

    schema = ModelRegistry(data_dir / "models" / "conversion").artifact(None).schema_
    items = schema.item_categorical[schema.item_id_feature]
    user = {k: int(rng.integers(1, v)) for k, v in schema.user_categorical.items()}
    user |= {k: float(rng.random()) for k in schema.user_dense}
    candidates = []
    for i in range(n):
        features: dict[str, float | int] = {k: int(rng.integers(1, v)) for k, v in schema.item_categorical.items()}
        features |= {k: float(rng.random()) for k in schema.item_dense}
        candidates.append({"id": f"c{i}", "features": features})
    return {
        "user": {"features": user, "history": [int(h) for h in rng.integers(1, items, schema.history_length)]},
        "context": {"surface": schema.surfaces[0]},
        "candidates": candidates,
    }


def cases(data_dir: Path, embeddings: Path) -> list[Case]:
    rng = np.random.default_rng(0)
    vectors = np.load(embeddings)["vectors"]
    inline = [
        {"id": f"i{i}", "score": float(rng.random()), "embedding": [round(float(x), 6) for x in vectors[i]]}
        for i in range(500)
    ]
    packed = [
        {
            "id": c["id"],
            "score": c["score"],
            "embedding_b64": base64.b64encode(vectors[i].astype("<f4").tobytes()).decode(),
        }
        for i, c in enumerate(inline)
    ]
    by_id = [{"id": f"i{i}", "score": float(rng.random())} for i in range(500)]
    urls = [f"https://shop{i % 20}.example/p?id={i}&utm_source=news&ref={i % 3}&sort=price" for i in range(1000)]
    query = "SELECT platform, count(*) AS n FROM ads.ad_delivery_daily WHERE dt >= DATE '2026-10-25' GROUP BY 1"
    return [
        Case("inference N=50", "inference", "score_candidates", _inference_arguments(data_dir, 50, rng)),
        Case("inference N=500", "inference", "score_candidates", _inference_arguments(data_dir, 500, rng)),
        Case("rerank N=500 inline", "rerank", "rerank", {"candidates": inline, "k": 50, "window": 10}),
        Case("rerank N=500 base64", "rerank", "rerank", {"candidates": packed, "k": 50, "window": 10}),
        Case("rerank N=500 by id", "rerank", "rerank", {"candidates": by_id, "k": 50, "window": 10}),
        Case("dedupe 1,000 URLs", "dedupe", "normalize_urls", {"urls": urls}),
        Case("sql validate", "sql", "validate_sql", {"sql": query}),
        Case("sql run", "sql", "run_sql", {"sql": query}),
    ]


def prepare(data_dir: Path) -> None:
    """What `make run` builds, if it is not there yet: demo warehouse, index, a trained model."""
    steps = [
        (data_dir / "demo" / "warehouse.duckdb", ["demo", "prepare"]),
        (data_dir / "index" / "summary.json", ["index"]),
        (data_dir / "models" / "conversion" / "registry.json", ["train", "conversion", "--if-missing"]),
    ]
    for marker, command in steps:
        if not marker.exists():
            console.print(f"preparing: bastion {' '.join(command)}")
            subprocess.run([sys.executable, "-m", "bastion", *command], cwd=ROOT, check=True)


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the server accepts connections (a GET on an MCP endpoint would open a stream)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 80), timeout=1):
                pass
            if parsed.path != "/healthz" or httpx.get(url, timeout=5).status_code == 200:
                return
        except (OSError, httpx.TransportError):
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited")
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


Call = Callable[[str, dict[str, Any]], Any]
_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientInfo": {"name": "bench-plain", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}


@dataclass(frozen=True)
class PlainResult:
    is_error: bool
    content: Any
    size: int


async def plain_call(http: httpx2.AsyncClient, url: str, tool: str, arguments: dict[str, Any]) -> PlainResult:
    """`tools/call` as a lean client sends it (one JSON POST, orjson both ways, the result not re-validated):
    what the server side costs when the SDK client's own work is taken out."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments,
                                                                          "_meta": _META}}  # fmt: skip
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json",
               "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": tool}  # fmt: skip
    response = await http.post(url, content=orjson.dumps(body), headers=headers)
    reply = orjson.loads(response.content)
    result = reply.get("result") or {}
    return PlainResult(
        bool(result.get("isError", "error" in reply)), result.get("content") or reply, len(response.content)
    )


async def measure(cases_: list[Case], gateway: str, token: str, bare: dict[str, str], data_dir: Path) -> dict[str, Any]:
    from bench.builtin_server import build

    local = {name: build(name, data_dir) for name in SERVERS}
    results: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for server in local.values():  # as a served builtin runs: its lifespan writes the feature log at the end
            if server.settings.lifespan is not None:
                await stack.enter_async_context(server.settings.lifespan(server))
        http = await stack.enter_async_context(httpx2.AsyncClient(timeout=120))
        authed = await stack.enter_async_context(
            httpx2.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {token}"})
        )
        via_gateway = await stack.enter_async_context(
            Client(streamable_http_client(f"{gateway}/mcp", http_client=authed), mode="2026-07-28", cache=None)
        )
        bare_clients = {
            name: await stack.enter_async_context(
                Client(streamable_http_client(url, http_client=http), mode="2026-07-28", cache=None)
            )
            for name, url in bare.items()
        }
        with Progress(console=console) as progress:
            task = progress.add_task("calls", total=len(cases_) * (CALLS + WARMUP))
            for case in cases_:
                ways: dict[str, Call] = {
                    "a in-process": lambda tool, args, case=case: local[case.server].call_tool(tool, args),
                    "b bare mcp": lambda tool, args, case=case: bare_clients[case.server].call_tool(tool, args),
                    "c gateway": lambda tool, args, case=case: via_gateway.call_tool(f"{case.server}__{tool}", args),
                    "d bare, plain client": lambda tool, args, case=case: plain_call(
                        http, bare[case.server], tool, args
                    ),
                    "e gateway, plain client": lambda tool, args, case=case: plain_call(
                        authed, f"{gateway}/mcp", f"{case.server}__{tool}", args
                    ),
                }
                if case.server == "inference":
                    ways["f bare naive, plain client"] = lambda tool, args: plain_call(
                        http, bare["inference naive"], tool, args
                    )
                samples: dict[str, list[float]] = {way: [] for way in ways}
                sizes: dict[str, int] = {}
                order = list(ways)
                for i in range(CALLS + WARMUP):
                    for way in order:
                        started = time.perf_counter()
                        result = await ways[way](case.tool, case.arguments)
                        elapsed = (time.perf_counter() - started) * 1000
                        if way != "a in-process" and result.is_error:
                            raise RuntimeError(f"{case.name} via {way}: {str(result.content)[:300]}")
                        if i >= WARMUP:
                            samples[way].append(elapsed)
                        if way == "e gateway, plain client" and "response" not in sizes:
                            sizes["response"] = result.size
                    order = order[1:] + order[:1]
                    progress.advance(task)
                    if i == WARMUP - 1:
                        # The client process holds every builtin too (for way a): its start-up heap is left out of
                        # the cycle collector, as in `bastion serve`, so a client-side collection pass over torch
                        # and sqlglot is not counted as the server's tail latency.
                        gc.collect()
                        gc.freeze()
                sizes["request"] = len(json.dumps(case.arguments))
                results[case.name] = {"samples": samples, "sizes": sizes}
    gc.unfreeze()
    return results


def main() -> None:
    # Before any builtin is built: the SDK's MCPServer otherwise installs an INFO handler on the root logger, and
    # the clients' every request would be logged to the console in the middle of the timings.
    logging.basicConfig(level=logging.WARNING)
    settings_dir = Path(os.environ.get("BASTION_DATA_DIR", ".bastion"))
    data_dir = settings_dir if settings_dir.is_absolute() else ROOT / settings_dir
    prepare(data_dir)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        embeddings = Path(tmp) / "embeddings.npz"
        np.savez(embeddings, ids=np.array([f"i{i}" for i in range(5000)]),
                 vectors=rng.standard_normal((5000, 64)).astype(np.float32))  # fmt: skip
        env = {
            **os.environ,
            "BASTION_DATA_DIR": str(data_dir),
            "BASTION_DATABASE_URL": f"sqlite:///{Path(tmp) / 'registry.db'}",
            "BASTION_JWT_SECRET": SECRET,
            "BASTION_RATE_LIMIT_PER_USER": "100000000",
            "BASTION_RATE_LIMIT_PER_TOOL": "100000000",
            "BASTION_RERANK_EMBEDDINGS": str(embeddings),
            "BASTION_INFERENCE_FEATURE_LOG": str(Path(tmp) / "feature_log.duckdb"),
            "BASTION_LOG_LEVEL": "WARNING",
        }
        os.environ.update({k: v for k, v in env.items() if k.startswith("BASTION_")})
        try:
            for step in (["db", "upgrade"], ["registry", "seed"]):
                subprocess.run([sys.executable, "-m", "bastion", *step], cwd=ROOT, env=env, check=True,
                               stdout=subprocess.DEVNULL)  # fmt: skip
            bare: dict[str, str] = {}
            chosen = [case for case in cases(data_dir, embeddings) if ONLY in case.name]
            for name in SERVERS:
                warm = Path(tmp) / f"warm_{name}.json"
                warm.write_text(json.dumps([[c.tool, c.arguments] for c in chosen if c.server == name]))
                port = free_port()
                bare_env = {**env, "BASTION_INFERENCE_FEATURE_LOG": str(Path(tmp) / f"bare_{name}.duckdb")}
                procs.append(subprocess.Popen([sys.executable, "-m", "bench.builtin_server", name, "--port", str(port),
                                               "--data-dir", str(data_dir), "--warm", str(warm)], cwd=ROOT,
                                              env=bare_env))  # fmt: skip
                bare[name] = f"http://127.0.0.1:{port}/mcp"
                _wait(bare[name], procs[-1])
            # The inference server again, scoring every candidate in full (no request-level dedup): the A/B.
            port = free_port()
            naive_env = {**env, "BASTION_INFERENCE_DEDUP": "false",
                         "BASTION_INFERENCE_FEATURE_LOG": str(Path(tmp) / "bare_naive.duckdb")}  # fmt: skip
            warm = Path(tmp) / "warm_inference.json"
            procs.append(subprocess.Popen([sys.executable, "-m", "bench.builtin_server", "inference", "--port",
                                           str(port), "--data-dir", str(data_dir), "--warm", str(warm)], cwd=ROOT,
                                          env=naive_env))  # fmt: skip
            bare["inference naive"] = f"http://127.0.0.1:{port}/mcp"
            _wait(bare["inference naive"], procs[-1])
            port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-m", "bastion", "serve", "--port", str(port)], cwd=ROOT,
                                          env={**env, "BASTION_PORT": str(port)}))  # fmt: skip
            gateway = f"http://127.0.0.1:{port}"
            _wait(f"{gateway}/healthz", procs[-1])
            os.environ["BASTION_INFERENCE_FEATURE_LOG"] = str(Path(tmp) / "local.duckdb")
            token = mint_token(RegistrySettings(jwt_secret=SECRET), user="bench", groups=["bench"])
            results = anyio.run(measure, chosen, gateway, token, bare, data_dir)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=20)
    report(results)


def report(results: dict[str, Any]) -> None:
    from tools.inference.registry import code_version

    rows, payload, plotted = [], {}, {}
    for name, r in results.items():
        s = r["samples"]
        a, b, c, d, e = (percentile(s[k], 50) for k in list(s)[:5])
        c99, e99 = percentile(s["c gateway"], 99), percentile(s["e gateway, plain client"], 99)
        naive = s.get("f bare naive, plain client")
        rows.append([name, a, b, c, c99, c / b, d, e, e99, e / d,
                     f"{percentile(naive, 50) / d:.2f}" if naive else "—",
                     f"{r['sizes']['request'] / 1000:,.0f} / {r['sizes']['response'] / 1000:,.0f}"])  # fmt: skip
        payload[name] = {way: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)} for way, v in s.items()}
        payload[name]["sizes_bytes"] = r["sizes"]
        plotted |= {f"{name}: {way}": v for way, v in s.items()}
    render(
        "Builtin tools through the gateway, beside a bare SDK server and an in-process call (ms)",
        [
            "case",
            "a in-process",
            "b bare SDK",
            "c gateway SDK",
            "c p99",
            "c ÷ b",
            "d bare plain",
            "e gateway plain",
            "e p99",
            "e ÷ d",
            "f naive ÷ d",
            "KB in / out",
        ],
        rows,
        note=f"p50 ms unless marked; {CALLS} calls per case and way, interleaved; MCP 2026-07-28; SDK = the SDK "
        "client (validates results against the output schema), plain = one JSON POST with orjson; f naive = the "
        "bare inference server without request-level dedup, plain client; "
        "target c ÷ b ≤ 1.3 for every tool",
    )
    plot = histogram("fullpath_latency", plotted)
    path = save("fullpath", {"commit": code_version(), "calls": CALLS, "seed": 0, "cases": payload})
    console.print(f"wrote {path} and {plot}")


if __name__ == "__main__":
    main()
