"""The chat agent's overhead per tool call, beside a direct gateway call of the same tool, in one run.

`bastion serve` runs as users start it, its LLM the scripted server in this process. Side by side:
- direct: `dedupe__normalize_urls` (10 URLs) over one open SDK client session to /mcp — the floor;
- chat /call: the same call through the chat API (session load, the graph's tools node, the gateway over a new
  MCP connection, storing the turn, the event stream) — no LLM at all;
- chat turn: a message the LLM answers with that tool call and then text, minus the time spent waiting for the
  LLM (reported by the server per turn).
Then 20 concurrent chat sessions, 5 turns each: errors, and whether every tool call was audited exactly once.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agents.scripted_llm import ScriptedLLM, scripted_app
from bastion.live import LiveServer
from bench.common import ROOT, bastion_server, console, free_port, histogram, render, save, summary
from registry.auth import mint_token
from registry.settings import RegistrySettings

SECRET = "bench-chat-secret-" + "s" * 40
URLS = [f"https://Example.com/p/{i}?utm_source=x&id={i}" for i in range(10)]
ROUNDS = int(os.environ.get("BENCH_CHAT_ROUNDS", "60"))
SESSIONS, TURNS = 20, 5


def respond(body: dict[str, Any]) -> Any:
    """Each request judged on its own: a user message → call the tool; a tool result → answer."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return "Normalized."
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": f"c{time.perf_counter_ns()}",
                "type": "function",
                "function": {"name": "dedupe__normalize_urls", "arguments": json.dumps({"urls": URLS})},
            }
        ],
    }


def events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post(path, json=body)
    response.raise_for_status()
    return [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]


async def direct(base: str, token: str, rounds: int) -> list[float]:
    samples = []
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, mode="2026-07-28", cache=None) as client:
            await client.list_tools()
            for _ in range(rounds + 5):
                started = time.perf_counter()
                result = await client.session.call_tool("dedupe__normalize_urls", {"urls": URLS})
                samples.append((time.perf_counter() - started) * 1000)
                assert not result.is_error
    return samples[5:]


def chat_calls(base: str, token: str, rounds: int) -> tuple[list[float], list[float], list[float]]:
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    sid = http.post("/v1/chat/sessions", json={}).json()["id"]
    direct_call, turn, hop = [], [], []
    for i in range(rounds + 5):
        started = time.perf_counter()
        found = events(
            http,
            f"/v1/chat/sessions/{sid}/messages",
            {"call": {"tool": "dedupe__normalize_urls", "arguments": {"urls": URLS}}},
        )
        elapsed = (time.perf_counter() - started) * 1000
        assert [e["status"] for e in found if e["type"] == "tool_result"] == ["ok"], found
        if i >= 5:
            direct_call.append(elapsed)
    sid = http.post("/v1/chat/sessions", json={}).json()["id"]  # a fresh history for the LLM turns
    for i in range(rounds + 5):
        started = time.perf_counter()
        found = events(http, f"/v1/chat/sessions/{sid}/messages", {"content": "normalize the list"})
        elapsed = (time.perf_counter() - started) * 1000
        done = next(e for e in found if e["type"] == "done")
        assert done["tool_calls"] == 1, found
        if i >= 5:
            turn.append(elapsed - done["llm_ms"])
            hop += [e["latency_ms"] for e in found if e["type"] == "tool_result"]
    return direct_call, turn, hop


