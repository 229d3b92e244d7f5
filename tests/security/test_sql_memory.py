"""A SQL query cannot take the gateway's memory: the `sql` tool's engine runs in worker processes of its own,
with their data segment bounded (tools/sql/sandbox.py, `BASTION_SQL_MEMORY_LIMIT`).

Before: the engine ran inside the gateway. The guard bounds each size a function is given, not what nested calls
or a recursive CTE build from them; a recursive CTE that doubles a string passed it, and the gateway process
grew by gigabytes (with more steps, until the kernel killed it: a test of nested `repeat` reached 23.8 GB).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from tests.security.clients import call, everything
from tests.security.conftest import ROOT, Live
from tools.engines import bounded
from tools.engines.bounded import BoundedError, BoundedPool
from tools.engines.bounded import plain_loads as _plain_loads
from tools.parity.server import ParityService, ParitySettings
from tools.sql.engine import EngineError
from tools.sql.sandbox import SandboxedEngine, size_bytes
from tools.sql.service import SqlSettings

# One row's `objective`, doubled 27 times: a 1–3 GB string, and all the steps before it kept by the CTE.
DOUBLING = (
    "WITH RECURSIVE r(s, n) AS (SELECT * FROM (SELECT objective, 0 FROM ads.campaigns LIMIT 1) first "
    "UNION ALL SELECT s || s, n + 1 FROM r WHERE n < 27) SELECT n, length(s) AS l FROM r"
)


def high_water_mb(pid: int) -> float:
    """A process's peak resident memory (VmHWM), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def test_a_query_that_builds_gigabytes_fails_in_its_engine_process_not_the_gateway(live: Live) -> None:
    """Old code: the guard passes the query, and the gateway itself builds the strings (it answered, gigabytes
    later). Now the engine's process hits its bound, the caller gets `memory_exceeded`, and the gateway's peak
    memory does not move."""
    token = live.token("ann", ["analysts"], clearance="internal")
    fair = call(live.base, token, "sql__run_sql", {"sql": "SELECT count(*) AS n FROM ads.campaigns"})
    assert not fair.is_error, everything(fair)
    before = high_water_mb(live.proc.pid)
    started = time.perf_counter()
    result = call(live.base, token, "sql__run_sql", {"sql": DOUBLING})
    elapsed = time.perf_counter() - started
    body = everything(result)
    assert result.is_error and "memory_exceeded" in body and "BASTION_SQL_MEMORY_LIMIT" in body, body[:500]
    assert elapsed < 60, elapsed
    grown = high_water_mb(live.proc.pid) - before
    assert grown < 300, f"the gateway's peak memory grew by {grown:.0f} MB"
    again = call(live.base, token, "sql__run_sql", {"sql": "SELECT count(*) AS n FROM ads.campaigns"})
    assert not again.is_error, everything(again)  # the engine process was replaced or survived


def test_a_parity_input_that_builds_gigabytes_fails_in_its_worker_not_the_gateway(live: Live) -> None:
    """The same class through the parity tool: its `sql:` inputs pass the same guard, and the audit ran them in
    the gateway's own DuckDB (old code: no memory bound at all). Now each call runs in a bounded worker."""
    token = live.token("ann", ["analysts"], clearance="internal")
    doubling = ("sql:WITH RECURSIVE r(campaign_id, s, n) AS (SELECT * FROM (SELECT campaign_id, objective, 0 "
                "FROM ads.campaigns LIMIT 1) first UNION ALL SELECT campaign_id + 1, s || s, n + 1 FROM r "
                "WHERE n < 26) SELECT campaign_id, s FROM r")  # fmt: skip
    plain = "sql:SELECT campaign_id, objective AS s FROM ads.campaigns"
    before = high_water_mb(live.proc.pid)
    result = call(live.base, token, "parity__audit_parity", {"training": doubling, "serving": plain,
                                                             "keys": ["campaign_id"]})  # fmt: skip
    body = everything(result)
    assert result.is_error and ("memory_exceeded" in body or "Out of Memory" in body), body[:500]
    grown = high_water_mb(live.proc.pid) - before
    assert grown < 300, f"the gateway's peak memory grew by {grown:.0f} MB"
    fair = call(live.base, token, "parity__audit_parity", {"training": plain, "serving": plain,
                                                           "keys": ["campaign_id"]})  # fmt: skip
    assert not fair.is_error, everything(fair)[:500]


@pytest.fixture(scope="module")
def warehouse() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bastion-sandbox-") as scratch:
        path = str(Path(scratch) / "w.duckdb")
        con = duckdb.connect(path)
        con.execute("CREATE TABLE t AS SELECT range AS i, 'ab' AS s FROM range(100)")
        con.close()
        yield path


