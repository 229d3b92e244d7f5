"""The red-team suite's target: a real `bastion serve`, started the way `make run` starts it.

One server per backend per test run (session fixtures): `db upgrade`, `registry seed`, `serve`, on SQLite
and on PostgreSQL, with the demo warehouse and knowledge index of the test session, a test builtin
(`dev.test/ops`, one destructive tool whose real runs are counted in a file) and tokens minted with the
server's own secret. Tests that need a server of their own (a second replica, odd settings) call `serve`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from embeddings.settings import DEMO_DIR
from registry.auth import mint_token
from registry.settings import RegistrySettings, normalize_database_url
from tests.conftest import service_url
from tests.knowledge_fixtures import Demo, Knowledge

ROOT = Path(__file__).parent.parent.parent
BASTION = [sys.executable, "-m", "bastion"]
SECRET = "red-team-secret-" + "s" * 40
STATE_KEY = "red-team-state-key-" + "k" * 40
OPS = "dev.test/ops"
VAULT = "dev.test/vault"
DEVBOX = "dev.test/devbox"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bastion(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BASTION, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


@dataclass
class Live:
    """A running `bastion serve` and what a test needs to talk to it."""

    base: str
    backend: str
    env: dict[str, str]
    data_dir: Path
    proc: subprocess.Popen[str]
    log: Path
    side_effects: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> RegistrySettings:
        return RegistrySettings(jwt_secret=SECRET, data_dir=self.data_dir)

    @property
    def database_url(self) -> str:
        return self.env.get("BASTION_DATABASE_URL") or f"sqlite:///{self.data_dir / 'registry.db'}"

    def token(self, user: str, groups: list[str] | None = None, **claims: Any) -> str:
        return mint_token(self.settings, user=user, groups=groups or [], **claims)

    def auth(self, user: str, groups: list[str] | None = None, **claims: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user, groups, **claims)}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.auth("root", ["bastion-admins"], clearance="restricted")

    @property
    def analyst(self) -> dict[str, str]:
        """An ordinary analyst: internal clearance, no admin or reviewer role."""
        return self.auth("ann", ["analysts"], clearance="internal")

    def http(self, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=headers or {}, timeout=60, **kwargs)

    def runs(self) -> list[str]:
        """Campaign ids the destructive test tool really paused (one line per run)."""
        return self.side_effects.read_text().split() if self.side_effects.exists() else []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({
        "BASTION_DATA_DIR": str(data_dir),
        "BASTION_SEED_FILE": str(ROOT / "seed" / "registry.yaml"),
        "BASTION_JWT_SECRET": SECRET,
        "BASTION_GATEWAY_STATE_KEYS": STATE_KEY,
        "BASTION_EXTRA_BUILTINS": "ops=tests.security.upstream:build,vault=tests.security.upstream:build_vault,"
        "devbox=tests.security.upstream:build_devbox",
        "BASTION_TEST_SIDE_EFFECTS": str(data_dir / "side-effects.txt"),
        "BASTION_LOG_LEVEL": "WARNING",
        "BASTION_HEALTH_INTERVAL": "2",
        "BASTION_PARITY_MEMORY_LIMIT": "1GB",  # tests/security/test_sql_memory.py
    })  # fmt: skip
    env.update(extra)
    return env


def knowledge_env(demo: Demo, knowledge: Knowledge, data_dir: Path) -> dict[str, str]:
    """Point a server at the session's demo warehouse and built index (read-only use)."""
    index = data_dir / "index"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not index.exists():
        index.symlink_to(knowledge.settings.data_dir / "index", target_is_directory=True)
    return {
        "BASTION_WAREHOUSE_URL": str(demo.warehouse),
        "BASTION_CATALOG_METADATA": str(DEMO_DIR / "metadata.yaml"),
        "BASTION_QUERY_LOG": str(demo.query_log),
        "BASTION_CHROMA_PATH": str(knowledge.settings.chroma_dir()),
    }


