"""The feature log: what was served (features, model version, scores), one row per candidate, in DuckDB.

Written off the request path. A scored request hands its arrays to a queue and returns; a background writer
turns the queued requests into Arrow tables and appends them in one transaction every `interval` seconds
(or sooner when many rows wait), opening the DuckDB file only for that moment so that audits can read it in
between (connect, insert, checkpoint on close: 150-250 ms of one core for 8,000 rows, on a DuckDB thread of
its own; README, "Serving"). The queue is bounded in rows: beyond it,
requests are still served and their rows dropped and counted (the log is a record for parity audits, not a
ledger; a request never waits for a disk). `close()` writes everything queued; the inference server's
lifespan calls it on a graceful stop, and it is also registered at interpreter exit. Prometheus metrics
(default registry): queued rows, the lag of the oldest queued row, rows written, rows dropped.
"""

from __future__ import annotations

import atexit
import functools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from prometheus_client import Counter, Gauge

log = logging.getLogger("bastion.inference")


class _Metrics:
    def __init__(self) -> None:
        self.queued = Gauge("bastion_feature_log_queue_rows", "Feature log rows waiting to be written")
        self.lag = Gauge("bastion_feature_log_lag_seconds", "Age of the oldest feature log row not yet written")
        self.written = Counter("bastion_feature_log_rows_written", "Feature log rows written")
        self.dropped = Counter("bastion_feature_log_rows_dropped", "Feature log rows dropped: the queue was full")


@functools.cache
def metrics() -> _Metrics:
    """One set per process (the default Prometheus registry refuses the same name twice)."""
    return _Metrics()


@dataclass(frozen=True, slots=True)
class Served:
    """One scored request as the writer needs it: the scorer's schema, the encoded arrays, the scores."""

    table: str
    request_id: str
    logged_at: datetime
    model_version: str
    surface: str
    ids: pa.Array  # Arrow strings: a queued list of 500 str cost the cycle collector 500 visits per full pass
    user_columns: list[tuple[str, str, float | int]]  # (name, duckdb type, value)
    item_cat: np.ndarray[Any, Any]
    item_dense: np.ndarray[Any, Any]
    item_names: tuple[list[str], list[str]]
    history: np.ndarray[Any, Any]  # int64
    click: np.ndarray[Any, Any] | None
    conversion: np.ndarray[Any, Any]

    @property
    def rows(self) -> int:
        return len(self.ids)

    def columns(self) -> list[tuple[str, str]]:
        cat, dense = self.item_names
        return (
            [("request_id", "VARCHAR"), ("logged_at", "TIMESTAMP"), ("model_version", "VARCHAR"),
             ("surface", "VARCHAR"), ("candidate_id", "VARCHAR")]
            + [(name, kind) for name, kind, _ in self.user_columns]
            + [(n, "BIGINT") for n in cat] + [(n, "DOUBLE") for n in dense]
            + [("history", "BIGINT[]"), ("p_click", "DOUBLE"), ("p_conversion", "DOUBLE")]
        )  # fmt: skip


def batch_table(requests: list[Served]) -> pa.Table:
    """One Arrow table for many requests of one schema, built column by column over the whole batch.

    The per-request Python work is a few list appends; every column is one numpy/Arrow call for the batch.
    Built per request (~20 Arrow calls each), 80 requests held the writer in Python for ~60 ms, slicing the
    GIL with the request threads (a request waited up to the 5 ms switch interval at each hand-off)."""
    first = requests[0]
    counts = np.fromiter((r.rows for r in requests), dtype=np.int64, count=len(requests))
    n = int(counts.sum())
    cat, dense = first.item_names

    owner = pa.array(np.repeat(np.arange(len(requests)), counts))  # each row's request

    def per_request(values: list[Any], kind: pa.DataType) -> pa.Array:  # one value per request, repeated per row
        return pa.array(values, kind).take(owner)

    data: dict[str, pa.Array] = {
        "request_id": per_request([r.request_id for r in requests], pa.string()),
        "logged_at": pa.array(
            np.repeat(np.array([r.logged_at.replace(tzinfo=None) for r in requests], dtype="datetime64[us]"), counts)
        ),
        "model_version": per_request([r.model_version for r in requests], pa.string()),
        "surface": per_request([r.surface for r in requests], pa.string()),
        "candidate_id": pa.concat_arrays([r.ids for r in requests]),
    }
    for column, (name, kind, _) in enumerate(first.user_columns):
        dtype = np.int64 if kind == "BIGINT" else np.float64
        values = np.array([r.user_columns[column][2] for r in requests], dtype=dtype)
        data[name] = pa.array(np.repeat(values, counts))
    item_cat = np.concatenate([r.item_cat for r in requests]).astype(np.int64, copy=False)
    item_dense = np.concatenate([r.item_dense for r in requests]).astype(np.float64, copy=False)
    for i, name in enumerate(cat):
        data[name] = pa.array(item_cat[:, i])
    for i, name in enumerate(dense):
        data[name] = pa.array(item_dense[:, i])
    lengths = np.repeat(np.array([len(r.history) for r in requests], dtype=np.int64), counts)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.tile(r.history, r.rows) for r in requests])
    data["history"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.int64()))
    clicks = np.concatenate([np.zeros(r.rows) if r.click is None else r.click.astype(np.float64) for r in requests])
    no_click = np.repeat(np.array([r.click is None for r in requests]), counts)  # a model without a click head
    data["p_click"] = pa.array(clicks, mask=no_click) if no_click.any() else pa.array(clicks)
    data["p_conversion"] = pa.array(np.concatenate([r.conversion.astype(np.float64, copy=False) for r in requests]))
    return pa.table(data)