def concurrent(base: str, admin: str) -> dict[str, Any]:
    settings = RegistrySettings(jwt_secret=SECRET)
    since = datetime.now(UTC).isoformat()
    errors: list[str] = []
    calls = 0

    def one(i: int) -> int:
        token = mint_token(settings, user=f"load-{i}", groups=["analysts"])
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        sid = http.post("/v1/chat/sessions", json={}).json()["id"]
        made = 0
        for _ in range(TURNS):
            found = events(http, f"/v1/chat/sessions/{sid}/messages", {"content": "normalize the list"})
            done = next(e for e in found if e["type"] == "done")
            if done["status"] != "complete":
                errors.append(f"session {i}: {done['status']}")
            made += sum(1 for e in found if e["type"] == "tool_result" and e["status"] == "ok")
        return made

    started = time.perf_counter()
    with ThreadPoolExecutor(SESSIONS) as pool:
        for future in [pool.submit(one, i) for i in range(SESSIONS)]:
            try:
                calls += future.result()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    elapsed = time.perf_counter() - started
    http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=60)
    audited = 0
    for i in range(SESSIONS):
        rows = http.get(
            "/admin/v1/audit", params={"subject": f"load-{i}", "since": since, "kind": "call", "limit": 100}
        ).json()["items"]
        audited += len(rows)
    return {
        "sessions": SESSIONS,
        "turns": SESSIONS * TURNS,
        "tool_calls": calls,
        "audited": audited,
        "errors": errors,
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    llm = ScriptedLLM()
    llm.respond = respond
    server = LiveServer(scripted_app(llm)).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                "BASTION_DATA_DIR": str(Path(tmp) / "data"),
                "BASTION_DATABASE_URL": f"sqlite:///{tmp}/chat.db",
                "BASTION_JWT_SECRET": SECRET,
                "BASTION_LLM_BASE_URL": f"{server.url}/v1",
                "BASTION_LLM_MODEL": "scripted",
                "BASTION_RATE_LIMIT_PER_USER": "100000000",
                "BASTION_RATE_LIMIT_PER_TOOL": "100000000",
            }
            full = {**os.environ, **env}
            import subprocess

            for step in (["db", "upgrade"], ["registry", "seed"]):
                subprocess.run(
                    [sys.executable, "-m", "bastion", *step], cwd=ROOT, env=full, check=True, stdout=subprocess.DEVNULL
                )
            port = free_port()
            with bastion_server(env, port) as base:
                settings = RegistrySettings(jwt_secret=SECRET)
                token = mint_token(settings, user="bench", groups=["analysts"])
                admin = mint_token(settings, user="bench-admin", groups=["bastion-admins"])
                console.print(f"chat bench: {ROUNDS} rounds each, side by side")
                # Interleaved blocks, so drift in the machine's load touches every series alike.
                floor: list[float] = []
                via_call: list[float] = []
                via_turn: list[float] = []
                via_hop: list[float] = []
                for _ in range(3):
                    floor += anyio.run(direct, base, token, ROUNDS // 3)
                    a, b, c = chat_calls(base, token, ROUNDS // 3)
                    via_call += a
                    via_turn += b
                    via_hop += c
                load = concurrent(base, admin)
    finally:
        server.stop()
    results = {
        "direct gateway call": summary(floor),
        "agent's tool call (in the graph)": summary(via_hop),
        "chat /call request": summary(via_call),
        "chat turn request minus LLM": summary(via_turn),
    }
    base_p50 = results["direct gateway call"]["p50"]
    rows = [[name, s["p50"], s["p99"], s["p50"] / base_p50] for name, s in results.items()]
    render(
        "chat agent overhead per tool call (dedupe__normalize_urls, 10 URLs)",
        ["case", "p50 ms", "p99 ms", "× direct p50"],
        rows,
        note="target: chat ≤ 1.5× direct (p50), LLM time excluded",
    )
    render(
        "20 concurrent chat sessions (scripted LLM)",
        ["sessions", "turns", "tool calls", "audited", "errors", "seconds"],
        [[load["sessions"], load["turns"], load["tool_calls"], load["audited"], len(load["errors"]), load["seconds"]]],
    )
    for error in load["errors"][:5]:
        console.print(f"[red]{error}[/]")
    save(
        "chat",
        {
            "rounds": ROUNDS,
            "latency_ms": results,
            "ratios": {n: s["p50"] / base_p50 for n, s in results.items()},
            "concurrent": load,
        },
    )
    histogram(
        "chat",
        {
            "direct gateway call": floor,
            "agent's tool call (in the graph)": via_hop,
            "chat /call request": via_call,
            "chat turn request minus LLM": via_turn,
        },
    )
