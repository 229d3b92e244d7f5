"""Append audit rows in batches, off the request path.

Each call enqueues its row and returns; a background task inserts what has queued every
``interval`` seconds (or sooner when a batch fills). A graceful shutdown flushes everything;
a crash can lose at most the rows of the last interval.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from sqlalchemy import insert

from registry.db import Database
from registry.db.models import AuditEvent

log = logging.getLogger("bastion.audit")


class AuditWriter:
    def __init__(self, db: Database, interval: float = 0.05, batch: int = 500) -> None:
        self.db = db
        self.interval = interval
        self.batch = batch
        self._queue: list[dict[str, Any]] = []
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self.written = 0

    def record(self, row: dict[str, Any]) -> None:
        self._queue.append(row)
        if len(self._queue) >= self.batch:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything queued so far (serialised: batches keep their order)."""
        async with self._lock:
            while self._queue:
                rows, self._queue = self._queue[: self.batch], self._queue[self.batch :]
                await anyio.to_thread.run_sync(self._insert, rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with self.db.transaction() as session:
            session.execute(insert(AuditEvent), rows)
        self.written += len(rows)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        try:
            while True:
                with anyio.move_on_after(self.interval):
                    await self._wake.wait()
                self._wake = anyio.Event()
                try:
                    await self.flush()
                except Exception:
                    # Keep the rows: they are retried on the next tick rather than lost.
                    log.exception("audit flush failed; will retry")
        finally:
            with anyio.CancelScope(shield=True):
                await self.flush()