@pytest.fixture(scope="module")
def engine(warehouse: str) -> Iterator[SandboxedEngine]:
    sandboxed = SandboxedEngine(warehouse, memory="512MB", workers=2)
    yield sandboxed
    sandboxed.close()


def test_nested_repeat_is_memory_exceeded_and_the_next_query_runs(engine: SandboxedEngine) -> None:
    engine.run("SELECT 1 AS x", max_rows=1, timeout=10)
    before = set(engine.pids())
    with pytest.raises(EngineError) as big:
        engine.run("SELECT repeat(repeat(repeat(s, 1000), 1000), 100) AS x FROM t", max_rows=10, timeout=30)
    assert big.value.code == "memory_exceeded" and "512MB" in big.value.message
    rows = engine.run("SELECT count(*) AS n FROM t", max_rows=10, timeout=10)
    assert rows.rows == [[100]] and rows.columns == ["n"]
    assert engine.pids() and os.getpid() not in engine.pids()
    # The worker that ran out was replaced: what its allocator kept does not count against the next query.
    assert len(set(engine.pids()) - before) == 1


def test_spills_are_bounded_and_go_where_the_worker_ends(engine: SandboxedEngine) -> None:
    """Old review finding: DuckDB may spill up to 90% of the free disk, into a directory a killed worker left."""
    (spill, most), *_ = engine.run(
        "SELECT current_setting('temp_directory') AS d, current_setting('max_temp_directory_size') AS m",
        max_rows=1,
        timeout=10,
    ).rows
    assert "%" not in most and ("256" in most or "244" in most), most  # half of 512MB
    assert Path(spill).parent.name.startswith("bastion-worker-"), spill  # the worker's own scratch directory
    workers = engine.pids()
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(EngineError):  # a killed worker found dead at the call, or before it (replaced)
        engine.run("SELECT 1 AS x", max_rows=1, timeout=10)
    assert engine.run("SELECT 1 AS x", max_rows=1, timeout=10).rows == [[1]]
    assert not Path(spill).parent.exists(), spill


def test_modules_in_the_gateways_working_directory_are_not_imported(
    warehouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old review finding: the worker ran `python -c` in the gateway's directory, whose `tools/` came first."""
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "__init__.py").write_text("raise SystemExit(3)\n")
    monkeypatch.chdir(tmp_path)
    sandboxed = SandboxedEngine(warehouse, memory="512MB", workers=1)
    try:
        assert sandboxed.run("SELECT 5 AS x", max_rows=1, timeout=10).rows == [[5]]
    finally:
        sandboxed.close()


def test_many_small_values_are_refused_like_many_bytes(engine: SandboxedEngine) -> None:
    with pytest.raises(EngineError) as many:
        engine.run("SELECT list_transform(range(100000), lambda x: []::INT[]) AS x", max_rows=1, timeout=10,
                   max_bytes=100_000)  # fmt: skip
    assert many.value.code == "result_too_large" and "values" in many.value.message
    huge = engine.run("SELECT 170141183460469231731687303715884105727::HUGEINT AS h", max_rows=1, timeout=10,
                      max_bytes=100_000)  # fmt: skip
    assert huge.rows == [[170141183460469231731687303715884105727]]


def test_a_memory_bound_too_small_to_run_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="512MB"):
        SqlSettings(memory_limit="100MB")
    with pytest.raises(ValidationError, match="512MB"):
        SqlSettings(memory_limit="99999999999TB")
    assert SqlSettings(memory_limit="1GiB").memory_limit == "1GiB"


def test_a_result_beyond_the_byte_budget_is_refused_in_the_engine_process(engine: SandboxedEngine) -> None:
    with pytest.raises(EngineError) as wide:
        engine.run("SELECT repeat(s, 1000) AS x FROM t", max_rows=100, timeout=10, max_bytes=50_000)
    assert wide.value.code == "result_too_large" and "50,000" in wide.value.message
    assert engine.run("SELECT repeat(s, 10) AS x FROM t", max_rows=100, timeout=10, max_bytes=50_000).row_count == 100


def test_the_timeout_and_engine_errors_keep_their_codes(engine: SandboxedEngine) -> None:
    with pytest.raises(EngineError) as slow:
        engine.run("SELECT count(*) FROM range(100000000000) a(i)", max_rows=1, timeout=0.3)
    assert slow.value.code == "timeout"
    with pytest.raises(EngineError) as bad:
        engine.run("SELECT nope FROM t", max_rows=1, timeout=5)
    assert bad.value.code == "execution_failed" and "nope" in bad.value.message
    assert "t" in engine.explain("SELECT * FROM t")
    with pytest.raises(EngineError) as down:
        SandboxedEngine("/nonexistent/warehouse.duckdb", memory="512MB").run("SELECT 1", 1, 1)
    assert down.value.code == "engine_down"