class FeatureLog:
    def __init__(
        self, path: Path, *, interval: float = 5.0, max_rows: int = 500_000, batch_rows: int = 100_000
    ) -> None:
        self.path = path
        self.interval = interval
        self.max_rows = max_rows
        self.batch_rows = batch_rows
        self.metrics = metrics()
        self._queue: deque[tuple[float, Served]] = deque()
        self._rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushing = threading.Lock()  # one writer at a time (the thread, or close/flush callers)
        self.written = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="feature-log-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # -- the request side: never waits for the disk ------------------------------------------------------

    def submit(self, served: Served) -> bool:
        """Queue a request's rows; False (and counted) when the queue is full."""
        with self._lock:
            if self._rows + served.rows > self.max_rows:
                self.dropped += served.rows
                self.metrics.dropped.inc(served.rows)
                if self.dropped == served.rows or self.dropped % 100_000 < served.rows:
                    log.warning("feature log queue full (%d rows): %d rows dropped so far", self._rows, self.dropped)
                return False
            self._queue.append((time.monotonic(), served))
            self._rows += served.rows
            self.metrics.queued.set(self._rows)
            if self._rows >= self.batch_rows:
                self._wake.set()
        return True

    @property
    def pending(self) -> int:
        return self._rows

    def lag(self) -> float:
        with self._lock:
            return time.monotonic() - self._queue[0][0] if self._queue else 0.0

    # -- the writer --------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # keep serving; the rows stay queued and the next round retries
                log.exception("feature log write failed; %d rows kept for the next attempt", self._rows)
                self._stop.wait(1.0)

    def flush(self) -> None:
        """Write every queued request (oldest first), one insert per table."""
        with self._flushing:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            taken = list(self._queue)
        if not taken:
            self.metrics.lag.set(0.0)
            return
        self.metrics.lag.set(time.monotonic() - taken[0][0])
        by_table: dict[str, list[Served]] = {}
        for _, served in taken:
            by_table.setdefault(served.table, []).append(served)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One DuckDB thread: the writer is background work and must not take the cores that serve requests.
        con = duckdb.connect(str(self.path), config={"threads": 1})
        try:
            for table, requests in by_table.items():
                # Every write (a millisecond): the file may have been moved away or replaced since the last one
                # (an operator archiving the log); a remembered "exists" would fail every write after that.
                ddl = ", ".join(f'"{c}" {t}' for c, t in requests[0].columns())
                con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({ddl})")
                batch = batch_table(requests)
                con.register("feature_log_batch", batch)
                try:
                    con.execute(f"INSERT INTO {table} SELECT * FROM feature_log_batch")
                finally:
                    con.unregister("feature_log_batch")
        finally:
            con.close()
        rows = sum(s.rows for _, s in taken)
        with self._lock:
            for _ in taken:
                self._queue.popleft()
            self._rows -= rows
            self.metrics.queued.set(self._rows)
        self.written += rows
        self.metrics.written.inc(rows)
        self.metrics.lag.set(self.lag())

    def close(self) -> None:
        """Stop the writer and write what is queued (a graceful stop loses no row)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        for attempt in range(3):
            try:
                self.flush()
                break
            except Exception:
                log.exception("feature log: final write failed (attempt %d)", attempt + 1)
                time.sleep(0.5)
        atexit.unregister(self.close)


def served_request(request_id: str, scorer: Any, encoded: Any, ids: list[str], conv: Any, click: Any) -> Served:
    """The log entry of one scored request (cheap: references the request's own arrays)."""
    s = scorer.schema
    user: list[tuple[str, str, float | int]] = [
        (n, "BIGINT", int(encoded.user_cat[0, i])) for i, n in enumerate(s.user_categorical)
    ] + [(n, "DOUBLE", float(encoded.user_dense[0, i])) for i, n in enumerate(s.user_dense)]
    return Served(
        table=f"served_{scorer.artifact.schema_hash}",
        request_id=request_id,
        logged_at=datetime.now(UTC),
        model_version=scorer.artifact.version,
        surface=s.surfaces[int(encoded.surface[0])],
        ids=pa.array(ids, pa.string()),
        user_columns=user,
        item_cat=encoded.item_cat,
        item_dense=encoded.item_dense,
        item_names=(list(s.item_categorical), list(s.item_dense)),
        history=encoded.history[0][encoded.history[0] > 0].astype(np.int64),
        click=None if click is None else np.asarray(click),
        conversion=np.asarray(conv),
    )
