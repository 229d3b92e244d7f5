"""The dedupe service: settings, the live normalizer over the map store, and learning from a log.

I/O lives here (files, the engine that groups and samples a log, HTTP fetches, the SQLite store); the
algorithms it calls are pure. The MCP server (`server`) and the CLI are thin layers over this.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import duckdb
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.dedupe.fingerprint import (
    Fingerprinter,
    FingerprintKind,
    HttpFetcher,
    Page,
    PageFingerprinter,
    TableFingerprinter,
)
from tools.dedupe.learning import learn_domain
from tools.dedupe.maps import diff_maps
from tools.dedupe.model import DomainMap, GateReport, LearnSettings, MapDiff
from tools.dedupe.netguard import AddressRefused
from tools.dedupe.normalizer import Normalizer
from tools.dedupe.rules import RulesFile, load_rules
from tools.dedupe.sampling import ENGINE_FILES, LogError, LogSource, LogTable, sample
from tools.dedupe.store import MapStore
from tools.dedupe.syntax import URLError, clip, normalize_host, quote
from tools.engines import EngineError, EngineUnavailable

MAX_LOG_URLS = 5_000_000


class DedupeError(ValueError):
    """A request the service refuses, with a message for the caller (bounded: never an unbounded echo)."""

    def __init__(self, message: str) -> None:
        super().__init__(clip(message, 600))


class DedupeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_DEDUPE_", extra="ignore")

    store: Path = Field(Path(".bastion/dedupe/maps.db"), description="SQLite file holding the versioned learned maps")
    rules: Path | None = Field(None, description="YAML file of regex rules and platform hosts")
    log_dir: Path = Field(Path(".bastion/dedupe/logs"), description="Where learn_rules reads URL logs from")
    max_flip_share: float = Field(
        0.2, ge=0, le=1, description="Anomaly gate A: reject a map flipping more than this share of patterns"
    )
    fetch_rate: float = Field(2.0, gt=0, description="Page fetches per second per domain while learning")
    fetch_timeout: float = Field(10.0, gt=0)
    fetch_private: bool = Field(False, description="Allow learning to fetch hosts on private or loopback addresses")
    max_url_length: int = Field(8192, ge=256, le=1_000_000)
    engine: str | None = Field(
        None,
        description="Where learning groups and samples a log: embedded DuckDB by default (or a DuckDB file, whose "
        "tables a log may name), or Spark — sc://HOST:PORT (Spark Connect) or spark://HOST:PORT (a standalone "
        "master) — which prepares the log in its Python workers; the learned map is the same on every engine",
    )

    @classmethod
    def under(cls, data_dir: Path) -> DedupeSettings:
        """Settings whose unset paths live under the platform's data directory."""
        settings = cls()
        updates: dict[str, Path] = {}
        if "store" not in settings.model_fields_set:
            updates["store"] = data_dir / "dedupe" / "maps.db"
        if "log_dir" not in settings.model_fields_set:
            updates["log_dir"] = data_dir / "dedupe" / "logs"
        return settings.model_copy(update=updates)


class LearnOutcome(BaseModel):
    domain: str
    version: int
    status: Literal["active", "rejected"]
    gate: GateReport
    patterns: int
    renders: int
    log_urls: int = Field(description="Log URLs of this domain that were used")
    rejected_urls: dict[str, int] = Field(description="Log URLs refused by the syntax layer, by error code")
    diff: str | None = Field(None, description="Against the previously active version")
    summary: str


