"""Denial of service and exposure: cardinality, rate limits on denied calls, unbounded echoes, deep queries,
and a server started on a database it cannot use."""

from __future__ import annotations

import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from tests.knowledge_fixtures import Demo, Knowledge
from tests.security.clients import call, connect, everything, text
from tests.security.conftest import BASTION, ROOT, Live, base_env, bastion, knowledge_env, register_test_servers, serve


def series(body: str) -> int:
    return sum(1 for line in body.splitlines() if line and not line.startswith("#"))


def test_caller_chosen_tool_names_mint_no_metric_series(live: Live) -> None:
    """Old code: 3,000 unique names grew /metrics from 62 KB to 31 MB (a series per name)."""
    before = httpx.get(f"{live.base}/metrics", headers=live.admin).text
    marker = uuid.uuid4().hex[:8]

    async def flood() -> None:
        async def one(worker: int) -> None:
            async with connect(live.base, live.token(f"dos-{worker}", ["analysts"])) as client:
                for i in range(150):
                    await client.call_tool(f"ops__{marker}_{worker}_{i}", {})

        async with anyio.create_task_group() as tg:
            for worker in range(4):
                tg.start_soon(one, worker)

    anyio.run(flood)
    after = httpx.get(f"{live.base}/metrics", headers=live.admin).text
    assert marker not in after
    assert series(after) - series(before) < 40, (series(before), series(after))


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory, demo: Demo, knowledge: Knowledge) -> Iterator[Live]:
    """A server with a small per-user rate limit (SQLite, its own data directory)."""
    data = tmp_path_factory.mktemp("strict")
    env = base_env(data, BASTION_RATE_LIMIT_PER_USER="20", BASTION_RATE_LIMIT_PER_TOOL="20",
                   **knowledge_env(demo, knowledge, data))  # fmt: skip
    server = serve(data, env)
    try:
        register_test_servers(server)
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("target", ["vault__read_note", "nosuch__tool"])
def test_denied_and_unknown_calls_are_rate_limited(strict: Live, target: str) -> None:
    """Old code: calls to unknown or denied tools skipped the rate limiter entirely."""
    token = strict.token(f"hammer-{uuid.uuid4().hex[:6]}", ["analysts"])

    async def hammer() -> list[str]:
        async with connect(strict.base, token) as client:
            return [text(await client.call_tool(target, {"name": "x"})) for _ in range(30)]

    answers = anyio.run(hammer)
    limited = [a for a in answers if "rate limit" in a]
    assert len(limited) >= 9, answers[-3:]
    # The bucket is the caller's: a permitted call right after is limited too.
    assert "rate limit" in text(call(strict.base, token, "ops__read_metric", {"name": "m"}))


def test_a_2mb_argument_is_not_echoed(live: Live) -> None:
    url = "https://shop.example/p?" + "a" * (2 * 1024 * 1024)
    result = call(live.base, live.token("ann", ["analysts"]), "dedupe__normalize_urls", {"urls": [url]})
    assert len(everything(result)) < 20_000, len(everything(result))


def test_a_deep_query_gets_a_clear_refusal(live: Live) -> None:
    """Old code: a 3,000-deep nested query got an error with an empty message."""
    sql = "SELECT * FROM " + "(SELECT * FROM " * 3000 + "ads.campaigns" + ") t" * 3000
    result = call(live.base, live.token("ann", ["analysts"]), "sql__validate_sql", {"sql": sql})
    body = everything(result)
    assert "too_complex" in body and len(body) < 10_000


def test_serve_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    """Old code: `bastion serve` started, /healthz said 200, and every request failed (no such table)."""
    empty = tmp_path / "elsewhere.db"
    env = base_env(tmp_path / "data", BASTION_DATABASE_URL=f"sqlite:///{empty}", BASTION_PORT="1")
    done = subprocess.run([*BASTION, "serve"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode != 0
    assert "bastion db upgrade" in done.stderr and "Traceback" not in done.stderr


def test_the_embedded_default_database_is_migrated_at_start(tmp_path: Path) -> None:
    live = serve(tmp_path / "fresh", base_env(tmp_path / "fresh"), migrate=False)  # no `db upgrade` first
    try:
        assert httpx.get(f"{live.base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{live.base}/v1/catalog", headers=live.analyst).status_code == 200
    finally:
        live.stop()


def test_healthz_is_503_while_the_schema_is_behind(tmp_path: Path) -> None:
    from bastion.app import create_app
    from registry.context import RegistryContext
    from registry.db import upgrade
    from registry.settings import RegistrySettings

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0002")
    settings = RegistrySettings(data_dir=tmp_path, database_url=url, jwt_secret="s" * 40)
    with TestClient(create_app(settings, RegistryContext.create(settings))) as client:
        response = client.get("/healthz")
    assert response.status_code == 503 and "bastion db upgrade" in response.json()["error"]
    assert bastion(base_env(tmp_path, BASTION_DATABASE_URL=url), "db", "upgrade").returncode == 0
    with TestClient(create_app(settings, RegistryContext.create(settings))) as client:
        assert client.get("/healthz").status_code == 200


def test_errors_do_not_echo_unbounded_input_anywhere(live: Live) -> None:
    huge = "z" * 300_000
    cases = [
        ("sql__validate_sql", {"sql": f"SELECT {huge[:90_000]} FROM ads.campaigns"}),
        ("sql__describe_table", {"name": huge[:250]}),
        ("rerank__rerank", {"candidates": [{"id": huge[:5000], "score": 1, "embedding": [1.0]}], "k": 1}),
        ("parity__audit_parity", {"training": huge[:90_000], "serving": "x.parquet", "keys": ["id"]}),
    ]
    for tool, arguments in cases:
        body = everything(call(live.base, live.token("ann", ["analysts"]), tool, arguments))
        assert len(re.findall("z{300,}", body)) == 0, (tool, len(body))


def cursor(values: object) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "path", ["/admin/v1/audit", "/admin/v1/approvals", "/v0.1/servers", "/admin/v1/teams", "/admin/v1/keys",
             "/admin/v1/servers", "/admin/v1/events"],
)  # fmt: skip
@pytest.mark.parametrize("values", [[123], ["x"], [[1]], ["\ud800", "a"], [1.5], [{"a": 1}], ["not-a-date", "x"],
                                    [2**70], [True]])  # fmt: skip
def test_hand_made_cursors_are_a_400_not_a_500(live: Live, path: str, values: object) -> None:
    """Old code: a well-encoded cursor with values of the wrong type reached the query and failed with a 500."""
    response = httpx.get(f"{live.base}{path}", params={"cursor": cursor(values)}, headers=live.admin)
    assert response.status_code in (200, 400), (path, values, response.status_code, response.text[:200])
    if response.status_code == 400:
        assert response.json()["field"] == "cursor"
