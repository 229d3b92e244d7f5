"""The `sql` tool's engine in processes of its own, with their memory bounded.

The guard bounds what a query says, not what it builds: nested string functions, a recursive CTE that doubles
a string, an aggregate over a join all grow a value past any count written in the query (README, SQL guard).
DuckDB's `memory_limit` covers its buffer-managed memory, not the strings a result streams; SQLite and the
drivers of remote engines hold whatever a row holds. Run in the gateway, one such query took the whole machine.

So the engine runs in worker processes (`BASTION_SQL_WORKERS`, started on first use) whose data segment is
limited (`RLIMIT_DATA`, `BASTION_SQL_MEMORY_LIMIT`). A query that needs more fails there, and the caller
gets `memory_exceeded`. If the worker dies instead, or overruns the timeout by more than a grace period, it
is stopped and replaced. The gateway process never holds more than a result the size cap lets through.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tools.sql.engine import Engine, EngineError, Rows, dialect_of

# Beyond the query's own timeout: starting a worker and opening the engine (a Spark Connect session) happen
# inside the call the first time.
GRACE_S = 20.0
SCRATCH_PREFIX = "bastion-sql-"
START_TIMEOUT_S = 60.0
# Below this a worker cannot even load its engine (and every query would look like the query's fault); above
# the second, the number is a typo.
MIN_MEMORY = 512 * 1000**2
MAX_MEMORY = 1024**5
_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip


def size_bytes(size: str) -> int:
    """'2GB' → 2,000,000,000 (DuckDB's units: KB/MB/GB/TB are powers of 1000, KiB… of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B)\s*", size, re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a size: {size[:40]!r} (give e.g. 2GB or 512MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _detach_from_harm() -> None:
    """The worker dies with the gateway, and is the kernel's first choice when memory runs out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the server, which stops its workers
    with contextlib.suppress(OSError):
        Path("/proc/self/oom_score_adj").write_text("1000")
    # Not PR_SET_PDEATHSIG: it fires when the *thread* that started the worker ends, and the gateway starts
    # them from a thread pool whose threads come and go. A gateway that dies (even by SIGKILL) re-parents us.
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        _remove_scratch()
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _remove_scratch() -> None:
    """The worker's scratch directory (its TMPDIR), when the gateway is no longer there to remove it."""
    scratch = Path(os.environ.get("TMPDIR", ""))
    if scratch.name.startswith(SCRATCH_PREFIX) and scratch.is_absolute():
        shutil.rmtree(scratch, ignore_errors=True)


def _serve(conn: Connection) -> None:
    """A worker: one engine, one request at a time, until the pipe closes."""
    _detach_from_harm()
    url, limit, engine_memory = conn.recv()
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        # Files too (SQLite's temporary files, DuckDB's spill): a write past the bound fails, not the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    engine = Engine(url, memory=engine_memory)
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        try:
            if request[0] == "explain":
                reply: tuple[Any, ...] = ("ok", engine.explain(request[1], timeout=request[2]))
            else:
                sql, max_rows, timeout, expect, max_bytes = request[1:]
                rows = engine.run(sql, max_rows, timeout, expect=expect, max_bytes=max_bytes)
                reply = ("ok", rows.model_dump())  # plain values only: see `_plain_loads`
        except EngineError as exc:
            reply = ("error", exc.code, exc.message)
        except MemoryError:
            reply = ("error", "memory_exceeded", "")
        except Exception as exc:  # the engine's own failure, reported as the in-process engine would
            reply = ("error", "execution_failed", f"{type(exc).__name__}: {str(exc)[:500]}")
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=5))
        except MemoryError:  # the result fitted in the engine but not once more as a message
            conn.send_bytes(pickle.dumps(("error", "memory_exceeded", "")))
    engine.close()
    _remove_scratch()


_WORKER = "import sys; from tools.sql.sandbox import serve_fd; serve_fd(int(sys.argv[1]))"


