"""Engine and session factory for the registry database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from registry.db import revision


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    # orjson for JSON columns: several times faster than the stdlib on the read paths.
    kwargs.setdefault("json_serializer", _json_dumps)
    kwargs.setdefault("json_deserializer", orjson.loads)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    # REPLACE deletes a conflicting row; with recursive triggers its DELETE triggers fire (audit append-only).
    cur.execute("PRAGMA recursive_triggers=ON")
    cur.close()


class Database:
    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = create_db_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Read-only requests need no transaction: autocommit saves BEGIN/COMMIT round trips.
        self.read_sessions = sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False
        )
        self._listeners: list[Callable[[], None]] = []
        self._schema_ok_until = 0.0
        revision.install(self.sessions, self._changed)

    def on_governed_change(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every commit that changed governed state."""
        self._listeners.append(callback)

    def _changed(self) -> None:
        for callback in self._listeners:
            callback()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session: whatever it did is rolled back on exit."""
        with self.sessions() as session:
            try:
                yield session
            finally:
                session.rollback()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for read-only work: each statement runs on its own, no transaction."""
        with self.read_sessions() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed if the block succeeds, rolled back if it raises.

        Services only flush; the request (or CLI command) that composes them commits once,
        so a failure part-way through never leaves a partial write behind.
        """
        with self.sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def health(self) -> str | None:
        """None when the database answers and its schema is what this version needs; else the reason.

        A schema found at head is trusted for 30 s (schemas move forward, by `bastion db upgrade`)."""
        from registry.db.migrate import schema_problem

        if time.monotonic() < self._schema_ok_until:
            return None if self.ping() else "database unreachable"
        try:
            problem = schema_problem(self.engine)
        except Exception:
            return "database unreachable"
        if problem is None:
            self._schema_ok_until = time.monotonic() + 30.0
        return problem

    def dispose(self) -> None:
        self.engine.dispose()
