"""The audit log under attack: rewritten rows, poison rows, a database that goes away, an app that owns it.

Every case counts rows in the database itself: an acknowledged call without its audit row is a failure.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from registry.db import upgrade
from registry.settings import normalize_database_url
from tests.conftest import service_url
from tests.knowledge_fixtures import Demo, Knowledge
from tests.security.clients import connect
from tests.security.conftest import (
    Live,
    base_env,
    drop_postgres_database,
    knowledge_env,
    postgres_database,
    register_test_servers,
    serve,
    wait_ready,
)
from tests.security.proxy import Proxy

INSERT = (
    "INSERT INTO audit_events (id, at, kind, subject, groups, decision, outcome, latency_ms, result_size, "
    "minutes_saved) VALUES ({id}, CURRENT_TIMESTAMP, 'call', 'FORGED', '[]', 'allowed', 'ok', 0, 0, 0)"
)


def audit_rows(url: str, subject_prefix: str, kind: str = "call") -> int:
    engine = create_engine(normalize_database_url(url))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_events WHERE subject LIKE :p AND kind = :k"),
                                    {"p": subject_prefix + "%", "k": kind}).scalar_one())  # fmt: skip
    finally:
        engine.dispose()


def wait_for_rows(url: str, prefix: str, expected: int, timeout: float = 30) -> int:
    deadline = time.time() + timeout
    found = -1
    while time.time() < deadline:
        found = audit_rows(url, prefix)
        if found >= expected:
            return found
        time.sleep(0.2)
    return found


# -- the table refuses rewrites ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "REPLACE INTO audit_events (id, at, kind, subject, groups, decision, outcome, latency_ms, result_size, "
        "minutes_saved) VALUES ({id}, CURRENT_TIMESTAMP, 'call', 'FORGED', '[]', 'allowed', 'ok', 0, 0, 0)",
        INSERT.replace("INSERT INTO", "INSERT OR REPLACE INTO"),
        INSERT + " ON CONFLICT(id) DO UPDATE SET subject = 'FORGED'",
        "UPDATE audit_events SET subject = 'FORGED' WHERE id = {id}",
        "DELETE FROM audit_events WHERE id = {id}",
    ],
)
def test_sqlite_audit_rows_cannot_be_replaced(tmp_path: Path, statement: str) -> None:
    """Old code: REPLACE INTO rewrote a row (SQLite skips DELETE triggers without recursive_triggers)."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    engine = create_engine(url)  # a bare connection: no pragmas of ours
    with engine.begin() as conn:
        conn.execute(text(INSERT.format(id=1).replace("'FORGED'", "'alice'")))
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(text(statement.format(id=1)))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT subject FROM audit_events")).scalars().all() == ["alice"]
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement",
    [INSERT + " ON CONFLICT (id) DO UPDATE SET subject = 'FORGED'", "UPDATE audit_events SET subject = 'FORGED'",
     "DELETE FROM audit_events", "TRUNCATE audit_events"],
)  # fmt: skip
def test_postgres_audit_rows_cannot_be_rewritten(statement: str) -> None:
    url = postgres_database()
    try:
        upgrade(normalize_database_url(url))
        engine = create_engine(normalize_database_url(url))
        with engine.begin() as conn:
            conn.execute(text(INSERT.format(id=1).replace("'FORGED'", "'alice'")))
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement.format(id=1)))
        engine.dispose()
    finally:
        drop_postgres_database(url)


