"""Registry read paths at scale: 10,000 servers × 10 tools, over loopback HTTP.

Reports p50/p99 of discovery list, discovery search, /v1/catalog and /v1/authz/check, on
SQLite and (when BASTION_TEST_POSTGRES_URL or BASTION_BENCH_POSTGRES_URL is set) PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import Progress
from sqlalchemy import bindparam, create_engine, insert, text, update
from sqlalchemy.engine import make_url

from bench.common import LoopbackClient, bastion_server, console, free_port, histogram, render, save, summary
from governance import tool_definition_hash
from registry.auth import mint_token
from registry.db import upgrade
from registry.db.models import Policy, Server, ServerVersion, Team, TeamMember, Tool, VersionTransition
from registry.semver import parse
from registry.settings import RegistrySettings, normalize_database_url

SERVERS = 10_000
TOOLS = 10
REQUESTS = 400
WORDS = [
    "spend",
    "revenue",
    "campaign",
    "audience",
    "forecast",
    "catalog",
    "search",
    "ranking",
    "feature",
    "embedding",
    "table",
    "query",
]
TARGETS = {"list": 10.0, "search": 25.0, "authz": 3.0}


def server_name(i: int) -> str:
    return f"com.example{i % 97}.{WORDS[i % len(WORDS)]}/server-{i}"


def populate(url: str, servers: int = SERVERS, tools: int = TOOLS) -> None:
    rng = random.Random(42)
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn, Progress(console=console, transient=True) as progress:
        conn.execute(
            insert(Team),
            [
                {"name": f"team-{t}", "support_channel": f"#team-{t}", "members": [], "groups": [f"g{t}"]}
                for t in range(50)
            ],
        )
        conn.execute(insert(TeamMember), [{"team_id": t + 1, "principal": f"group:g{t}"} for t in range(50)])
        task = progress.add_task("seeding servers", total=servers)
        for start in range(0, servers, 1000):
            chunk = range(start, min(start + 1000, servers))
            conn.execute(
                insert(Server),
                [
                    {
                        "id": i + 1,
                        "name": server_name(i),
                        "short_name": f"s{i}",
                        "title": f"{WORDS[i % len(WORDS)].title()} server {i}",
                        "description": f"{rng.choice(WORDS)} and {rng.choice(WORDS)} tools for team {i % 50}",
                        "team_id": i % 50 + 1,
                        "environment": "prod" if i % 10 else "dev",
                        "transport": "builtin",
                        "classification": rng.choice(["public", "internal", "internal", "confidential"]),
                        "allowed_groups": [] if i % 3 else ["analysts", f"g{i % 50}"],
                    }
                    for i in chunk
                ],
            )
            conn.execute(
                insert(ServerVersion),
                [
                    {
                        "id": i + 1,
                        "server_id": i + 1,
                        "version": "1.0.0",
                        "version_key": parse("1.0.0").sort_key,
                        "status": "approved",
                        "is_latest": True,
                        "server_json": {},
                        "created_by": "bench",
                        "published_at": now,
                        "status_changed_at": now,
                    }
                    for i in chunk
                ],
            )
            tool_rows: list[dict[str, Any]] = []
            for i in chunk:
                for t in range(tools):
                    schema = {
                        "type": "object",
                        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}},
                        "required": ["query"],
                    }
                    annotations = {"readOnlyHint": t % 4 != 0}
                    name = f"{WORDS[t % len(WORDS)]}_{t}"
                    description = f"Look up {WORDS[(i + t) % len(WORDS)]} data."
                    tool_rows.append(
                        {
                            "version_id": i + 1,
                            "name": name,
                            "description": description,
                            "input_schema": schema,
                            "annotations": annotations,
                            "content_hash": tool_definition_hash(name, description, schema, None, annotations),
                        }
                    )
            conn.execute(insert(Tool), tool_rows)
            summaries: dict[int, list[dict[str, Any]]] = {}
            for row in tool_rows:
                summaries.setdefault(row["version_id"], []).append(
                    {"name": row["name"], "annotations": row["annotations"]}
                )
            conn.execute(
                update(ServerVersion).where(ServerVersion.id == bindparam("vid")).values(tool_summary=bindparam("ts")),
                [{"vid": vid, "ts": sorted(ts, key=lambda t: t["name"])} for vid, ts in summaries.items()],
            )
            conn.execute(
                insert(VersionTransition),
                [
                    {"version_id": i + 1, "from_status": "in_review", "to_status": "approved", "actor": "bench"}
                    for i in chunk
                ],
            )
            conn.execute(
                insert(Policy),
                [
                    {"server_id": i + 1, "tool": f"{WORDS[1]}_1", "allowed_groups": ["ads-eng"], "updated_by": "bench"}
                    for i in chunk
                    if i % 5 == 0
                ],
            )
            progress.advance(task, len(chunk))
    # As after any bulk load: statistics for the planner, and no autovacuum storm mid-measurement.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"))
    engine.dispose()


@contextmanager
def database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'registry.db'}"
        return
    base = normalize_database_url(os.environ["BASTION_BENCH_POSTGRES_URL"])
    name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(
    client: LoopbackClient,
    calls: dict[str, tuple[str, str, bytes | None]],
    rounds: int,
    before_each: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Round-robin over the endpoints, so background noise hits all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(rounds + 20):
        for name, (method, path, body) in calls.items():
            if name == "catalog" and i % 4:
                continue  # the catalog is slow and has no target: sample it less
            if before_each is not None:
                before_each()
            t0 = time.perf_counter()
            status, payload = client.request(method, path, body)
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}: {payload[:300]!r}")
            if i >= 20:
                samples[name].append(elapsed)
    return samples


def run_backend(backend: str, requests: int) -> dict[str, list[float]]:
    with database(backend) as url, tempfile.TemporaryDirectory() as data_dir:
        console.print(f"[bold]{backend}[/]: migrating and seeding {SERVERS:,} servers × {TOOLS} tools")
        upgrade(url)
        t0 = time.perf_counter()
        populate(url)
        console.print(f"  seeded in {time.perf_counter() - t0:.1f} s")
        env = {"BASTION_DATABASE_URL": url, "BASTION_DATA_DIR": data_dir, "BASTION_JWT_SECRET": "bench-" + "s" * 40}
        settings = RegistrySettings(jwt_secret=env["BASTION_JWT_SECRET"])
        token = mint_token(settings, user="ursula", groups=["analysts", "g7"], clearance="confidential")
        authz = json.dumps({"server": server_name(7), "tool": f"{WORDS[1]}_1"}).encode()
        calls: dict[str, tuple[str, str, bytes | None]] = {
            "list": ("GET", "/v0.1/servers?limit=100", None),
            "search": ("GET", "/v0.1/servers?search=forecast&limit=100", None),
            "catalog": ("GET", "/v1/catalog", None),
            "authz": ("POST", "/v1/authz/check", authz),
        }
        with bastion_server(env, free_port()) as base:
            client = LoopbackClient(base, {"Authorization": f"Bearer {token}"})
            try:
                warm = measure(client, calls, requests)
            finally:
                client.close()
        # Cold: the server re-reads the revision on every request (TTL 0) and we bump it
        # before each one, so every request pays the full load path, as right after a change.
        engine = create_engine(url)
        bump_conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")

        def bump() -> None:
            bump_conn.execute(text("UPDATE registry_revision SET value = value + 1 WHERE id = 1"))

        cold_calls = {f"{k} (cold)": v for k, v in calls.items() if k != "catalog"}
        with bastion_server({**env, "BASTION_REGISTRY_CACHE_TTL": "0"}, free_port()) as base:
            client = LoopbackClient(base, {"Authorization": f"Bearer {token}"})
            try:
                cold = measure(client, cold_calls, requests // 2, before_each=bump)
            finally:
                client.close()
                bump_conn.close()
                engine.dispose()
        return {**warm, **cold}


def main(requests: int = REQUESTS) -> None:
    backends = ["sqlite"]
    pg = os.environ.get("BASTION_BENCH_POSTGRES_URL") or os.environ.get("BASTION_TEST_POSTGRES_URL")
    if pg:
        os.environ["BASTION_BENCH_POSTGRES_URL"] = pg
        backends.append("postgres")
    else:
        console.print("[yellow]PostgreSQL skipped: set BASTION_BENCH_POSTGRES_URL (or BASTION_TEST_POSTGRES_URL)[/]")
    results: dict[str, dict[str, list[float]]] = {b: run_backend(b, requests) for b in backends}
    rows = []
    payload: dict[str, Any] = {}
    for backend, series in results.items():
        for endpoint, samples in series.items():
            stats = summary(samples)
            target = TARGETS.get(endpoint.removesuffix(" (cold)"))
            verdict = "-" if target is None else ("ok" if stats["p50"] <= target else "MISSED")
            rows.append(
                [
                    backend,
                    endpoint,
                    stats["p50"],
                    stats["p99"],
                    int(stats["n"]),
                    f"p50 ≤ {target} ms" if target else "-",
                    verdict,
                ]
            )
            payload[f"{backend}/{endpoint}"] = stats
    render(
        f"Registry over loopback HTTP — {SERVERS:,} servers × {TOOLS} tools (ms)",
        ["backend", "endpoint", "p50", "p99", "n", "target", "verdict"],
        rows,
        note=(
            "list: GET /v0.1/servers?limit=100 · search: ?search=forecast&limit=100 · catalog: GET /v1/catalog · "
            "authz: POST /v1/authz/check\nclient: one keep-alive http.client connection; endpoints interleaved\n"
            "(cold): registry revision bumped before every request, so nothing is served from the cache"
        ),
    )
    plot = histogram("registry_latency", {f"{b} {e}": s for b, series in results.items() for e, s in series.items()})
    console.print(f"results: {save('registry', payload)}  plot: {plot}")