class DedupeService:
    def __init__(self, settings: DedupeSettings | None = None) -> None:
        self.settings = settings or DedupeSettings()
        self.store = MapStore(self.settings.store)
        self.rules: RulesFile = load_rules(self.settings.rules) if self.settings.rules else RulesFile()
        self._normalizer: Normalizer | None = None
        self._revision: tuple[int, int] | None = None

    # -- runtime ------------------------------------------------------------------------------

    def normalizer(self) -> Normalizer:
        """The normalizer over the active maps, rebuilt when any process publishes a new version."""
        revision = self.store.revision()
        if self._normalizer is None or revision != self._revision:
            self._normalizer = Normalizer(self.store.all_active(), self.rules, self.settings.max_url_length)
            self._revision = revision
        return self._normalizer

    # -- learning -----------------------------------------------------------------------------

    def read_log(self, source: str) -> tuple[list[str], dict[str, str] | None]:
        """A log named by a caller: only files inside log_dir."""
        path = self.log_path(source)
        try:
            return read_log_file(path)
        except DedupeError:
            raise
        except (OSError, ValueError) as exc:  # an unreadable file
            raise DedupeError(f"cannot read the log {quote(source)}: {clip(str(exc))}") from None

    def log_source(self, source: str) -> LogSource:
        """A log named by a caller, as learning reads it: a .csv/.tsv/.parquet file by the engine (all of it, in
        the cluster on Spark), a .txt log here (its first MAX_LOG_URLS URLs)."""
        path = self.log_path(source)
        if path.suffix.lower() in ENGINE_FILES:
            return path
        return self.read_log(source)[0]

    def log_path(self, source: str) -> Path:
        """The file a caller's log name resolves to: inside log_dir, or DedupeError."""
        root = self.settings.log_dir.resolve()
        try:
            path = (root / source).resolve()
            if not path.is_relative_to(root):
                raise DedupeError(f"source {quote(source)} is outside the log directory")
            if not path.is_file():
                available = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
                hint = f"; available: {clip(', '.join(available[:20]), 300)}" if available else f"; {root} is empty"
                raise DedupeError(f"no log named {quote(source)}{hint}")
            return path
        except DedupeError:
            raise
        except (OSError, ValueError) as exc:  # a name too long, a NUL byte, an unreadable file
            raise DedupeError(f"cannot read the log {quote(source)}: {clip(str(exc))}") from None

    def fingerprinter(
        self, kind: FingerprintKind | Literal["table"], fingerprints: dict[str, str] | None
    ) -> tuple[Fingerprinter, Callable[[], Awaitable[None]] | None]:
        if kind == "table":
            if not fingerprints:
                raise DedupeError("fingerprint='table' needs a log with a `fingerprint` column")
            return TableFingerprinter(fingerprints), None
        # Every connection (each URL and each redirect hop) is checked where it is made, against the
        # address it is made to: see tools/dedupe/netguard.py.
        fetcher = HttpFetcher(
            self.settings.fetch_rate, self.settings.fetch_timeout, allow_private=self.settings.fetch_private
        )

        async def fetch(url: str) -> Page | None:
            try:
                return await fetcher(url)
            except AddressRefused as exc:
                raise DedupeError(str(exc)) from None

        return PageFingerprinter(fetch, kind), fetcher.aclose

    async def learn(
        self,
        domain: str,
        urls: LogSource,
        fingerprinter: Fingerprinter,
        settings: LearnSettings,
        *,
        source: str,
        created_by: str | None,
        override_gate: bool = False,
        progress: Callable[[int, int], Awaitable[None] | None] | None = None,
        log_progress: Callable[[int, int], None] | None = None,
    ) -> LearnOutcome:
        """Sample the log on the engine (`log_progress(URLs prepared, URLs)` from a worker thread, where the engine
        can tell), learn the domain's map from the samples (`progress(patterns done, patterns)`), publish it."""
        try:
            host = normalize_host(domain.strip().lower())
        except URLError as exc:
            raise DedupeError(f"domain {quote(domain)}: {exc.message}") from None
        normalizer = Normalizer((), self.rules, self.settings.max_url_length)
        try:
            sampled = await asyncio.to_thread(
                sample, urls, normalizer, domain=host, top_patterns=settings.top_patterns,
                per_param=settings.max_samples, seed=settings.seed, engine=self.settings.engine, progress=log_progress,
            )  # fmt: skip
        except EngineUnavailable as exc:
            raise DedupeError(f"the dedupe engine (BASTION_DEDUPE_ENGINE) is not available: {exc}") from None
        except LogError as exc:
            where = ""
            if isinstance(urls, LogTable):
                unset = "" if self.settings.engine else " (unset: an empty in-memory DuckDB)"
                where = f"; a table is read from the engine BASTION_DEDUPE_ENGINE names{unset}"
            raise DedupeError(f"{exc}{where}") from None
        except EngineError as exc:
            raise DedupeError(f"the engine failed to group and sample the log: {exc}") from None
        if sampled.log_urls == 0:
            seen = ", ".join(f"{h} ({n})" for h, n in sorted(sampled.hosts.items(), key=lambda kv: -kv[1])[:5])
            raise DedupeError(f"the log has no URLs for {host}" + (f"; it has {seen}" if seen else ""))
        candidate = await learn_domain(
            host, sampled.patterns, fingerprinter, settings, log_urls=sampled.log_urls, source=source, progress=progress
        )
        previous = self.store.active(host)
        stored = self.store.publish(
            candidate, max_flip_share=self.settings.max_flip_share, override_gate=override_gate, created_by=created_by
        )
        assert stored.gate is not None
        diff = diff_maps(previous, stored).text if previous is not None else None
        status: Literal["active", "rejected"] = "active" if stored.status == "active" else "rejected"
        summary = (
            f"{host} v{stored.version} {status}: {len(stored.patterns)} patterns learned from "
            f"{sampled.log_urls} log URLs with {stored.renders} renders; {stored.gate.summary()}"
        )
        return LearnOutcome(
            domain=host,
            version=stored.version,
            status=status,
            gate=stored.gate,
            patterns=len(stored.patterns),
            renders=stored.renders,
            log_urls=sampled.log_urls,
            rejected_urls=sampled.rejected,
            diff=diff,
            summary=summary,
        )

    def diff(self, domain: str, v1: int, v2: int) -> MapDiff:
        return diff_maps(self.store.get(domain, v1), self.store.get(domain, v2))

    def map(self, domain: str, version: int | None = None) -> DomainMap:
        if version is None:
            active = self.store.active(domain)
            if active is None:
                raise DedupeError(f"{clip(domain)} has no active map")
            return active
        return self.store.get(domain, version)