@pytest.fixture(scope="module")
def app_role() -> Iterator[tuple[str, str, str]]:
    """A PostgreSQL database migrated by its owner and a login role granted what the app needs."""
    owner_url = postgres_database()
    role = f"bastion_app_{uuid.uuid4().hex[:8]}"
    admin = create_engine(normalize_database_url(service_url("BASTION_TEST_POSTGRES_URL", "PostgreSQL")),
                          isolation_level="AUTOCOMMIT")  # fmt: skip
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    app_url = make_url(owner_url).set(username=role).render_as_string(hide_password=False)
    try:
        yield owner_url, app_url, role
    finally:
        drop_postgres_database(owner_url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.mark.postgres
def test_the_app_role_cannot_disable_the_audit_triggers(
    app_role: tuple[str, str, str], tmp_path: Path, demo: Demo, knowledge: Knowledge
) -> None:
    """`bastion db upgrade --grant ROLE` as the owner, `bastion serve` as ROLE: calls are audited, and the role
    can neither rewrite rows nor switch the append-only triggers off (old code: the app owned the table)."""
    owner_url, app_url, role = app_role
    data = tmp_path / "app-role"
    owner_env = base_env(data, BASTION_DATABASE_URL=owner_url, **knowledge_env(demo, knowledge, data))
    from tests.security.conftest import bastion

    assert bastion(owner_env, "db", "upgrade", "--grant", role).returncode == 0
    assert bastion(owner_env, "registry", "seed").returncode == 0
    live = serve(data, {**owner_env, "BASTION_DATABASE_URL": app_url}, migrate=False)
    try:
        register_test_servers(live)
        subject = f"role-{uuid.uuid4().hex[:6]}"

        async def calls() -> None:
            async with connect(live.base, live.token(subject, ["analysts"])) as client:
                for i in range(5):
                    await client.call_tool("ops__read_metric", {"name": f"m{i}"})

        anyio.run(calls)
        assert wait_for_rows(owner_url, subject, 5) == 5
        assert "owner of audit_events" not in live.log.read_text()  # no warning: it is not the owner
    finally:
        live.stop()
    engine = create_engine(normalize_database_url(app_url))
    for statement in ("ALTER TABLE audit_events DISABLE TRIGGER USER", "DROP TRIGGER audit_events_append_only "
                      "ON audit_events", "UPDATE audit_events SET subject = 'x'", "DELETE FROM audit_events",
                      "TRUNCATE audit_events", "DROP TABLE audit_events"):  # fmt: skip
        with pytest.raises(DBAPIError, match=r"must be owner|permission denied|append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    engine.dispose()
    assert audit_rows(owner_url, subject) == 5


# -- no row is lost -----------------------------------------------------------------------------------------


def flood(live: Live, prefix: str, users: int = 10, per_user: int = 100, poison_every: int = 50) -> int:
    """`users` × `per_user` calls, concurrently; every `poison_every`-th is a poison call: a 100-character tool
    name or a 40-character approval id (old code: each lost its whole batch of other users' rows)."""

    async def one_user(index: int) -> None:
        async with connect(live.base, live.token(f"{prefix}{index}", ["analysts"])) as client:
            for i in range(per_user):
                n = index * per_user + i
                if n % poison_every == 0:
                    await client.call_tool("ops__" + "x" * 95, {"name": "m"})
                elif n % poison_every == 1:
                    await client.call_tool("ops__pause_campaign", {"campaign_id": "c", "_approval_id": "y" * 40})
                else:
                    await client.call_tool("ops__read_metric", {"name": f"m{i}"})

    async def everyone() -> None:
        async with anyio.create_task_group() as tg:
            for index in range(users):
                tg.start_soon(one_user, index)

    anyio.run(everyone)
    return users * per_user


def test_poison_rows_among_a_thousand_calls_lose_nothing(live: Live) -> None:
    prefix = f"flood-{uuid.uuid4().hex[:6]}-"
    made = flood(live, prefix)
    assert wait_for_rows(live.database_url, prefix, made) == made
    engine = create_engine(normalize_database_url(live.database_url))
    with engine.connect() as conn:
        flagged = conn.execute(text("SELECT tool, flags FROM audit_events WHERE subject LIKE :p AND flags IS NOT NULL"),
                               {"p": prefix + "%"}).all()  # fmt: skip
    engine.dispose()
    assert flagged and all(len(tool) <= 64 and "truncated:tool" in flags for tool, flags in flagged)


@pytest.fixture
def proxied(tmp_path: Path, demo: Demo, knowledge: Knowledge) -> Iterator[tuple[Live, Proxy, str]]:
    """A server whose PostgreSQL connection runs through a proxy the test can cut."""
    url = postgres_database()
    target = make_url(normalize_database_url(url))
    proxy = Proxy(target.host or "127.0.0.1", target.port or 5432)
    via = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    data = tmp_path / "proxied"
    env = base_env(data, BASTION_DATABASE_URL=via, **knowledge_env(demo, knowledge, data))
    live = serve(data, env)
    try:
        register_test_servers(live)
        yield live, proxy, url
    finally:
        proxy.restore()
        live.stop()
        proxy.close()
        drop_postgres_database(url)


def calls(live: Live, subject: str, count: int, pause: float = 0.0) -> int:
    async def scenario() -> int:
        async with connect(live.base, live.token(subject, ["analysts"])) as client:
            for i in range(count):
                await client.call_tool("ops__read_metric", {"name": f"m{i}"})  # errors are results too
                await anyio.sleep(pause)
        return count

    return anyio.run(scenario)


@pytest.mark.postgres
def test_the_database_gone_for_five_seconds_loses_nothing(proxied: tuple[Live, Proxy, str]) -> None:
    live, proxy, url = proxied
    subject = f"outage-{uuid.uuid4().hex[:6]}"
    made = calls(live, subject, 20)
    proxy.cut()
    started = time.time()
    made += calls(live, subject, 20, pause=0.2)  # about 5 s of calls while the database is gone
    while time.time() - started < 5:
        time.sleep(0.1)
    proxy.restore()
    made += calls(live, subject, 20)
    assert wait_for_rows(url, subject, made, timeout=60) == made
    assert "will retry" not in live.log.read_text()  # the old writer's message before dropping a batch


@pytest.mark.postgres
def test_a_graceful_stop_with_the_database_gone_spills_and_replays(proxied: tuple[Live, Proxy, str]) -> None:
    live, proxy, url = proxied
    subject = f"spill-{uuid.uuid4().hex[:6]}"
    made = calls(live, subject, 10)
    assert wait_for_rows(url, subject, made) == made
    proxy.cut()
    made += calls(live, subject, 15)
    live.stop()  # SIGTERM: a graceful stop while the database is unreachable
    spooled = list((live.data_dir / "audit-spool").glob("audit-*.jsonl"))
    assert spooled and sum(len(p.read_text().splitlines()) for p in spooled) >= 15
    proxy.restore()
    restarted = serve(live.data_dir, dict(live.env), migrate=False, wait=False)
    try:
        wait_ready(restarted)
        assert wait_for_rows(url, subject, made, timeout=60) == made
        assert not list((live.data_dir / "audit-spool").glob("audit-*"))
    finally:
        restarted.stop()


# -- the writer on its own ------------------------------------------------------------------------------


def row(**fields: object) -> dict[str, object]:
    from datetime import UTC, datetime

    base: dict[str, object] = {"at": datetime.now(UTC), "kind": "call", "subject": "ann", "groups": ["analysts"],
                               "decision": "allowed", "outcome": "ok", "latency_ms": 1.0, "result_size": 1,
                               "minutes_saved": 0.0, "arguments": {"q": "x"}}  # fmt: skip
    base.update(fields)
    return base


def test_every_field_is_bounded_and_made_storable_before_queuing() -> None:
    from registry.gateway.audit_writer import bound_row

    stored = bound_row(row(tool="t" * 100, approval_id="a" * 40, error="e" * 5000, client_id="c\x00d",
                           groups=[f"g{i}" for i in range(500)],
                           arguments={"url": "u" * 2_000_000, "n": float("nan"), "s": "\ud800"}))  # fmt: skip
    assert len(stored["tool"]) == 64 and len(stored["approval_id"]) == 36 and len(stored["error"]) == 1000
    assert stored["client_id"] == "c\ufffdd" and len(stored["groups"]) == 100
    assert len(json.dumps(stored["arguments"])) < 20_000 and stored["arguments"]["n"] == "nan"
    assert stored["arguments"]["s"] == "?" or "\ud800" not in stored["arguments"]["s"]
    assert stored["flags"].startswith("truncated:") and "tool" in stored["flags"] and "approval_id" in stored["flags"]
    plain = bound_row(row(tool="read_metric"))
    assert plain.get("flags") is None and plain["tool"] == "read_metric"


def test_large_arguments_are_summarised_once_and_small_ones_still_redacted() -> None:
    from governance import arguments_hash
    from registry.gateway.audit_writer import MAX_ARGUMENT_BYTES, audited_arguments, bound_row

    large = {"candidates": [{"id": f"i{i}", "embedding": [0.125] * 64} for i in range(500)], "password": "hunter2"}
    stored, digest, summarised = audited_arguments(large, ["email"])
    assert summarised and digest == arguments_hash(large)  # the same hash approvals bind to
    assert stored["keys"] == ["candidates", "password"] and "hunter2" not in json.dumps(stored)
    kept = bound_row(row(arguments=stored, arguments_summarised=True))
    assert kept["arguments"] == stored and "arguments" in kept["flags"] and "arguments_summarised" not in kept
    small = {"email": "a@b.example", "token": "Bearer abcdefghijklmnop", "q": "x" * 100}
    stored, digest, summarised = audited_arguments(small, ["email"])
    assert not summarised and digest == arguments_hash(small)
    assert stored == {"email": "[REDACTED]", "token": "[REDACTED]", "q": "x" * 100}
    odd = {"s": "\ud800", "email": "a@b.example"}  # text orjson refuses: the general path, still redacted
    stored, digest, summarised = audited_arguments(odd, ["email"])
    assert not summarised and stored["email"] == "[REDACTED]" and digest == arguments_hash(odd)
    assert len(json.dumps(large)) > MAX_ARGUMENT_BYTES > len(json.dumps(small))


def test_redaction_reads_a_long_argument_name_to_its_end() -> None:
    from governance import redact

    padded = "x" * 250 + "_password"  # the secret word past the first 200 characters
    redacted = redact({padded: "hunter2", "n" * 300: "kept", "vector": [0.5, 1, True]})
    assert redacted[padded] == "[REDACTED]" and redacted["n" * 300] == "kept"
    assert redacted["vector"] == [0.5, 1, True]


def test_a_row_the_database_refuses_is_stored_flagged_and_its_batch_survives(tmp_path: Path) -> None:
    from registry.db import Database
    from registry.gateway.audit_writer import AuditWriter

    url = f"sqlite:///{tmp_path / 'a.db'}"
    upgrade(url)
    writer = AuditWriter(Database(url))
    for i in range(10):
        writer.record(row(subject=f"ok{i}"))
    writer.record(row(subject="poison", kind=None))  # NOT NULL: refused on its own, whatever is bounded
    for i in range(10, 20):
        writer.record(row(subject=f"ok{i}"))
    anyio.run(writer.flush)
    engine = create_engine(url)
    with engine.connect() as conn:
        subjects = conn.execute(text("SELECT subject, flags FROM audit_events ORDER BY id")).all()
    engine.dispose()
    assert [s for s, _ in subjects if s.startswith("ok")] == [f"ok{i}" for i in range(20)]
    (poison,) = [(s, f) for s, f in subjects if not s.startswith("ok")]
    assert poison[0] == "poison" and poison[1].startswith("poison") and writer.pending == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_write_committed_but_reported_failed_is_not_written_twice(tmp_path: Path, backend: str) -> None:
    """The connection drops around COMMIT: the database holds the batch, the writer saw an error. Its retry must
    not store every row a second time (seen as 68 rows for 60 calls when the red-team proxy cut PostgreSQL)."""
    from registry.db import Database
    from registry.gateway.audit_writer import AuditWriter

    url = postgres_database() if backend == "postgres" else f"sqlite:///{tmp_path / 'a.db'}"
    try:
        upgrade(url)
        writer = AuditWriter(Database(normalize_database_url(url)))
        twin = row(subject="twin", replica="r1")
        writer.record(twin)
        writer.record(dict(twin))  # two identical rows (same microsecond, same call): matched one for one
        for i in range(30):
            writer.record(row(subject=f"call{i}", replica="r1", arguments_hash=f"sha256:{i}"))
        head = [entry[2] for entry in writer._queue]
        writer._insert([head[0], *head[2:22]])  # the lost acknowledgement: one twin and 20 calls are committed
        writer._uncertain = True  # ... but the writer saw the connection drop
        anyio.run(writer.flush)
        assert audit_rows(url, "call") == 30 and audit_rows(url, "twin") == 2 and writer.pending == 0
        writer.record(row(subject="call-late"))  # the next batch is written as usual
        anyio.run(writer.flush)
        assert audit_rows(url, "call") == 31
    finally:
        if backend == "postgres":
            drop_postgres_database(url)
