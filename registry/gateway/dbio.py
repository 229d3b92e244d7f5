"""Database work of the gateway, off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from sqlalchemy.orm import Session

from registry.db import Database

T = TypeVar("T")


async def read(db: Database, fn: Callable[[Session], T]) -> T:
    def job() -> T:
        with db.read() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(job)


async def transaction(db: Database, fn: Callable[[Session], T]) -> T:
    def job() -> T:
        with db.transaction() as session:
            return fn(session)

    return await anyio.to_thread.run_sync(job)