def read_log_file(path: Path) -> tuple[list[str], dict[str, str] | None]:
    """URLs (and fingerprints, when the file has a `fingerprint` column) from a log file."""
    if path.suffix in (".txt", ".log", ".urls"):
        with path.open(encoding="utf-8", errors="replace") as f:
            urls = [line.strip() for line in f if line.strip() and not line.startswith("#")]
        return urls[:MAX_LOG_URLS], None
    reader = {".csv": "read_csv", ".tsv": "read_csv", ".parquet": "read_parquet"}.get(path.suffix)
    if reader is None:
        raise DedupeError(f"{path.name}: use .txt (one URL per line), .csv/.tsv or .parquet")
    con = duckdb.connect()
    try:
        columns = [c[0] for c in con.execute(f"DESCRIBE SELECT * FROM {reader}(?)", [str(path)]).fetchall()]
        if "url" not in columns:
            raise DedupeError(f"{path.name} has no `url` column (columns: {clip(', '.join(columns))})")
        select = "url, CAST(fingerprint AS VARCHAR)" if "fingerprint" in columns else "url, NULL"
        rows = con.execute(
            f"SELECT {select} FROM {reader}(?) WHERE url IS NOT NULL LIMIT {MAX_LOG_URLS}", [str(path)]
        ).fetchall()
    except duckdb.Error as exc:
        raise DedupeError(f"cannot read {path.name}: {clip(str(exc), 300)}") from None
    finally:
        con.close()
    urls = [str(u) for u, _ in rows]
    fingerprints = {str(u): str(f) for u, f in rows if f is not None} or None
    return urls, fingerprints
