"""What telling an upstream who calls costs: the same SDK echo server through the gateway, with and without
the caller assertion, calls interleaved in one run.

(a) the server registered with `identity: none` (nothing signed, nothing verified); (b) the same process
registered with `identity: assertion` (the gateway signs an EdDSA (Ed25519) assertion per request, the SDK
fetches the JWKS once and verifies each one: signature, audience, expiry, replay; both sides' Ed25519 is
libsodium's, through PyNaCl). Also the two steps alone, in process.
Target: (b) − (a) ≤ 0.3 ms at p50, the median over rounds (each round interleaves both cases; the spread
across rounds is reported, since a fraction of a millisecond is within this machine's run-to-run noise).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from bench.common import ROOT, bastion_server, console, free_port, histogram, percentile, render, save, summary
from bench.gateway_bench import _wait_http
from governance import Principal
from registry.auth import mint_token
from registry.context import RegistryContext
from registry.db import upgrade
from registry.schemas.tools import served_definition
from registry.services.seed import SeedFile, apply_seed
from registry.settings import RegistrySettings

CALLS = int(os.environ.get("BASTION_BENCH_IDENTITY_CALLS", "1000"))  # per case and round
ROUNDS = int(os.environ.get("BASTION_BENCH_IDENTITY_ROUNDS", "5"))
WARMUP = 50
MICRO = 3000
SECRET = "bench-" + "s" * 40
PLAIN, SIGNED = "bench.local/plain", "bench.local/signed"


def _prepare(settings: RegistrySettings, upstream_url: str) -> None:
    upgrade(settings.effective_database_url)
    ctx = RegistryContext.create(settings)

    async def listed() -> list[dict[str, Any]]:
        async with Client(upstream_url, mode="legacy", cache=None) as client:
            return [served_definition(t) for t in (await client.list_tools()).tools]

    tools = anyio.run(listed)
    server = {"team": "bench", "description": "echo", "environment": "prod", "transport": "streamable-http",
              "endpoint": upstream_url, "tools": tools}  # fmt: skip
    seed = SeedFile.model_validate(
        {
            "teams": [{"name": "bench", "supportChannel": "#bench", "groups": ["bench"]}],
            "servers": [
                {**server, "name": PLAIN, "shortName": "plain", "identity": "none"},
                {**server, "name": SIGNED, "shortName": "signed", "identity": "assertion"},
            ],
        }
    )
    with ctx.db.transaction() as session:
        apply_seed(session, seed, settings.review_requirements, None)
    ctx.db.dispose()


async def _interleaved(url: str, token: str) -> list[dict[str, list[float]]]:
    """ROUNDS rounds of CALLS calls per case, interleaved; each round's samples apart (a round's difference is
    one estimate: their spread shows how much of a fraction of a millisecond is this machine's noise)."""
    rounds: list[dict[str, list[float]]] = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28", cache=None) as client,
    ):
        for _ in range(ROUNDS):
            rounds.append(await _round(client))
    return rounds


async def _round(client: Client) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"a": [], "b": []}
    for i in range(CALLS + WARMUP):
        order = [("a", "plain__echo"), ("b", "signed__echo")]
        for case, tool in order if i % 2 else reversed(order):  # alternate who goes first
            started = time.perf_counter()
            result = await client.call_tool(tool, {"text": "hi"})
            elapsed = (time.perf_counter() - started) * 1000
            if result.is_error:
                raise RuntimeError(f"{tool} failed: {result.content}")
            if i >= WARMUP:
                samples[case].append(elapsed)
    return samples


