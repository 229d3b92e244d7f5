"""`bastion search` and `bastion ask` from a shell: answered by the running `bastion serve` when it is up (its
model is loaded: no model load in the CLI), in-process when it is not; saying which, with the same answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from bastion.live import free_port
from registry.db.models import AuditEvent
from tests.helpers import serve_with_dev_token
from tests.knowledge_fixtures import Demo, Knowledge, demo_serve_env

ROOT = Path(__file__).parent.parent
QUESTION = "revenue by campaign last week"
Answers = dict[str, subprocess.CompletedProcess[str]]


@dataclass
class Cli:
    env: dict[str, str]
    base: str
    database: str

    def run(self, *args: str, python: tuple[str, ...] = (), **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *python, "-m", "bastion", *args], env={**self.env, **extra}, cwd=ROOT,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip


@pytest.fixture(scope="module")
def cli(demo: Demo, knowledge: Knowledge, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The demo index, a seeded registry, and BASTION_PORT where nothing listens yet."""
    tmp = tmp_path_factory.mktemp("cli-search")
    port = free_port()
    env = demo_serve_env(demo, knowledge, tmp / "registry.db", port) | {"COLUMNS": "200"}
    made = Cli(env, f"http://127.0.0.1:{port}", env["BASTION_DATABASE_URL"])
    # `token` writes the data directory's JWT secret if no server has yet: the CLI then knows one may be up.
    for step in (("db", "upgrade"), ("registry", "seed"), ("token", "--user", "setup")):
        done = made.run(*step)
        assert done.returncode == 0, done.stderr[-2000:]
    return made


@pytest.fixture(scope="module")
def in_process(cli: Cli) -> Answers:
    """The answers with no server up (run before `served` starts one)."""
    return {
        "tables": cli.run("search", "tables", QUESTION),
        "queries": cli.run("search", "queries", QUESTION),
        "ask": cli.run("ask", QUESTION, "--json"),
    }


@pytest.fixture(scope="module")
def served(cli: Cli, in_process: Answers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    log = (tmp_path_factory.mktemp("cli-serve") / "serve.log").open("w")
    proc, base, _ = serve_with_dev_token(cli.env, int(cli.env["BASTION_PORT"]), ROOT, log)
    try:
        assert base == cli.base
        warm = cli.run("search", "tables", "warm the server's model up")  # the server loads it on its first search
        assert warm.returncode == 0, warm.stderr[-2000:]
        yield cli
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_without_a_server_the_cli_answers_in_process_and_says_so(cli: Cli, in_process: Answers) -> None:
    for name, done in in_process.items():
        assert done.returncode == 0, f"{name}: {done.stderr[-2000:]}"
        assert f"in-process: no server at {cli.base}" in done.stderr, name
        assert "Traceback" not in done.stderr
        assert "Loading weights" not in done.stderr  # the model's own progress bar is not the CLI's output
    assert in_process["tables"].stdout.startswith("1. ")
    assert "score" in in_process["queries"].stdout
    assert json.loads(in_process["ask"].stdout)["kind"]


def _modules(importtime: str) -> set[str]:
    """Top-level packages a `python -X importtime` run imported (from its stderr)."""
    return {line.split("|")[-1].strip().split(".")[0] for line in importtime.splitlines() if "import time:" in line}


@pytest.mark.slow
def test_with_a_server_up_the_cli_uses_it_and_answers_the_same(served: Cli, in_process: Answers) -> None:
    cli = served
    tables = cli.run("search", "tables", QUESTION, python=("-X", "importtime"))
    assert tables.returncode == 0, tables.stderr[-2000:]
    assert f"answered by the running server at {cli.base}" in tables.stderr
    # The model was not loaded in the CLI process: that load was most of a CLI search (30-35 s on a busy machine).
    imported = _modules(tables.stderr)
    assert "typer" in imported, "the importtime trace was not captured"
    assert not {"torch", "sentence_transformers", "transformers"} & imported
    assert tables.stdout == in_process["tables"].stdout  # the same answer, as it reads

    queries = cli.run("search", "queries", QUESTION)
    assert queries.returncode == 0, queries.stderr[-2000:]
    assert f"answered by the running server at {cli.base}" in queries.stderr
    assert queries.stdout == in_process["queries"].stdout

    ask = cli.run("ask", QUESTION, "--json")
    assert ask.returncode == 0, ask.stderr[-2000:]
    assert f"answered by the running server at {cli.base}" in ask.stderr
    remote, local = json.loads(ask.stdout), json.loads(in_process["ask"].stdout)
    for field in ("kind", "mode", "sql", "source", "tables", "reused_queries"):
        assert remote[field] == local[field], field

    # The server did the work: each call is in its audit log, as the local user through the CLI's client.
    engine = create_engine(cli.database)  # this module's own registry: only its CLI runs called the sql tools
    deadline, tools = time.time() + 10, set()
    while time.time() < deadline and not {"search_tables", "search_queries", "ask"} <= tools:
        time.sleep(0.3)  # the audit writer batches
        with engine.connect() as conn:
            rows = conn.execute(select(AuditEvent.tool, AuditEvent.client_id, AuditEvent.outcome).where(
                AuditEvent.server == "dev.bastion/sql")).all()  # fmt: skip
        tools = {r.tool for r in rows if r.client_id == "bastion-cli" and r.outcome == "ok"}
    engine.dispose()
    assert {"search_tables", "search_queries", "ask"} <= tools


@pytest.mark.slow
def test_a_server_of_another_data_directory_is_not_used(served: Cli, in_process: Answers) -> None:
    """Another secret (another data directory, another deployment) on that port: refused, so in-process."""
    other = served.run("search", "tables", QUESTION, BASTION_JWT_SECRET="another-secret-" + "y" * 40)
    assert other.returncode == 0, other.stderr[-2000:]
    assert f"in-process: the server at {served.base} refused" in other.stderr
    assert other.stdout == in_process["tables"].stdout


@pytest.mark.slow
def test_the_tools_own_refusal_is_an_error_not_a_fallback(served: Cli) -> None:
    empty = served.run("ask", "   ")
    assert empty.returncode == 1
    assert "error: bad_question: the question is empty" in empty.stderr
    assert "in-process" not in empty.stderr