def test_a_killed_engine_process_is_a_clear_error_and_is_replaced(engine: SandboxedEngine) -> None:
    outcome: dict[str, EngineError] = {}

    def long_query() -> None:
        try:
            engine.run("SELECT count(*) FROM range(100000000000) a(i)", max_rows=1, timeout=60)
        except EngineError as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=long_query)
    runner.start()
    time.sleep(1.5)  # the query is running in one of the workers
    victims = engine.pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    runner.join(30)
    assert not runner.is_alive()
    error = outcome["error"]
    assert error.code == "engine_down" and "signal 9" in error.message, error.message
    assert engine.run("SELECT 7 AS x", max_rows=1, timeout=10).rows == [[7]]
    assert not set(engine.pids()) & set(victims)


def test_queries_at_once_share_the_bounded_workers(engine: SandboxedEngine) -> None:
    answers: list[int] = []

    def one(i: int) -> None:
        answers.append(engine.run(f"SELECT {i} + count(*) AS n FROM t", max_rows=1, timeout=30).rows[0][0])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [100 + i for i in range(6)]
    assert 1 <= len(engine.pids()) <= 2


def test_sizes_read_as_duckdb_reads_them() -> None:
    assert size_bytes("2GB") == 2_000_000_000 and size_bytes("512MiB") == 512 * 1024**2
    assert size_bytes(" 1.5 gb ") == 1_500_000_000
    with pytest.raises(ValueError, match="not a size"):
        size_bytes("lots")