def _micro(settings: RegistrySettings, issuer: str) -> dict[str, float]:
    """Signing and verifying alone (µs, p50), in process, the gateway's key and the SDK's verifier."""
    from bastion_sdk import BastionIdentity
    from registry.gateway.identity import AssertionSigner

    signer = AssertionSigner.from_settings(settings)
    verifier = BastionIdentity(issuer=issuer, audience=SIGNED)
    principal = Principal(subject="bench-user", groups=frozenset({"bench"}))
    sign_us, verify_us = [], []
    tokens = []
    for _ in range(MICRO):
        started = time.perf_counter()
        tokens.append(signer.sign(principal, SIGNED))
        sign_us.append((time.perf_counter() - started) * 1e6)

    async def verify_all() -> None:
        await verifier.verify(tokens[0])  # fetches the JWKS once
        for token in tokens[1:]:
            started = time.perf_counter()
            await verifier.verify(token)
            verify_us.append((time.perf_counter() - started) * 1e6)

    anyio.run(verify_all)
    return {"sign_us_p50": percentile(sign_us, 50), "verify_us_p50": percentile(verify_us, 50)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        up_port, gw_port = free_port(), free_port()
        issuer = f"http://127.0.0.1:{gw_port}"
        upstream = subprocess.Popen(
            [sys.executable, "-m", "bench.sdk_echo_server", "--port", str(up_port), "--issuer", issuer,
             "--audience", SIGNED],
            cwd=ROOT,
        )  # fmt: skip
        upstream_url = f"http://127.0.0.1:{up_port}/mcp"
        env = {
            "BASTION_DATA_DIR": str(Path(tmp) / "data"),
            "BASTION_DATABASE_URL": f"sqlite:///{Path(tmp) / 'registry.db'}",
            "BASTION_JWT_SECRET": SECRET,
            "BASTION_RATE_LIMIT_PER_USER": "100000000",
            "BASTION_RATE_LIMIT_PER_TOOL": "100000000",
        }
        try:
            _wait_http(upstream_url, upstream)
            settings = RegistrySettings(
                data_dir=Path(env["BASTION_DATA_DIR"]), database_url=env["BASTION_DATABASE_URL"], jwt_secret=SECRET,
                port=gw_port,
            )  # fmt: skip
            _prepare(settings, upstream_url)
            with bastion_server(env, gw_port) as base:
                token = mint_token(settings, user="bench-user", groups=["bench"])
                console.print(
                    f"[bold]identity[/]: {ROUNDS} rounds of {CALLS} calls per case, "
                    "(a) identity none and (b) assertion interleaved"
                )
                rounds = anyio.run(_interleaved, f"{base}/mcp", token)
                micro = _micro(settings, issuer)
        finally:
            upstream.terminate()
            upstream.wait(timeout=15)

    samples = {case: [ms for r in rounds for ms in r[case]] for case in ("a", "b")}
    a, b = summary(samples["a"]), summary(samples["b"])
    per_round = [percentile(r["b"], 50) - percentile(r["a"], 50) for r in rounds]
    paired_per_round = [statistics.median(y - x for x, y in zip(r["a"], r["b"], strict=True)) for r in rounds]
    added, paired = statistics.median(per_round), statistics.median(paired_per_round)
    render(
        "Caller assertion to an SDK upstream through the gateway (latency ms)",
        ["case", "p50", "p99", "mean"],
        [
            ["a identity: none", a["p50"], a["p99"], a["mean"]],
            ["b identity: assertion", b["p50"], b["p99"], b["mean"]],
            ["b − a (all rounds: p50; p99; mean)", b["p50"] - a["p50"], b["p99"] - a["p99"], b["mean"] - a["mean"]],
        ],
        note=(
            f"{ROUNDS} rounds of {CALLS} calls per case; b − a at p50 per round: "
            f"{', '.join(f'{x:.2f}' for x in per_round)} ms (median {added:.2f}); "
            f"median of paired differences per round: {', '.join(f'{x:.2f}' for x in paired_per_round)} ms "
            f"(median {paired:.2f})\n"
            f"in process, p50: sign {micro['sign_us_p50']:.0f} µs, verify {micro['verify_us_p50']:.0f} µs\n"
            f"target: b − a ≤ 0.3 ms at p50 (median of rounds): {'met' if added <= 0.3 else 'NOT met'}"
        ),
    )
    payload = {
        "a": a, "b": b, "rounds": ROUNDS, "calls_per_round": CALLS, "added_p50_ms": added,
        "added_p50_ms_per_round": per_round, "paired_median_ms": paired, "paired_median_ms_per_round": paired_per_round,
        **micro,
    }  # fmt: skip
    plot = histogram("identity_latency", {"a identity: none": samples["a"], "b identity: assertion": samples["b"]})
    console.print(f"results: {save('identity', payload)}  plot: {plot}")
