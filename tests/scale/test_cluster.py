"""`scripts/cluster`: a Chroma server, two `bastion serve` replicas on PostgreSQL + Redis (and Spark Connect when
pyspark is installed), as real processes — one cluster for the module, stopped by pid at the end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import create_engine, text

from embeddings.settings import DEMO_DIR
from registry.auth import mint_token
from registry.settings import RegistrySettings, normalize_database_url
from tests.conftest import service_url
from tests.knowledge_fixtures import Demo

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).parent.parent.parent
SCRIPT = ROOT / "scripts" / "cluster"
REPLICAS = ("replica-1", "replica-2")
CACHE_TTL = 0.5
PROTOCOL = "2026-07-28"
# A query shape the demo history never shows (nothing there reads price_usd): after the rebuild its intent is new.
NEW_QUERY = ("SELECT brand, avg(price_usd) AS avg_price, count(*) AS products\nFROM shopping.products\n"
             "WHERE availability = 'IN_STOCK'\nGROUP BY brand\nORDER BY avg_price DESC\nLIMIT 20")  # fmt: skip


@dataclass
class Cluster:
    env: dict[str, str]
    base: Path
    query_log: Path
    state: dict[str, Any]
    up_output: str
    settings: RegistrySettings = field(init=False)

    def __post_init__(self) -> None:
        self.settings = RegistrySettings(data_dir=Path(self.state["data_dir"]), jwt_secret=None)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def url(self, replica: str) -> str:
        return str(self.state["components"][replica]["url"])

    def token(self, user: str, groups: list[str] | None = None, **claims: Any) -> str:
        return mint_token(self.settings, user=user, groups=groups or [], **claims)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token('root', ['bastion-admins'], clearance='restricted')}"}


def _scratch_redis(url: str) -> str:
    """The test Redis, database 1: the cluster's rate-limit keys apart from other tests'."""
    return urlsplit(url)._replace(path="/1").geturl()


@pytest.fixture(scope="module")
def cluster(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    postgres = service_url("BASTION_TEST_POSTGRES_URL", "PostgreSQL")
    redis = service_url("BASTION_TEST_REDIS_URL", "Redis")
    tmp = tmp_path_factory.mktemp("cluster")
    query_log = tmp / "query_log.jsonl"  # a copy: the rebuild test appends to it
    shutil.copy(demo.query_log, query_log)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({
        "BASTION_CLUSTER_DIR": str(tmp / "cluster"),
        "BASTION_CLUSTER_POSTGRES_URL": postgres,
        "BASTION_CLUSTER_REDIS_URL": _scratch_redis(redis),
        "BASTION_WAREHOUSE_URL": str(demo.warehouse),
        "BASTION_CATALOG_METADATA": str(DEMO_DIR / "metadata.yaml"),
        "BASTION_QUERY_LOG": str(query_log),
        "BASTION_REGISTRY_CACHE_TTL": str(CACHE_TTL),
    })  # fmt: skip
    base = tmp / "cluster"
    up = subprocess.run([str(SCRIPT), "up"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
                        check=False)  # fmt: skip
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((base / "cluster.json").read_text())
        yield Cluster(env, base, query_log, state, up.stdout)
    finally:
        subprocess.run([str(SCRIPT), "down"], env=env, cwd=ROOT, capture_output=True, timeout=120, check=False)


@asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[Client]:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=120) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), mode="legacy", cache=None) as client,
    ):
        yield client


def rpc(url: str, token: str, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
    """One stateless MCP request (revision 2026-07-28: a single POST, as `bastion search` sends it)."""
    name = (params or {}).get("name", "")
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": {
        "io.modelcontextprotocol/protocolVersion": PROTOCOL,
        "io.modelcontextprotocol/clientInfo": {"name": "cluster-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}}}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": PROTOCOL, "Mcp-Method": method}  # fmt: skip
    if name:
        headers["Mcp-Name"] = name
    return httpx.post(f"{url}/mcp", json=body, headers=headers, timeout=120)


def result_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, f"{response.status_code}: {response.text[:500]}"
    if response.headers.get("content-type", "").startswith("application/json"):
        message: dict[str, Any] = response.json()
    else:
        message = next(json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:"))
    assert "error" not in message, message
    result: dict[str, Any] = message["result"]
    assert not result.get("isError"), result
    return result


def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    structured: dict[str, Any] = result_of(rpc(url, token, "tools/call", {"name": tool, "arguments": arguments}))[
        "structuredContent"
    ]
    return structured


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


# -- a call through each replica; the shared index ----------------------------------------------------------


@pytest.mark.anyio
async def test_each_replica_serves_the_gateway_and_searches_the_shared_index(cluster: Cluster) -> None:
    token = cluster.token(f"ana-{uuid.uuid4().hex[:6]}", ["analysts"])
    tops: dict[str, list[str]] = {}

    async def search(replica: str) -> None:
        async with mcp_client(cluster.url(replica), token) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"sql__search_tables", "sql__search_queries", "sql__describe_table"} <= tools, tools
            # The first search loads the model in the replica: both at once.
            found = await client.call_tool("sql__search_tables", {"question": "daily active users by platform"})
            assert not found.is_error, found.content
            assert found.structured_content is not None
            tops[replica] = [hit["table"] for hit in found.structured_content["tables"]]

    async with anyio.create_task_group() as group:
        for replica in REPLICAS:
            group.start_soon(search, replica)
    assert tops["replica-1"][0] == "users.daily_active_users"
    assert tops["replica-1"] == tops["replica-2"]
    # The vectors are the Chroma server's: no replica (nor the build) wrote an embedded store.
    assert not (Path(cluster.state["data_dir"]) / "chroma").exists()
    chroma = httpx.get(f"{cluster.state['components']['chroma']['url']}/api/v2/heartbeat", timeout=5)
    assert chroma.status_code == 200
    import chromadb

    port = int(cluster.state["components"]["chroma"]["port"])
    collections = {c.name: c.count() for c in chromadb.HttpClient(host="127.0.0.1", port=port).list_collections()}
    assert collections["bastion-schema"] == 35 and collections["bastion-intent"] > 100, collections
    deadline = time.monotonic() + 10  # the audit log is written in batches
    while True:
        audited = httpx.get(f"{cluster.url('replica-1')}/admin/v1/audit", params={"limit": 100, "kind": "call"},
                            headers=cluster.admin, timeout=30).json()["items"]  # fmt: skip
        if {"replica-1", "replica-2"} <= {row["replica"] for row in audited} or time.monotonic() > deadline:
            break
        await anyio.sleep(0.2)
    assert {"replica-1", "replica-2"} <= {row["replica"] for row in audited}, audited[:3]


# -- identity across replicas ------------------------------------------------------------------------------


def test_an_api_key_revoked_on_one_replica_is_refused_on_the_other(cluster: Cluster) -> None:
    one, two = cluster.url("replica-1"), cluster.url("replica-2")
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    made = httpx.post(f"{one}/admin/v1/keys", json={"name": name, "groups": ["analysts"]}, headers=cluster.admin,
                      timeout=30)  # fmt: skip
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    for url in (one, two):  # created on one, usable on both
        assert "sql__search_tables" in {t["name"] for t in result_of(rpc(url, key, "tools/list"))["tools"]}
    revoked = httpx.delete(f"{two}/admin/v1/keys/{name}", headers=cluster.admin, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["revokedAt"], revoked.text
    assert rpc(two, key, "tools/list").status_code == 401  # its own write applies at once
    started = time.monotonic()
    while (status := rpc(one, key, "tools/list").status_code) == 200:
        assert time.monotonic() - started < CACHE_TTL + 5, "replica-1 still accepts the revoked key"
        time.sleep(0.1)
    assert status == 401
    assert time.monotonic() - started < CACHE_TTL + 5


# -- an incremental rebuild while both replicas serve -------------------------------------------------------


def _new_intent(cluster: Cluster) -> dict[str, Any] | None:
    intents = Path(cluster.state["data_dir"]) / "index" / "intents.jsonl"
    for line in intents.read_text().splitlines():
        record: dict[str, Any] = json.loads(line)
        if "price_usd" in record["example_sql"]:
            return record
    return None


def test_an_incremental_rebuild_reaches_both_replicas_while_they_serve(cluster: Cluster) -> None:
    token = cluster.token(f"ben-{uuid.uuid4().hex[:6]}", ["analysts"])
    assert _new_intent(cluster) is None
    with cluster.query_log.open("a") as log:
        for n in range(3):
            log.write(json.dumps({"query_id": f"new-{n}", "author": "nina", "team": "shopping",
                                  "executed_at": f"2026-04-0{n + 1}T10:00:00", "runtime_ms": 420, "success": True,
                                  "rows_returned": 20, "sql": NEW_QUERY}) + "\n")  # fmt: skip
    answered: list[str] = []
    errors: list[str] = []
    done = threading.Event()

    # Four callers, one search every 0.2 s between them: within the gateway's per-user rate limit (shared by the
    # replicas through Redis), so that any refusal here is the rebuild's doing.
    callers = [cluster.token(f"ben-{n}-{uuid.uuid4().hex[:6]}", ["analysts"]) for n in range(4)]

    def keep_searching() -> None:
        n = 0
        while not done.is_set():
            replica = REPLICAS[n % 2]
            try:
                hits = call(cluster.url(replica), callers[n % 4], "sql__search_tables",
                            {"question": "weekly spend by advertiser"})  # fmt: skip
                assert hits["tables"], hits
                answered.append(replica)
            except Exception as exc:  # any failure during the rebuild is the finding
                errors.append(f"{replica}: {type(exc).__name__}: {exc}")
            n += 1
            done.wait(0.2)

    searching = threading.Thread(target=keep_searching)
    searching.start()
    try:
        rebuilt = cluster.run("index")
    finally:
        done.set()
        searching.join(timeout=150)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    summary = " ".join(rebuilt.stdout.split())
    intent = summary.split("intent: ", 1)[1]
    embedded, unchanged = int(intent.split(" embedded, ", 1)[0]), int(intent.split(" embedded, ", 1)[1].split()[0])
    assert 0 < embedded < 20 and unchanged >= 150, summary  # incremental: only the new intent's texts embedded
    assert errors == [], errors[:5]
    assert set(answered) == set(REPLICAS) and len(answered) >= 10, answered

    new = _new_intent(cluster)
    assert new is not None
    question = new["intent"]["questions"][0]
    for replica in REPLICAS:
        found = call(cluster.url(replica), token, "sql__search_queries", {"question": question, "k": 3})
        first = found["queries"][0]["hit"]
        assert first["id"] == new["id"] and "price_usd" in first["sql"], (replica, first)
        tables = call(cluster.url(replica), token, "sql__describe_table", {"name": "shopping.products"})
        assert tables["usage"]["queries"] >= 3, tables["usage"]


# -- status, spark, down ---------------------------------------------------------------------------------------


def test_status_shows_each_component_with_its_pid_port_and_health(cluster: Cluster) -> None:
    shown = cluster.run("status")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = {line.split()[0]: line.split() for line in shown.stdout.splitlines() if line.strip()}
    for name in ("chroma", *REPLICAS):
        component = cluster.state["components"][name]
        assert lines[name][1:4] == [str(component["pid"]), str(component["port"]), "healthy"], lines[name]
    assert "spark" in lines  # running and healthy, or skipped with the reason
    if "spark" in cluster.state["components"]:
        assert lines["spark"][3] == "healthy" and "BASTION_SQL_URL=sc://127.0.0.1:" in cluster.up_output
    else:
        assert lines["spark"][3] == "skipped" and "Spark skipped" in cluster.up_output
    for name in REPLICAS:
        assert cluster.url(name) in cluster.up_output
    assert f"BASTION_CHROMA_URL={cluster.state['components']['chroma']['url']}" in cluster.up_output
    report = json.loads(cluster.run("status", "--json").stdout)
    assert report["running"] and all(c["healthy"] for c in report["components"].values())
    for component in report["components"].values():
        assert component["url"].split("//")[1].startswith("127.0.0.1:")


def test_spark_connect_answers_when_pyspark_is_installed(cluster: Cluster) -> None:
    if "spark" not in cluster.state["components"]:
        message = f"Spark not started: {cluster.state['spark_skipped']}"
        extras = {e.strip() for e in os.environ.get("EXTRAS", "").split(",")}
        if os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1" and "spark" in extras:
            pytest.fail(message)  # CI installed the spark extra: the cluster must start it
        pytest.skip(message)
    url = cluster.state["components"]["spark"]["url"]
    script = (f"from pyspark.sql import SparkSession\ns = SparkSession.builder.remote({url!r}).getOrCreate()\n"
              "print(s.sql('SELECT 40 + 2 AS x').collect()[0].x)\ns.stop()\n")  # fmt: skip
    import sys

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "42", done.stderr[-2000:]


@pytest.mark.anyio
async def test_with_spark_the_sql_tool_queries_the_warehouse_on_spark(cluster: Cluster) -> None:
    """`up` loaded the demo warehouse into Spark's catalog; a replica's run_sql is checked in Spark's dialect and
    answered by Spark, with the same rows the DuckDB warehouse holds."""
    if "spark" not in cluster.state["components"]:
        pytest.skip(f"Spark not started: {cluster.state['spark_skipped']}")
    assert cluster.state["spark_tables"] == 35
    sql = "SELECT status, count(*) AS n FROM ads.campaigns GROUP BY status ORDER BY status"
    token = cluster.token(f"ana-{uuid.uuid4().hex[:6]}", ["analysts"])
    async with mcp_client(cluster.url("replica-2"), token) as client:
        result = await client.call_tool("sql__run_sql", {"sql": sql})
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert result.structured_content["dialect"] == "spark"
    import duckdb

    warehouse = Path(cluster.state["data_dir"]) / "demo" / "warehouse.duckdb"
    if cluster.state["sources"].get("BASTION_WAREHOUSE_URL"):
        warehouse = Path(cluster.state["sources"]["BASTION_WAREHOUSE_URL"])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        expected = [list(row) for row in con.execute(sql).fetchall()]
    assert result.structured_content["result"]["rows"] == expected


def test_down_stops_every_process_and_drops_the_scratch_database(cluster: Cluster) -> None:
    pids = [int(c["pid"]) for c in cluster.state["components"].values()]
    assert all(running(pid) for pid in pids)
    stopped = cluster.run("down", timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [pid for pid in pids if running(pid)] == []
    assert list((cluster.base / "pids").glob("*.pid")) == []
    database = cluster.state["database"]
    assert database["scratch"]
    admin = create_engine(normalize_database_url(database["server"]))
    try:
        with admin.connect() as conn:
            left = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database["name"]}).all()
    finally:
        admin.dispose()
    assert left == []
    gone = cluster.run("status")
    assert gone.returncode == 3 and "no cluster" in gone.stdout
