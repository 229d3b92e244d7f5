"""Work a caller's input drives, in processes of its own with bounded memory, never in the gateway's.

The guard bounds what a query says, not what it builds: nested string functions, a recursive CTE that doubles
a string, an aggregate over a join all grow a value past any count written in the query (README, SQL guard).
DuckDB's `memory_limit` covers its buffer-managed memory, not the strings an expression builds; SQLite and
the drivers of remote engines hold whatever a row holds. Run in the gateway, one such query took the machine.

So tools that run what a caller wrote (the `sql` tool's queries, the `parity` tool's `sql:` inputs) do it in
a `BoundedPool`: worker processes, started on first use, whose data segment is limited (`RLIMIT_DATA`; each
file they write too, `RLIMIT_FSIZE`). Work that needs more fails there (`memory_exceeded`); a worker that ran
out, or keeps more than half its bound, is replaced, and so is one that dies or overruns its deadline.

A worker is a new interpreter (`python -I`: nothing imported from the gateway's directory or PYTHONPATH), in a
scratch directory of its own (its TMPDIR, removed however it ends), without the gateway's `BASTION_*`
settings, the kernel's first choice when memory runs out, and it exits when the gateway does. It serves one
request at a time through a handler, named by the pool as `module:callable` and built in the worker. What it
sends back is plain data (tuples, lists, dicts, strings, numbers), read by an unpickler that refuses any class:
it ran what a caller wrote, so its replies are data and can name nothing to call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import importlib
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
import uuid
import weakref
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, StringConstraints

# Beyond the work's own timeout: starting a worker and opening its engine (a Spark Connect session) happen
# inside the first call.
GRACE_S = 20.0
SCRATCH_PREFIX = "bastion-worker-"
START_TIMEOUT_S = 60.0
# Below this a worker cannot even load its engine (and every query would look like the query's fault); above
# the second, the number is a typo.
MIN_MEMORY = 512 * 1000**2
MAX_MEMORY = 1024**5
_UNITS = {"KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "TIB": 1024**4}  # fmt: skip

Reply = tuple[Any, ...]  # ("ok", payload) or ("error", code, message)


class BoundedError(Exception):
    """Work refused or failed in a worker: `code` as the tools report it (memory_exceeded, timeout, busy, …)."""

    def __init__(self, code: str, message: str, kinds: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.kinds = kinds  # for "failed": the class names of the exception the handler raised (its MRO)


def size_bytes(size: str) -> int:
    """'2GB' → 2,000,000,000 (DuckDB's units: KB/MB/GB/TB are powers of 1000, KiB… of 1024)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B)\s*", size, re.IGNORECASE)
    if match is None:
        raise ValueError(f"not a size: {size[:40]!r} (give e.g. 2GB or 512MiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def check_memory(value: str | None) -> str | None:
    """A memory setting a worker can run with (for the tools' settings validators)."""
    if value is not None and not MIN_MEMORY <= size_bytes(value) <= MAX_MEMORY:
        raise ValueError("between 512MB (a worker process needs that much to run) and 1PiB")
    return value


# A worker's memory setting (BASTION_SQL_MEMORY_LIMIT, BASTION_PARITY_MEMORY_LIMIT): DuckDB's units, a bound a
# worker can run with.
MemoryLimit = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"),
    AfterValidator(check_memory),
]


def plain(value: Any) -> Any:
    """`value` as plain data a worker may send: models dumped, enums as their values, dates as ISO text."""
    if value is None or isinstance(value, str | bool | int | float | bytes):
        return value
    if isinstance(value, BaseModel):
        return plain(value.model_dump())
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | dt.timedelta | uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    return str(value)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the worker process sent an object ({module[:40]}.{name[:40]})")


def plain_loads(data: bytes) -> Any:
    """A worker's reply: tuples, lists, dicts, strings and numbers only."""
    return _PlainUnpickler(io.BytesIO(data)).load()


# -- the worker's side ---------------------------------------------------------------------------------


def _remove_scratch() -> None:
    """The worker's scratch directory (its TMPDIR), when the gateway is no longer there to remove it."""
    scratch = Path(os.environ.get("TMPDIR", ""))
    if scratch.name.startswith(SCRATCH_PREFIX) and scratch.is_absolute():
        shutil.rmtree(scratch, ignore_errors=True)


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


def half_the_data_limit() -> str | None:
    """In a worker, the memory its engine may manage: half the process's data limit, so DuckDB spills or fails
    cleanly before the process runs out (unbounded, DuckDB would assume 80% of the machine's memory)."""
    limit, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if limit == resource.RLIM_INFINITY or limit <= 0:
        return None
    return f"{limit // 2 // 1024**2}MiB"


def _named(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn: Connection) -> None:
    """A worker: one handler, one request at a time, until the pipe closes."""
    _detach_from_harm()
    limit, factory, arguments = conn.recv()
    if limit is not None:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
        # Files too (SQLite's temporary files, DuckDB's spill): a write past the bound fails, not the process.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    handler: Callable[[tuple[Any, ...]], Reply] = _named(factory)(*arguments)
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        try:
            reply = handler(request)
        except MemoryError:
            reply = ("error", "memory_exceeded", "")
        except Exception as exc:  # a handler's own failure, reported with its kind
            if "Out of Memory" in str(exc):  # DuckDB, at its limit or at the worker's
                reply = ("error", "memory_exceeded", "")
            else:  # bounded by the handler's own errors; cut here for the rest
                reply = ("error", "failed", str(exc)[:2000], [k.__name__ for k in type(exc).__mro__])
        try:
            conn.send_bytes(pickle.dumps(reply, protocol=5))
        except MemoryError:  # the result fitted in the engine but not once more as a message
            conn.send_bytes(pickle.dumps(("error", "memory_exceeded", "")))
    close = getattr(handler, "close", None)
    if callable(close):
        close()
    _remove_scratch()


def serve_fd(fd: int) -> None:
    """A worker's entry point (`_WORKER`): serve on the socket `fd`; the scratch directory goes with the worker
    however it ends (a gateway that died while the worker started never sends it its setup)."""
    try:
        _serve(Connection(fd))
    except (EOFError, OSError):
        pass
    finally:
        _remove_scratch()


def call(request: tuple[Any, ...]) -> Reply:
    """A handler that calls the function a request names: ("call", "module:function", args, kwargs)."""
    _, target, args, kwargs = request
    return ("ok", plain(_named(target)(*args, **kwargs)))


def calls() -> Callable[[tuple[Any, ...]], Reply]:
    """The factory of `call` (a pool's handler is built in the worker by a factory)."""
    return call


# -- the gateway's side --------------------------------------------------------------------------------

_WORKER = "import sys; from tools.engines.bounded import serve_fd; serve_fd(int(sys.argv[1]))"


class _TooLarge(Exception):
    pass


class _Stopped(Exception):
    def __init__(self, exit_code: int | None) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class _Worker:
    def __init__(self, limit: int | None, factory: str, arguments: tuple[Any, ...]) -> None:
        self.scratch = tempfile.mkdtemp(prefix=SCRATCH_PREFIX)
        ours, theirs = socket.socketpair()
        try:
            # The platform's own settings (its signing secret, database URLs) stay out of the worker.
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
        with contextlib.suppress(OSError):
            (Path(self.scratch) / _OWNER).write_text(str(self.process.pid))
        self.conn = Connection(ours.detach())
        try:
            self.conn.send((limit, factory, arguments))
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
                plain_loads(self.conn.recv_bytes())
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
            return plain_loads(data)
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


_OWNER = ".worker-pid"
_SWEPT = threading.Event()


def _sweep_stale_scratch(min_age: float = 60.0) -> None:
    """Scratch directories whose worker is gone: a worker killed together with its gateway (`kill -9` of the
    process group) removes nothing. Once per process, on the first pool; a directory without its owner's pid
    yet, or younger than `min_age`, is left alone."""
    if _SWEPT.is_set():
        return
    _SWEPT.set()
    for scratch in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        with contextlib.suppress(OSError, ValueError):
            if time.time() - scratch.stat().st_mtime < min_age:
                continue
            pid = int((scratch / _OWNER).read_text())
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                shutil.rmtree(scratch, ignore_errors=True)


def _stop_all(workers: list[_Worker]) -> None:
    for worker in list(workers):
        worker.stop()
    workers.clear()


class BoundedPool:
    """Up to `workers` worker processes, each limited to `memory`, each running the handler `factory` builds
    (`module:callable`, called with `arguments` in the worker). `setting` names the memory setting in errors."""

    def __init__(
        self, memory: str | None, workers: int, factory: str, arguments: tuple[Any, ...] = (),
        setting: str = "the memory limit", what: str = "the work", grace: float = GRACE_S,
    ) -> None:  # fmt: skip
        self.memory = memory
        self.limit = size_bytes(memory) if memory is not None else None
        if self.limit is not None and not MIN_MEMORY <= self.limit <= MAX_MEMORY:
            raise ValueError(f"a worker's memory limit must be between 512MB and 1PiB (got {str(memory)[:40]!r})")
        self.workers = workers
        self.factory, self.arguments = factory, arguments
        self.setting, self.what = setting, what
        self.grace = grace  # beyond the timeout: the handler's own cancellation first, then the worker is killed
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._all: list[_Worker] = []
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._all)
        _sweep_stale_scratch()

    def call(self, request: tuple[Any, ...], timeout: float, most: int | None = None) -> Any:
        """The payload of the worker's ("ok", payload) reply; a `BoundedError` for its ("error", code, message)
        and for everything that went wrong around it."""
        wait = min(timeout, 60.0)
        if not self._slots.acquire(timeout=wait):
            raise BoundedError("busy", f"{self.workers} workers were busy for {wait:g}s; try again later")
        try:
            worker = self._take()
            try:
                reply = worker.ask(request, timeout + self.grace, most)
            except _TooLarge:
                self._discard(worker)
                raise BoundedError("reply_too_large", "the result is larger than is returned") from None
            except _Stopped as stopped:
                self._discard(worker)
                raise self._stopped_error(stopped.exit_code, timeout) from None
            except pickle.UnpicklingError as exc:  # not what a worker of ours sends: it is not trusted again
                self._discard(worker)
                raise BoundedError("engine_down", f"a worker process sent a bad reply: {exc}") from None
            except BaseException:  # interrupted while waiting: the worker's state is unknown
                self._discard(worker)
                raise
            # Memory a worker's allocator keeps after a request counts against its limit for the next one (so
            # work could pass or fail by what ran before it): a worker that ran out, or holds more than half its
            # bound, is replaced.
            spent = reply[0] == "error" and reply[1] == "memory_exceeded"
            if spent or (self.limit is not None and worker.data_bytes() > self.limit // 2):
                self._discard(worker)
            else:
                self._give_back(worker)
        finally:
            self._slots.release()
        if reply[0] == "ok":
            return reply[1]
        code, message = str(reply[1]), str(reply[2])
        if code == "memory_exceeded":
            message = self.memory_message()
        kinds = tuple(str(k) for k in reply[3]) if len(reply) > 3 and isinstance(reply[3], list) else ()
        raise BoundedError(code, message, kinds)

    def memory_message(self) -> str:
        return (f"{self.what} needed more memory than is allowed ({self.setting} = {self.memory}): select fewer or "
                "narrower values, or aggregate")  # fmt: skip

    def _stopped_error(self, exit_code: int | None, timeout: float) -> BoundedError:
        if exit_code is None:
            return BoundedError("timeout", f"{self.what} ran longer than {timeout:g}s: its worker process was "
                                "stopped")  # fmt: skip
        if exit_code < 0:  # a signal: the kernel's out-of-memory killer, an allocation the engine did not survive
            why = f" (most likely out of memory: {self.setting} = {self.memory})" if self.limit else ""
            return BoundedError("engine_down", f"the worker process was stopped by signal {-exit_code} while "
                                f"running {self.what}{why}; it is restarted for the next call")  # fmt: skip
        return BoundedError("engine_down", f"the worker process stopped (exit code {exit_code})")

    def _take(self) -> _Worker:
        with self._lock:
            if self._closed:
                raise BoundedError("engine_down", "the workers are closed")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive():
                    return worker
                self._all.remove(worker)
                worker.stop()  # its connection and scratch directory
            try:
                worker = _Worker(self.limit, self.factory, self.arguments)
            except OSError as exc:
                raise BoundedError("engine_down", f"cannot start a worker process: {exc}") from None
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

    def scratch_dirs(self) -> list[str]:
        with self._lock:
            return [w.scratch for w in self._all]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for worker in idle:
                self._all.remove(worker)
        for worker in idle:
            worker.stop()
