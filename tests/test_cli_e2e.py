"""The CLI and a real `bastion serve` process, started the way users start them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from registry.db.models import Base, Server, ServerVersion
from tests.helpers import serve_with_dev_token

ROOT = Path(__file__).parent.parent
BASTION = [sys.executable, "-m", "bastion"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({"BASTION_DATA_DIR": str(tmp_path / "data"), "BASTION_SEED_FILE": str(ROOT / "seed/registry.yaml")})
    env.update(extra)
    return env


def run(env: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASTION, *args], env=env, cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=120, check=False
    )


def test_cli_round_trip(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    assert run(env, "db", "upgrade").returncode == 0
    seeded = run(env, "registry", "seed")
    assert seeded.returncode == 0, seeded.stderr
    assert "dev.bastion/registry@1.0.0" in seeded.stdout

    exported = run(env, "registry", "export", "dev.bastion/registry@1.0.0")
    assert exported.returncode == 0, exported.stderr
    doc = json.loads(exported.stdout)
    assert doc["_meta"]["dev.bastion/registry"]["team"] == "platform"

    doc["version"] = "1.0.1"
    (tmp_path / "next.json").write_text(json.dumps(doc))
    imported = run(env, "registry", "import", str(tmp_path / "next.json"), "--submit")
    assert imported.returncode == 0, imported.stderr
    assert "1.0.1 (in_review, 2 tools)" in imported.stdout

    key = run(env, "keys", "create", "--name", "ci", "--role", "admin")
    assert key.returncode == 0
    assert key.stdout.strip().startswith("bst_")
    again = run(env, "keys", "create", "--name", "ci")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr

    missing = run(env, "registry", "import", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr

    token = run(env, "token", "--user", "alice", "--groups", "ads-eng,analysts")
    assert token.returncode == 0
    assert token.stdout.count(".") == 2


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str, dict[str, str]]]:
    """`db upgrade`, `registry seed`, `serve --print-dev-token`: what `make run` does."""
    port = free_port()
    extra = {"BASTION_PORT": str(port)}
    db_url = getattr(request, "param", None)
    if db_url:
        extra["BASTION_DATABASE_URL"] = request.getfixturevalue(db_url)
        engine = create_engine(extra["BASTION_DATABASE_URL"])
        with engine.begin() as conn:
            kept = [t.name for t in Base.metadata.sorted_tables if t.name != "registry_revision"]
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            conn.execute(text("TRUNCATE " + ", ".join(kept) + " CASCADE"))
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
        engine.dispose()
    env = env_for(tmp_path, **extra)
    assert run(env, "db", "upgrade").returncode == 0
    assert run(env, "registry", "seed").returncode == 0
    proc, base, token = serve_with_dev_token(env, port, ROOT)
    yield base, token, env
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.slow
def test_make_run_path_serves_the_seeded_registry(served: tuple[str, str, dict[str, str]]) -> None:
    base, token, _ = served
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    body = httpx.get(f"{base}/v0.1/servers", params={"version": "latest"}, headers=headers).json()
    assert [e["server"]["name"] for e in body["servers"]] == [
        "dev.bastion/dedupe",
        "dev.bastion/inference",
        "dev.bastion/parity",
        "dev.bastion/registry",
        "dev.bastion/rerank",
        "dev.bastion/sql",
    ]
    assert httpx.get(f"{base}/openapi.json").json()["info"]["title"] == "Bastion"
    assert httpx.get(f"{base}/docs").status_code == 200


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("served", ["postgres_database"], indirect=True)
def test_concurrent_submissions_on_postgres(served: tuple[str, str, dict[str, str]]) -> None:
    """Two clients submit the same version at once: one 201, one 409, and the store stays consistent."""
    base, token, env = served
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        client.post("/admin/v1/teams", json={"name": "race", "supportChannel": "#race"}).raise_for_status()
        client.post(
            "/admin/v1/servers",
            json={"name": "dev.bastion/race", "team": "race", "description": "d", "transport": "builtin"},
        ).raise_for_status()

    rounds = 20
    outcomes: list[tuple[int, int]] = []
    for i in range(rounds):
        barrier = Barrier(2)
        body = {"version": f"1.0.{i}", "tools": [{"name": "t", "inputSchema": {"type": "object"}}]}

        def submit(_: int, body: dict[str, object] = body, barrier: Barrier = barrier) -> int:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                barrier.wait()
                return client.post("/admin/v1/servers/dev.bastion/race/versions", json=body).status_code

        with ThreadPoolExecutor(2) as pool:
            a, b = sorted(pool.map(submit, range(2)))
        outcomes.append((a, b))
    assert outcomes == [(201, 409)] * rounds

    engine = create_engine(env["BASTION_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        race_versions = (
            select(func.count())
            .select_from(ServerVersion)
            .join(Server, Server.id == ServerVersion.server_id)
            .where(Server.name == "dev.bastion/race")
        )
        assert conn.scalar(race_versions) == rounds
    engine.dispose()
