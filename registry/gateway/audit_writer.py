"""Append audit rows in batches, off the request path, without ever losing one.

Each call enqueues its row and returns; a background task inserts what has queued every ``interval``
seconds (or sooner when a batch fills). The guarantees:

- **Bounded before queuing**: every field is cut to its column (a 100-character tool name, a 40-character
  approval id, a 2 MB argument), text is made storable (no NUL, no lone surrogate), and a row that had to be
  cut says so in ``flags``. One caller can no longer make a batch of other users' rows fail.
- **Nothing is removed from the queue until it is committed.** A batch that fails because the database is
  unreachable stays queued and is retried with exponential back-off; a batch that fails for a row-level
  reason is split, each row inserted on its own, and a row that still fails (a poison row) is stored cut
  down and flagged instead.
- **Bounded queue with back-pressure**: ``accepting()`` turns false when the backlog passes its row or byte
  bound; the gateway then waits briefly and refuses new calls (``audit_backlog``) rather than run calls it
  cannot audit. Queue length, lag and failures are metrics.
- **Graceful stop**: the queue is flushed; if the database is still down, the rows are spilled to
  ``DATA_DIR/audit-spool/*.jsonl`` and inserted at the next start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from collections import Counter, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import orjson
from anyio.abc import TaskStatus
from sqlalchemy import insert, select
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from governance import redact
from governance.redaction import arguments_bytes
from registry.db import Database
from registry.db.models import AuditEvent
from registry.gateway.metrics import GatewayMetrics

log = logging.getLogger("bastion.audit")

# Column lengths of audit_events (registry/db/models.py), read once from the model.
LIMITS: dict[str, int] = {
    c.name: int(length) for c in AuditEvent.__table__.columns if (length := getattr(c.type, "length", None))
}
MAX_ARGUMENT_BYTES = 16_384  # a row's arguments beyond this are summarised, not stored
MAX_STRING = 2_000  # any one string inside the arguments or the groups
MAX_GROUPS = 100


def _clean(text: str) -> str:
    """Storable on every backend: PostgreSQL refuses NUL in text and lone surrogates in UTF-8."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _bounded_json(value: Any, cut: list[str]) -> Any:
    if isinstance(value, str):
        cleaned = _clean(value)
        if len(cleaned) > MAX_STRING:
            cut.append("arguments")
            return _cut(cleaned, MAX_STRING)
        return cleaned
    if isinstance(value, dict):
        return {_cut(_clean(str(k)), 200): _bounded_json(v, cut) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded_json(v, cut) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinities are not JSON (PostgreSQL's jsonb refuses them)
    if value is None or isinstance(value, bool | int | float):
        return value
    return _bounded_json(str(value), cut)


def bound_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row as it will be stored: every field fits its column; `flags` says what was cut."""
    return _bound(row)[0]


def _summary(arguments: Any, size: int) -> dict[str, Any]:
    keys = sorted(str(k)[:100] for k in arguments)[:50] if isinstance(arguments, dict) else []
    return {"_summary": f"arguments of {size:,} bytes not stored", "keys": keys}


def audited_arguments(arguments: dict[str, Any], pii_keys: Iterable[str]) -> tuple[Any, str, bool]:
    """What an audit row keeps of a call's arguments: (stored, hash, summarised).

    The arguments are encoded once (the bytes `arguments_hash` hashes) for both the hash and the size. Beyond
    MAX_ARGUMENT_BYTES only their top-level names are kept, so a 360 KB argument of embeddings is neither
    redacted nor walked on the request path; smaller ones are redacted as always."""
    encoded = arguments_bytes(arguments)
    digest = "sha256:" + hashlib.sha256(encoded).hexdigest()
    if len(encoded) > MAX_ARGUMENT_BYTES:
        return _summary(arguments, len(encoded)), digest, True
    return redact(arguments, pii_keys), digest, False


def _bound(row: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`bound_row` and the row's approximate size in memory (for the queue's byte bound)."""
    out = dict(row)
    size = 512
    cut: list[str] = []
    if out.pop("arguments_summarised", False):
        cut.append("arguments")
    for key, limit in LIMITS.items():
        value = out.get(key)
        if isinstance(value, str):
            cleaned = _clean(value)
            if len(cleaned) > limit and key != "flags":
                cut.append(key)
            out[key] = _cut(cleaned, limit)
    groups = out.get("groups") or []
    if len(groups) > MAX_GROUPS or any(len(str(g)) > 200 for g in groups):
        cut.append("groups")
    out["groups"] = [_cut(_clean(str(g)), 200) for g in groups[:MAX_GROUPS]]
    arguments = out.get("arguments")
    if arguments is not None:
        try:  # large arguments are summarised without walking them (orjson sizes 360 KB in ~1 ms)
            encoded = len(orjson.dumps(arguments, default=str))
        except (TypeError, orjson.JSONEncodeError):
            encoded = 0  # text orjson refuses (a lone surrogate): the walk below makes it storable
        bounded = _bounded_json(arguments, cut) if encoded <= MAX_ARGUMENT_BYTES else None
        if bounded is not None:
            encoded = len(json.dumps(bounded, default=str))
        if encoded > MAX_ARGUMENT_BYTES:
            bounded = _summary(arguments, encoded)
            cut.append("arguments")
            encoded = 1_000
        out["arguments"] = bounded
        size += encoded
    if cut:
        note = "truncated:" + ",".join(dict.fromkeys(cut))
        out["flags"] = _cut(f"{out['flags']};{note}" if out.get("flags") else note, LIMITS["flags"])
    return out, size


def _poisoned(row: dict[str, Any], reason: str) -> dict[str, Any]:
    """A row that failed on its own, rebuilt from what cannot fail (every value checked and typed), and
    flagged: who, when, what and the outcome survive; the arguments do not (their hash does)."""

    def text(key: str, limit: int, default: str | None = None) -> str | None:
        value = row.get(key)
        return _cut(_clean(str(value)), limit) if value is not None else default

    def number(key: str) -> float:
        value = row.get(key)
        return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0

    at = row.get("at")
    safe: dict[str, Any] = {
        "at": at if isinstance(at, datetime) and at.tzinfo is not None else datetime.now(UTC),
        "kind": text("kind", 16, "?"), "subject": text("subject", 100, "?"), "groups": [], "client_id": None,
        "server": text("server", 100), "tool": text("tool", 32), "arguments": None,
        "arguments_hash": text("arguments_hash", 80), "decision": text("decision", 32, "?"), "rule": None,
        "outcome": text("outcome", 32, "?"), "error": _cut(_clean(reason), 500), "approval_id": None,
        "latency_ms": number("latency_ms"), "result_size": int(number("result_size")),
        "minutes_saved": number("minutes_saved"), "protocol_version": None, "replica": text("replica", 32),
        "trace_id": text("trace_id", 32),
        "flags": "poison: stored cut down after its insert failed",
    }  # fmt: skip
    return safe


def _utc(at: datetime) -> datetime:
    """Times as the database returns them (SQLite: naive UTC) and as rows hold them (aware), comparable."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _transient(exc: BaseException) -> bool:
    """The database is unreachable or busy (retry the batch), as opposed to a row it refuses."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout | ConnectionError)


class AuditWriter:
    def __init__(
        self,
        db: Database,
        interval: float = 0.05,
        batch: int = 500,
        *,
        max_rows: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_backoff: float = 5.0,
        spool: Path | None = None,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_backoff = max_backoff
        self.spool = spool
        self.metrics = metrics
        self._queue: deque[tuple[float, int, dict[str, Any]]] = deque()  # (queued at, bytes, row)
        self._bytes = 0
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self._failures = 0
        # The last write of the queue's head failed in a way that leaves its outcome unknown (the connection
        # dropped around COMMIT): before writing those rows again, drop the ones the database already holds.
        self._uncertain = False
        self.written = 0
        self.poisoned = 0
        self.failures = 0

    # -- the request side ---------------------------------------------------------------------------

    def record(self, row: dict[str, Any]) -> None:
        """Queue a row (bounded first). Never blocks and never drops: back-pressure is `accepting()`."""
        stored, size = _bound(row)
        self._queue.append((time.monotonic(), size, stored))
        self._bytes += size
        self._observe()
        if len(self._queue) >= self.batch:
            self._wake.set()

    def accepting(self) -> bool:
        return len(self._queue) < self.max_rows and self._bytes < self.max_bytes

    async def room(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the backlog to drop below its bounds."""
        if self.accepting():
            return True
        self._wake.set()
        with anyio.move_on_after(timeout):
            while not self.accepting():
                await anyio.sleep(min(0.05, timeout))
        return self.accepting()

    @property
    def pending(self) -> int:
        return len(self._queue)

    def lag(self) -> float:
        return time.monotonic() - self._queue[0][0] if self._queue else 0.0

    def _observe(self) -> None:
        if self.metrics is not None:
            self.metrics.audit_queue.set(len(self._queue))
            self.metrics.audit_lag.set(self.lag())

    # -- the writing side ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Write everything queued so far, in order; raises (rows kept) when the database is unreachable."""
        async with self._lock:
            while self._queue:
                rows = [entry[2] for entry in list(self._queue)[: self.batch]]
                pending = rows
                try:
                    if self._uncertain:
                        pending = await anyio.to_thread.run_sync(self._unwritten, rows)
                    await anyio.to_thread.run_sync(self._insert, pending)
                except Exception as exc:
                    if _transient(exc):
                        self._uncertain = True
                        if self._failures % 5 != 4:
                            raise
                    # A row-level failure (or a persistent "transient" one): rows one at a time.
                    await anyio.to_thread.run_sync(self._isolate, pending)
                self._uncertain = False
                self._pop(len(rows))
                self._failures = 0

    def _pop(self, count: int) -> None:
        for _ in range(count):
            _, size, _ = self._queue.popleft()
            self._bytes -= size
        self._observe()

    def _unwritten(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows of a batch the database does not hold yet.

        A write that failed around COMMIT may have been committed; writing it again would store each of its rows
        twice. Rows are matched on what identifies a call (time to the microsecond, replica, subject, kind,
        tool, arguments hash), counted, so that two identical rows of the batch are matched one for one."""
        if not rows:
            return rows
        stamps = [_utc(r["at"]) for r in rows]
        columns = (AuditEvent.at, AuditEvent.replica, AuditEvent.subject, AuditEvent.kind, AuditEvent.tool,
                   AuditEvent.arguments_hash)  # fmt: skip
        stmt = select(*columns).where(AuditEvent.at >= min(stamps), AuditEvent.at <= max(stamps))
        with self.db.transaction() as session:
            stored = Counter((_utc(at), *rest) for at, *rest in session.execute(stmt).all())
        fresh: list[dict[str, Any]] = []
        for row, at in zip(rows, stamps, strict=True):
            key = (at, *(row.get(k) for k in ("replica", "subject", "kind", "tool", "arguments_hash")))
            if stored[key] > 0:
                stored[key] -= 1
            else:
                fresh.append(row)
        if len(fresh) < len(rows):
            log.warning("audit: %d of %d rows were committed by a write that reported failure; not written again",
                        len(rows) - len(fresh), len(rows))  # fmt: skip
        return fresh

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.db.transaction() as session:
            session.execute(insert(AuditEvent), rows)
        self.written += len(rows)
        if self.metrics is not None:
            self.metrics.audit_written.inc(len(rows))

    def _isolate(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows one by one; a row that fails alone is stored cut down and flagged."""
        for row in rows:
            try:
                self._insert([row])
            except Exception as exc:
                if _transient(exc):
                    raise  # the database went away: keep every row of the batch for the retry
                log.error("audit row refused by the database (%s); stored cut down and flagged", type(exc).__name__)
                self._insert([_poisoned(row, f"{type(exc).__name__}: {str(exc)[:300]}")])
                self.poisoned += 1
                if self.metrics is not None:
                    self.metrics.audit_poisoned.inc()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await anyio.to_thread.run_sync(self._load_spool)
        task_status.started()
        try:
            while True:
                with anyio.move_on_after(self.interval):
                    await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    await self.flush()
                except Exception as exc:
                    self._failures += 1
                    self.failures += 1
                    if self.metrics is not None:
                        self.metrics.audit_failures.inc()
                    delay = min(self.max_backoff, self.interval * 2**self._failures)
                    if self._failures == 1 or self._failures % 20 == 0:
                        log.error("audit insert failed (%s: %s); %d rows kept, retrying with back-off",
                                  type(exc).__name__, str(exc)[:200], len(self._queue))  # fmt: skip
                    await anyio.sleep(delay)
                self._observe()
        finally:
            with anyio.CancelScope(shield=True):
                await self._final_flush()

    async def _final_flush(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            try:
                await self.flush()
                return
            except Exception as exc:
                log.error("audit flush at shutdown failed (%s), attempt %d", type(exc).__name__, attempt + 1)
                await anyio.sleep(min(1.0, self.interval * 2 ** (attempt + 1)))
        self._spill()

    # -- the spool: rows that could not be written before a graceful stop ----------------------------

    def _spill(self) -> None:
        if not self._queue:
            return
        if self.spool is None:
            log.critical("audit database unreachable at shutdown and no spool directory: %d rows lost",
                         len(self._queue))  # fmt: skip
            return
        self.spool.mkdir(parents=True, exist_ok=True)
        path = self.spool / f"audit-{int(time.time() * 1000)}-{os.getpid()}.jsonl"
        with path.open("w") as f:
            for _, _, row in self._queue:
                f.write(json.dumps(row, default=_encode) + "\n")
            f.flush()
            os.fsync(f.fileno())
        log.error("audit database unreachable at shutdown: %d rows spilled to %s", len(self._queue), path)
        self._queue.clear()
        self._bytes = 0

    def _load_spool(self) -> None:
        """Insert rows spilled by an earlier stop; a file is removed only once its rows are committed."""
        if self.spool is None or not self.spool.is_dir():
            return
        for path in sorted(self.spool.glob("audit-*.jsonl")):
            claimed = path.with_suffix(".loading")
            try:
                path.rename(claimed)  # one replica takes each file
            except OSError:
                continue
            rows = [bound_row(_decode(json.loads(line))) for line in claimed.read_text().splitlines() if line.strip()]
            try:
                for start in range(0, len(rows), self.batch):
                    # An earlier start may have written part of this file before the database went away again.
                    self._isolate(self._unwritten(rows[start : start + self.batch]))
            except Exception as exc:
                claimed.rename(path)  # still unreachable: kept for the next start
                log.error("audit: spilled rows in %s not written yet (%s)", path.name, type(exc).__name__)
                continue
            claimed.unlink()
            log.warning("audit: %d spilled rows from %s written", len(rows), path.name)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"__datetime__": value.isoformat()}
    return str(value)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    return {k: datetime.fromisoformat(v["__datetime__"]) if isinstance(v, dict) and "__datetime__" in v else v
            for k, v in row.items()}  # fmt: skip
