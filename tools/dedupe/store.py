"""Versioned learned maps in a SQLite file: append a version, never rewrite one.

Publishing allocates the next version and runs the anomaly gate in one transaction, so two
learners racing on a domain cannot both become version N, and a rejected map is kept (with the
gate's report) for review but never served.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from tools.dedupe.maps import anomaly_gate
from tools.dedupe.model import DomainMap

_SCHEMA = """
CREATE TABLE IF NOT EXISTS maps (
    domain TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'rejected', 'superseded')),
    created_at TEXT NOT NULL,
    created_by TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (domain, version)
);
CREATE INDEX IF NOT EXISTS maps_active ON maps (domain) WHERE status = 'active';
"""


class MapNotFound(LookupError):
    pass


class MapVersion(BaseModel):
    domain: str
    version: int
    status: str
    created_at: datetime
    created_by: str | None
    patterns: int
    renders: int
    gate: str | None


class MapStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._watch: sqlite3.Connection | None = None  # read-only use: revision()
        self._watch_lock = threading.Lock()
        self._watched = (0, 0)
        self._generation = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode=WAL")
            yield con
        finally:
            con.close()

    @staticmethod
    def _load(row: tuple[str, int, str, str, str | None, str]) -> DomainMap:
        domain_map = DomainMap.model_validate_json(row[5])
        domain_map.version, domain_map.status = row[1], row[2]  # type: ignore[assignment]
        return domain_map

    def publish(
        self, candidate: DomainMap, *, max_flip_share: float, override_gate: bool = False, created_by: str | None = None
    ) -> DomainMap:
        """Store `candidate` as the domain's next version; active unless the anomaly gate rejects it."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                active = self._active(con, candidate.domain)
                (latest,) = con.execute(
                    "SELECT COALESCE(MAX(version), 0) FROM maps WHERE domain = ?", (candidate.domain,)
                ).fetchone()
                gate = anomaly_gate(active, candidate, max_flip_share)
                if not gate.passed and override_gate:
                    gate.overridden = True
                accepted = gate.passed or override_gate
                stored = candidate.model_copy(
                    update={
                        "version": latest + 1,
                        "created_at": datetime.now(UTC),
                        "created_by": created_by,
                        "status": "active" if accepted else "rejected",
                        "gate": gate,
                    }
                )
                if accepted and active is not None:
                    con.execute(
                        "UPDATE maps SET status = 'superseded' WHERE domain = ? AND status = 'active'",
                        (candidate.domain,),
                    )
                con.execute(
                    "INSERT INTO maps (domain, version, status, created_at, created_by, body)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        stored.domain,
                        stored.version,
                        stored.status,
                        stored.created_at.isoformat() if stored.created_at else "",
                        created_by,
                        stored.model_dump_json(),
                    ),
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return stored

    def _active(self, con: sqlite3.Connection, domain: str) -> DomainMap | None:
        row = con.execute("SELECT * FROM maps WHERE domain = ? AND status = 'active'", (domain,)).fetchone()
        return None if row is None else self._load(row)

    def revision(self) -> tuple[int, int]:
        """Changes whenever a version is published (by any process) or the file is replaced.

        Asked on every normalize call: a connection kept for it reads SQLite's `data_version`, which moves when any
        other connection commits (~10 µs, where opening the file took ~0.5 ms). The file's identity is checked
        too: a kept connection stays on a file that was replaced (an operator restoring a backup), so a new file
        gets a new connection and a new generation. (Counting rows and the last rowid, as before, missed a
        deleted last version followed by a new one: SQLite reuses the rowid.)"""
        with self._watch_lock:
            identity = self._identity_of_file()
            if self._watch is None or identity != self._watched:
                if self._watch is not None:
                    self._watch.close()
                self._watch = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                self._watched = self._identity_of_file()
                self._generation += 1
            (version,) = self._watch.execute("PRAGMA data_version").fetchone()
            return self._generation, int(version)

    def _identity_of_file(self) -> tuple[int, int]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return (0, 0)
        return stat.st_dev, stat.st_ino

    def active(self, domain: str) -> DomainMap | None:
        with self._connect() as con:
            return self._active(con, domain)

    def all_active(self) -> list[DomainMap]:
        with self._connect() as con:
            return [self._load(r) for r in con.execute("SELECT * FROM maps WHERE status = 'active' ORDER BY domain")]

    def get(self, domain: str, version: int) -> DomainMap:
        with self._connect() as con:
            row = con.execute("SELECT * FROM maps WHERE domain = ? AND version = ?", (domain, version)).fetchone()
            if row is None:
                known = [
                    v for (v,) in con.execute("SELECT version FROM maps WHERE domain = ? ORDER BY version", (domain,))
                ]
                hint = f"versions: {', '.join(map(str, known))}" if known else "the domain has no maps"
                raise MapNotFound(f"{domain} has no map version {version} ({hint})")
            return self._load(row)

    def versions(self, domain: str | None = None) -> list[MapVersion]:
        query = "SELECT * FROM maps" + (" WHERE domain = ?" if domain else "") + " ORDER BY domain, version"
        with self._connect() as con:
            rows = con.execute(query, (domain,) if domain else ()).fetchall()
        out: list[MapVersion] = []
        for row in rows:
            m = self._load(row)
            out.append(
                MapVersion(
                    domain=m.domain,
                    version=m.version,
                    status=m.status,
                    created_at=datetime.fromisoformat(row[3]),
                    created_by=row[4],
                    patterns=len(m.patterns),
                    renders=m.renders,
                    gate=m.gate.short() if m.gate else None,
                )
            )
        return out