def test_values_cross_as_plain_data_and_the_platforms_settings_stay_out(
    warehouse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_JWT_SECRET", "not-for-the-engine")
    sandboxed = SandboxedEngine(warehouse, memory="512MB", workers=1)
    try:
        rows = sandboxed.run("SELECT [DATE '2026-01-02'] AS d, {'k': 1.5::DECIMAL(4, 1)} AS s, 2::HUGEINT ** 70 "
                             "AS h, 170141183460469231731687303715884105727::HUGEINT AS big", max_rows=1,
                             timeout=10)  # fmt: skip
        assert rows.rows == [[["2026-01-02"], {"k": 1.5}, 2.0**70, 170141183460469231731687303715884105727]]
        (pid,) = sandboxed.pids()
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not [v for v in environment if v.startswith(b"BASTION_")]
    finally:
        sandboxed.close()


def test_a_reply_naming_a_class_is_refused() -> None:
    """What a worker sends is data: a pickle that would call something is an error, not a call."""
    with pytest.raises(pickle.UnpicklingError, match=r"posix\.system"):
        _plain_loads(pickle.dumps(("ok", os.system)))
    assert _plain_loads(pickle.dumps(("ok", {"rows": [[1, "a", None, 2.5, 2**80]]}))) == (
        "ok", {"rows": [[1, "a", None, 2.5, 2**80]]})  # fmt: skip


def test_a_caller_waits_for_a_worker_no_longer_than_its_timeout(warehouse: str) -> None:
    sandboxed = SandboxedEngine(warehouse, memory="512MB", workers=1)
    try:
        sandboxed.run("SELECT 1 AS x", max_rows=1, timeout=10)  # started

        def hold() -> None:
            with pytest.raises(EngineError):
                sandboxed.run("SELECT count(*) FROM range(100000000000) a(i)", max_rows=1, timeout=3)

        holder = threading.Thread(target=hold)
        holder.start()
        time.sleep(0.5)
        with pytest.raises(EngineError) as busy:
            sandboxed.run("SELECT 1 AS x", max_rows=1, timeout=0.5)
        assert busy.value.code == "busy" and "BASTION_SQL_WORKERS" in busy.value.message
        holder.join(30)
        assert sandboxed.run("SELECT 2 AS x", max_rows=1, timeout=10).rows == [[2]]
    finally:
        sandboxed.close()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "State:\tZ" in state  # exited, waiting to be reaped by whoever adopted it


def test_workers_outlive_the_thread_that_started_them_but_not_the_gateway(warehouse: str, tmp_path: Path) -> None:
    """A worker started by a pool thread that then ends keeps serving; a gateway killed outright takes its
    workers with it (they would otherwise run on, adopted, until their query ended)."""
    sandboxed = SandboxedEngine(warehouse, memory="512MB", workers=1)
    try:
        starter = threading.Thread(target=sandboxed.run, args=("SELECT 1 AS x", 1, 10))
        starter.start()
        starter.join(30)
        time.sleep(1.0)
        (pid,) = sandboxed.pids()
        assert sandboxed.run("SELECT 2 AS x", max_rows=1, timeout=10).rows == [[2]] and sandboxed.pids() == [pid]
        assert Path(f"/proc/{pid}/oom_score_adj").read_text().strip() == "1000"  # the kernel's first choice
    finally:
        sandboxed.close()
    script = tmp_path / "gateway.py"
    script.write_text(
        "import sys, time\nfrom tools.sql.sandbox import SandboxedEngine\n"
        f"e = SandboxedEngine({warehouse!r}, memory='512MB', workers=1)\n"
        "e.run('SELECT 1 AS x', 1, 10)\nprint(e.pids()[0], e.pool.scratch_dirs()[0], flush=True)\ntime.sleep(120)\n"
    )
    gateway = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert gateway.stdout is not None
        pid, scratch = gateway.stdout.readline().split()
        worker = int(pid)
        assert not _gone(worker) and Path(scratch).is_dir()
        gateway.kill()
        gateway.wait(10)
        deadline = time.monotonic() + 10
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(worker), f"worker {worker} outlived its gateway"
        assert not Path(scratch).exists(), "the worker left its scratch directory behind"
    finally:
        gateway.kill()


def test_a_workers_errors_keep_their_kind_and_length() -> None:
    """Found by review: a worker cut errors to 500 characters and named only the exception's own class, so a
    subclass of the engine's error lost its wording."""
    pool = BoundedPool("1GB", 1, "tools.engines.bounded:calls")
    try:
        with pytest.raises(BoundedError) as missing:
            pool.call(("call", "operator:getitem", ({}, "k" * 3000), {}), timeout=10)
        assert missing.value.code == "failed" and {"KeyError", "LookupError"} <= set(missing.value.kinds)
        assert len(missing.value.message) == 2000
        # The parity tool's DuckDB, opened in such a worker, spills at half the worker's bound.
        assert pool.call(("call", "tools.engines.bounded:half_the_data_limit", (), {}), timeout=10) == "476MiB"
    finally:
        pool.close()


def test_the_parity_engine_is_found_from_the_workers_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    service = ParityService(ParitySettings(data_dir=tmp_path))
    expected = str(tmp_path / "w.duckdb")
    assert service.engine_path("w.duckdb") == expected and service.engine_path("duckdb:///w.duckdb") == expected
    assert service.engine_path("sc://127.0.0.1:15002") == "sc://127.0.0.1:15002" and service.engine_path(None) is None


def test_a_worker_whose_gateway_went_away_before_its_setup_leaves_nothing(tmp_path: Path) -> None:
    """Found after a CI run: a gateway killed while its worker started left the worker's scratch directory."""
    scratch = tmp_path / "bastion-worker-orphan"
    scratch.mkdir()
    ours, theirs = socket.socketpair()
    worker = subprocess.Popen([sys.executable, "-I", "-c", bounded._WORKER, str(theirs.fileno())],
                              pass_fds=(theirs.fileno(),), env={**os.environ, "TMPDIR": str(scratch)})  # fmt: skip
    theirs.close()
    ours.close()  # the gateway is gone before sending anything
    assert worker.wait(30) == 0
    assert not scratch.exists()


def test_scratch_left_by_workers_killed_with_their_gateway_is_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found after a CI run: `kill -9` of a gateway's process group kills its workers too, and nothing removed
    their scratch directories (which may hold spill files). A new pool sweeps those whose worker is gone."""
    root = Path(tempfile.gettempdir())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, alive, fresh = (Path(tempfile.mkdtemp(prefix=bounded.SCRATCH_PREFIX, dir=root)) for _ in range(3))
    (stale / ".worker-pid").write_text(str(dead.pid))
    (alive / ".worker-pid").write_text(str(os.getpid()))
    (fresh / ".worker-pid").write_text(str(dead.pid))
    old = time.time() - 3600
    for scratch in (stale, alive):
        os.utime(scratch, (old, old))
    monkeypatch.setattr(bounded, "_SWEPT", threading.Event())
    try:
        BoundedPool("1GB", 1, "tools.engines.bounded:calls").close()
        assert not stale.exists() and alive.exists() and fresh.exists()
    finally:
        for scratch in (stale, alive, fresh):
            shutil.rmtree(scratch, ignore_errors=True)