def serve_fd(fd: int) -> None:
    """A worker's entry point (`_WORKER`): serve on the socket `fd`."""
    _serve(Connection(fd))


class _Worker:
    def __init__(self, url: str, limit: int | None, engine_memory: str | None) -> None:
        # A new interpreter, not a fork (the gateway has threads) and not multiprocessing's spawn (which re-runs
        # the caller's main module); it talks over a socket pair.
        # Its own scratch directory, where DuckDB spills (within its bound) and its working directory: removed
        # with the worker, however it ends. `-I`: no module is imported from the gateway's working directory or
        # PYTHONPATH (the installed packages only).
        self.scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        ours, theirs = socket.socketpair()
        try:
            # The platform's own settings (its signing secret, database URLs) stay out of the engine's process.
            env = {k: v for k, v in os.environ.items() if not k.upper().startswith("BASTION_")}
            env["TMPDIR"] = self.scratch
            self.process = subprocess.Popen(
                [sys.executable, "-I", "-c", _WORKER, str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True, env=env, cwd=self.scratch,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        try:
            self.conn.send((url, limit, engine_memory))
        except OSError:
            self.stop()
            raise
        self._ready = False

    def ask(self, request: tuple[Any, ...], deadline: float, most: int | None = None) -> Any:
        """The reply, or `_Stopped` when the worker died or did not answer by the deadline (then it is stopped);
        `_TooLarge` for a reply longer than `most` bytes."""
        if not self._ready:
            if not self.conn.poll(START_TIMEOUT_S):
                raise _Stopped(None)
            try:
                _plain_loads(self.conn.recv_bytes())
            except (EOFError, OSError):
                raise _Stopped(self._exit_code()) from None
            self._ready = True
        try:
            self.conn.send(request)
            if not self.conn.poll(deadline):
                self.stop()
                raise _Stopped(None)
            try:
                data = self.conn.recv_bytes(most)
            except OSError as exc:
                if "bad message length" in str(exc) and self.alive():
                    raise _TooLarge() from None
                raise
            return _plain_loads(data)
        except (EOFError, OSError, BrokenPipeError):
            raise _Stopped(self._exit_code()) from None

    def data_bytes(self) -> int:
        """The worker's data segment now (VmData): what counts against its limit."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _exit_code(self) -> int | None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        return self.process.returncode

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        try:
            self.process.wait(0.5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)
        self.conn.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the engine process sent an object ({module[:40]}.{name[:40]})")


def _plain_loads(data: bytes) -> Any:
    """A worker's reply: tuples, lists, dicts, strings and numbers only. The worker ran what a caller wrote, so
    what it sends is read as data and can name no class or function to call."""
    return _PlainUnpickler(io.BytesIO(data)).load()


class _TooLarge(Exception):
    pass


class _Stopped(Exception):
    def __init__(self, exit_code: int | None) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def _stop_all(workers: list[_Worker]) -> None:
    for worker in list(workers):
        worker.stop()
    workers.clear()


class SandboxedEngine:
    """`Engine`'s operations, run by worker processes with bounded memory (one query per worker at a time)."""

    def __init__(self, url: str, memory: str | None = None, workers: int = 2) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.memory = memory
        self.limit = size_bytes(memory) if memory is not None else None
        if self.limit is not None and not MIN_MEMORY <= self.limit <= MAX_MEMORY:
            raise ValueError(f"the sql tool's memory limit must be between 512MB and 1PiB (got {str(memory)[:40]!r})")
        # DuckDB's buffer manager gets half the bound: its aggregates, joins and sorts spill or fail cleanly
        # before the process limit, which is left for what it does not manage (strings a result streams).
        self._engine_memory = f"{self.limit // 2 // 1024**2}MiB" if self.limit is not None else None
        self.workers = workers
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._all)

    def describe(self) -> str:
        return Engine(self.url).describe()

    def explain(self, sql: str, timeout: float = 30.0) -> str:
        return str(self._call(("explain", sql, timeout), timeout))

    def run(
        self, sql: str, max_rows: int, timeout: float, expect: list[str] | None = None, max_bytes: int | None = None
    ) -> Rows:
        # The worker checked the result's JSON size; its message may be somewhat larger (pickle's framing).
        most = None if max_bytes is None else 2 * max_bytes + 1_000_000
        return Rows.model_validate(self._call(("run", sql, max_rows, timeout, expect, max_bytes), timeout, most))

    def _call(self, request: tuple[Any, ...], timeout: float, most: int | None = None) -> Any:
        if not self._slots.acquire(timeout=timeout):
            raise EngineError("busy", f"the sql tool was running {self.workers} queries for {timeout:g}s; "
                              "try again later (BASTION_SQL_WORKERS)")  # fmt: skip
        try:
            worker = self._take()
            try:
                reply = worker.ask(request, timeout + GRACE_S, most)
            except _TooLarge:
                self._discard(worker)
                raise EngineError("result_too_large", "the result is larger than the sql tool returns "
                                  "(BASTION_SQL_MAX_RESULT_BYTES): select fewer or narrower "
                                  "columns") from None  # fmt: skip
            except _Stopped as stopped:
                self._discard(worker)
                raise self._stopped_error(stopped.exit_code, timeout) from None
            except pickle.UnpicklingError as exc:  # not what a worker of ours sends: it is not trusted again
                self._discard(worker)
                raise EngineError("engine_down", f"the sql tool's engine process sent a bad reply: {exc}") from None
            except BaseException:  # interrupted while waiting: the worker's state is unknown
                self._discard(worker)
                raise
            # Memory a worker's allocator keeps after a query counts against its limit for the next one (so a
            # query could pass or fail by what ran before it): a worker that ran out, or holds more than half
            # its bound, is replaced.
            spent = reply[0] == "error" and reply[1] == "memory_exceeded"
            if spent or (self.limit is not None and worker.data_bytes() > self.limit // 2):
                self._discard(worker)
            else:
                self._give_back(worker)
        finally:
            self._slots.release()
        if reply[0] == "ok":
            return reply[1]
        code, message = reply[1], reply[2]
        if code == "memory_exceeded":
            message = self._memory_message()
        raise EngineError(code, message)

    def _memory_message(self) -> str:
        return (f"the query needed more memory than the sql tool allows (BASTION_SQL_MEMORY_LIMIT = {self.memory}): "
                "select fewer or narrower values, or aggregate")  # fmt: skip

    def _stopped_error(self, exit_code: int | None, timeout: float) -> EngineError:
        if exit_code is None:
            return EngineError("timeout", f"the query ran longer than {timeout:g}s and did not stop when cancelled: "
                               "its engine process was stopped")  # fmt: skip
        if exit_code < 0:  # a signal: the kernel's out-of-memory killer, an allocation the engine did not survive
            why = f" (most likely out of memory: BASTION_SQL_MEMORY_LIMIT = {self.memory})" if self.limit else ""
            return EngineError("engine_down", f"the sql tool's engine process was stopped by signal {-exit_code} "
                               f"while running the query{why}; it is restarted for the next query")  # fmt: skip
        return EngineError("engine_down", f"the sql tool's engine process stopped (exit code {exit_code})")

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise EngineError("engine_down", "the sql tool's engine is closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self._all.remove(worker)
                worker.stop()  # its connection and scratch directory
            try:
                worker = _Worker(self.url, self.limit, self._engine_memory)
            except OSError as exc:
                raise EngineError("engine_down", f"cannot start the sql tool's engine process: {exc}") from None
            self._all.append(worker)
            return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if self._closed:
                self._all.remove(worker)
                worker.stop()
            else:
                self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def pids(self) -> list[int]:
        """The live workers' process ids."""
        with self._lock:
            return [w.process.pid for w in self._all if w.alive()]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                self._all.remove(worker)
        for worker in idle:
            worker.stop()