def serve(data_dir: Path, env: dict[str, str], *, migrate: bool = True, wait: bool = True) -> Live:
    """`bastion db upgrade`, `registry seed` (when migrate), then `bastion serve` on a free port."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**env, "BASTION_PORT": str(port)}
    if migrate:
        for step in (("db", "upgrade"), ("registry", "seed")):
            done = bastion(env, *step)
            assert done.returncode == 0, f"{' '.join(step)}: {done.stdout}\n{done.stderr}"
    log = data_dir / f"serve-{port}.log"
    handle = log.open("w")
    proc = subprocess.Popen([*BASTION, "serve"], env=env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    live = Live(f"http://127.0.0.1:{port}", "postgres" if "BASTION_DATABASE_URL" in env else "sqlite", env,
                data_dir, proc, log, Path(env["BASTION_TEST_SIDE_EFFECTS"]))  # fmt: skip
    if wait:
        wait_ready(live)
    return live


def wait_ready(live: Live, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if live.proc.poll() is not None:
            raise RuntimeError(f"bastion serve exited ({live.proc.returncode}):\n{live.log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{live.base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    live.stop()
    raise RuntimeError(f"bastion serve did not become healthy:\n{live.log.read_text()[-3000:]}")


SERVERS = {
    # name: (builtin factory, team, extra server fields)
    OPS: ("build", "ads-eng", {}),
    VAULT: ("build_vault", "platform", {"classification": "restricted", "allowedGroups": ["finance"]}),
    DEVBOX: ("build_devbox", "ads-eng", {"environment": "dev"}),
}


def register_test_servers(live: Live) -> None:
    """Publish the test builtins through the admin API: server, version, the reviews it needs."""
    from anyio import run

    from bastion.builtins import tool_definitions
    from tests.security import upstream

    with live.http(live.admin) as admin:
        for name, (factory, team, fields) in SERVERS.items():
            if admin.get(f"/admin/v1/servers/{name}").status_code == 200:
                continue
            short = name.rsplit("/", 1)[1]
            tools = [d.model_dump(by_alias=True, exclude_none=True)
                     for d in run(tool_definitions, getattr(upstream, factory)())]  # fmt: skip
            body = {"name": name, "shortName": short, "team": team, "description": f"{short} tools",
                    "transport": "builtin", "environment": "prod", **fields}  # fmt: skip
            created = admin.post("/admin/v1/servers", json=body)
            assert created.status_code == 201, created.text
            made = admin.post(f"/admin/v1/servers/{name}/versions", json={"version": "1.0.0", "tools": tools})
            assert made.status_code == 201, made.text
            out = admin.post(f"/admin/v1/servers/{name}/versions/1.0.0/status", json={"status": "in_review"}).json()
            for kind in out["requiredReviews"]:
                review = admin.post(f"/admin/v1/servers/{name}/versions/1.0.0/reviews",
                                    json={"kind": kind, "decision": "approve"},
                                    headers=live.auth("rita", ["bastion-reviewers"]))  # fmt: skip
                assert review.status_code == 201, review.text


def postgres_database() -> str:
    """A fresh, empty database on the configured PostgreSQL server."""
    base = normalize_database_url(service_url("BASTION_TEST_POSTGRES_URL", "PostgreSQL"))
    name = f"bastion_redteam_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    base = normalize_database_url(service_url("BASTION_TEST_POSTGRES_URL", "PostgreSQL"))
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def server_on(backend: str, data_dir: Path, **extra: str) -> Iterator[Live]:
    """`bastion serve` on SQLite (in `data_dir`) or on a fresh PostgreSQL database, dropped afterwards."""
    database = None
    if backend == "postgres":
        database = postgres_database()
        extra["BASTION_DATABASE_URL"] = database
    server = serve(data_dir, base_env(data_dir, **extra))
    try:
        yield server
    finally:
        server.stop()
        if database is not None:
            drop_postgres_database(database)


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, demo: Demo, knowledge: Knowledge
) -> Iterator[Live]:
    """The shared target, once per backend."""
    data_dir = tmp_path_factory.mktemp(f"redteam-{request.param}")
    with server_on(request.param, data_dir, **knowledge_env(demo, knowledge, data_dir)) as server:
        register_test_servers(server)
        yield server


@pytest.fixture(scope="session")
def replica(live: Live) -> Iterator[Live]:
    """A second `bastion serve` on the same database, keys and data directory: another replica."""
    server = serve(live.data_dir, dict(live.env), migrate=False)
    try:
        yield server
    finally:
        server.stop()
