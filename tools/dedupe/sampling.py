"""Grouping and sampling a URL log as SQL, on the engine BASTION_DEDUPE_ENGINE names (tools/engines): embedded
DuckDB by default, Spark (Connect or a master) for logs that live in a cluster.

Step 0, a map over the log (`PrepareBatches`: an Arrow UDF on Spark), prepares each URL with the runtime
normalizer minus the learned layer into one relation, split into two:

    prepared(host, url, pattern, candidates)           -- one row per log URL of the domain
    prepared_params(host, pattern, url, param, value)  -- one row per untested parameter, distinct

Steps 1–3 are the SQL below (DuckDB dialect; the engine transpiles it, and `statements(dialect=...)` prints it
for another engine). Sampling is pseudo-random but the same on every engine: nothing depends on an engine's
random numbers or on row order — values and URLs are ranked by md5(value || seed) / md5(url || seed), which
both engines compute alike (lowercase hex), ties broken by the value itself; no sort key is ever NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlglot

from tools.dedupe.batches import PREPARED_COLUMNS, PrepareBatches
from tools.dedupe.normalizer import Normalizer, Prepared
from tools.engines import Engine, EngineError
from tools.engines import connect as connect_engine

LOG_FILES = (".txt", ".log", ".urls")  # one URL per line, read here; .csv/.tsv/.parquet are read by the engine
ENGINE_FILES = (".csv", ".tsv", ".parquet")

PATTERNS = """
SELECT host, pattern, COUNT(*) AS urls, COUNT(DISTINCT url) AS distinct_urls, MAX(candidates) AS candidates
FROM prepared
GROUP BY host, pattern
"""

TOP_PATTERNS = """
SELECT host, pattern, urls, distinct_urls
FROM patterns
WHERE candidates > 0
QUALIFY ROW_NUMBER() OVER (PARTITION BY host ORDER BY urls DESC, pattern) <= {top_patterns}
"""

# Per parameter of a top pattern: up to S of its distinct values, one URL each — the most
# frequent value always (the likeliest default, e.g. page=1), the rest drawn at random.
PARAM_SAMPLES = """
SELECT host, pattern, param, value, url, n
FROM (
    SELECT host, pattern, param, value, url, n,
           ROW_NUMBER() OVER (
               PARTITION BY host, pattern, param
               ORDER BY CASE WHEN frequency_rank = 1 THEN 0 ELSE 1 END, MD5(value || '{seed}'), value
           ) AS pick
    FROM (
        SELECT host, pattern, param, value, url, n,
               ROW_NUMBER() OVER (
                   PARTITION BY host, pattern, param ORDER BY n DESC, MD5(value || '{seed}'), value
               ) AS frequency_rank
        FROM (
            SELECT p.host, p.pattern, p.param, p.value, COUNT(*) AS n,
                   ARG_MIN(p.url, MD5(p.url || '{seed}') || p.url) AS url
            FROM prepared_params AS p
            JOIN top_patterns AS t ON p.host = t.host AND p.pattern = t.pattern
            GROUP BY p.host, p.pattern, p.param, p.value
        ) AS by_value
    ) AS ranked
) AS picked
WHERE pick <= {per_param}
ORDER BY host, pattern, param, pick
"""


class LogError(ValueError):
    """The log cannot be read as a URL log: what is wrong with it, bounded."""


@dataclass(frozen=True)
class LogTable:
    """A URL log that is a table (or view) of the engine, with a `url` column."""

    name: str


LogSource = Iterable[str] | Path | LogTable


def _steps(top_patterns: int, per_param: int, seed: int) -> tuple[str, str, str]:
    values = {"top_patterns": int(top_patterns), "per_param": int(per_param), "seed": int(seed)}
    return PATTERNS.strip(), TOP_PATTERNS.format(**values).strip(), PARAM_SAMPLES.format(**values).strip()


def statements(dialect: str = "duckdb", top_patterns: int = 50, per_param: int = 20, seed: int = 0) -> list[str]:
    """Steps 1–3 as SQL for `dialect` (duckdb, trino, spark, ...)."""
    patterns, top, samples = _steps(top_patterns, per_param, seed)
    sql = [
        f"CREATE OR REPLACE TABLE patterns AS\n{patterns}",
        f"CREATE OR REPLACE TABLE top_patterns AS\n{top}",
        samples,
    ]
    if dialect == "duckdb":
        return sql
    return [sqlglot.transpile(s, read="duckdb", write=dialect, pretty=True)[0] for s in sql]


@dataclass(slots=True)
class PatternSample:
    host: str
    pattern: tuple[str, ...]
    urls: int  # log frequency
    by_param: dict[str, list[Prepared]]  # per parameter: URLs with different values of it
    value_counts: dict[str, dict[str, int]]  # per parameter: how many log URLs carry each sampled value

    def pool(self) -> list[Prepared]:
        """Every sampled URL once, round-robin over parameters so each sees its values early."""
        seen: set[str] = set()
        out: list[Prepared] = []
        lists = list(self.by_param.values())
        for i in range(max((len(v) for v in lists), default=0)):
            for samples in lists:
                if i < len(samples):
                    url = samples[i].url()
                    if url not in seen:
                        seen.add(url)
                        out.append(samples[i])
        return out


@dataclass(slots=True)
class Sampled:
    patterns: list[PatternSample]
    log_urls: int
    rejected: dict[str, int]  # error code → count
    hosts: dict[str, int]


def sample(
    urls: LogSource,
    normalizer: Normalizer,
    *,
    domain: str | None = None,
    top_patterns: int = 50,
    per_param: int = 20,
    seed: int = 0,
    engine: str | Engine | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Sampled:
    """Prepare a URL log, then group and sample it on `engine` (an engine URL, an open engine, or None: DuckDB).

    The log: URLs, a file (.txt one URL per line; .csv/.tsv/.parquet with a `url` column, read by the engine, which
    may read no other file) or a LogTable of the engine. `progress`: see sample_relation. LogError for a log that
    cannot be read as one; EngineError (EngineUnavailable) when the engine fails (cannot be reached).
    """
    if engine is None or isinstance(engine, str):
        opened = connect_engine(engine)
        try:
            opened.confine([str(urls)] if isinstance(urls, Path) and urls.suffix.lower() in ENGINE_FILES else [])
            return sample(urls, normalizer, domain=domain, top_patterns=top_patterns, per_param=per_param, seed=seed,
                          engine=opened, progress=progress)  # fmt: skip
        finally:
            opened.close()
    _register_log(engine, "dedupe_source", urls)
    return sample_relation(engine, "dedupe_source", normalizer, domain=domain, top_patterns=top_patterns,
                           per_param=per_param, seed=seed, progress=progress)  # fmt: skip


def sample_relation(
    engine: Engine,
    relation: str,
    normalizer: Normalizer,
    *,
    domain: str | None = None,
    top_patterns: int = 50,
    per_param: int = 20,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Sampled:
    """Steps 0–3 over `relation` (a `url` column) on `engine`; the samples prepared again here, for the learner.
    `progress(URLs prepared, URLs)` as step 0 goes, where the engine can tell (DuckDB; on Spark it is in the
    cluster)."""
    preparer = PrepareBatches(normalizer.rules, normalizer.max_length, domain)
    engine.map_batches("dedupe_prepared", f"(SELECT CAST(url AS VARCHAR) AS url FROM {relation})", preparer,
                       PREPARED_COLUMNS, progress)  # fmt: skip
    quoted = (domain or "").replace("'", "''")
    mine = "" if domain is None else f" AND host = '{quoted}'"
    # Views over the prepared log (kept once): each is read by one step.
    engine.register_query(
        "prepared",
        f"SELECT host, url, pattern, candidates FROM dedupe_prepared WHERE param IS NULL AND error IS NULL{mine}",
    )
    engine.register_query(
        "prepared_params",
        "SELECT DISTINCT host, pattern, url, param, value FROM dedupe_prepared WHERE param IS NOT NULL",
    )
    rejected: dict[str, int] = {}
    hosts: dict[str, int] = {}
    for error, host, count in engine.rows(
        "SELECT error, host, COUNT(*) FROM dedupe_prepared WHERE param IS NULL GROUP BY error, host"
    ):
        if error is not None:
            rejected[str(error)] = rejected.get(str(error), 0) + int(count)
        else:
            hosts[str(host)] = int(count)
    log_urls = sum(hosts.values()) if domain is None else hosts.get(domain, 0)

    step_patterns, step_top, step_param_samples = _steps(top_patterns, per_param, seed)
    engine.materialize("patterns", step_patterns)
    engine.materialize("top_patterns", step_top)
    groups: dict[tuple[str, str], PatternSample] = {}
    for host, pattern, count in engine.rows(
        "SELECT host, pattern, urls FROM top_patterns ORDER BY host, urls DESC, pattern"
    ):
        names = tuple(pattern.split("&")) if pattern else ()
        groups[(host, pattern)] = PatternSample(host, names, int(count), {}, {})
    for host, pattern, param, value, url, n in engine.rows(step_param_samples):
        group = groups[(host, pattern)]
        group.by_param.setdefault(param, []).append(normalizer.prepare(url))
        group.value_counts.setdefault(param, {})[value] = int(n)
    return Sampled(list(groups.values()), log_urls, rejected, hosts)


def _register_log(engine: Engine, name: str, urls: LogSource) -> None:
    """The log as the view `name` of `engine`, with a `url` column."""
    if isinstance(urls, LogTable):
        table = urls.name.strip()
        if not table or not all(part.replace("_", "").isalnum() for part in table.split(".")):
            raise LogError(f"{table[:120]!r} is not a table name")
        try:
            engine.register_query(name, f"SELECT * FROM {table}")
        except EngineError as exc:
            raise LogError(f"the table {table[:120]} cannot be read on this engine: {exc}") from None
    elif isinstance(urls, Path) and urls.suffix.lower() in ENGINE_FILES:
        if not urls.is_file():
            raise LogError(f"the log {urls.name[:120]} does not exist")
        engine.register_file(name, str(urls))
    else:
        import pyarrow as pa

        lines = read_lines(urls) if isinstance(urls, Path) else list(urls)
        engine.register_arrow(name, pa.table({"url": pa.array(lines, pa.string())}))
    columns = [c for c, _ in engine.columns(name)]
    if "url" not in columns:
        raise LogError(f"the log has no `url` column (columns: {', '.join(columns)[:300]})")


def read_lines(path: Path) -> list[str]:
    """A log of one URL per line (blank lines and # comments skipped)."""
    if path.suffix.lower() not in LOG_FILES:
        raise LogError(f"{path.name[:120]}: use {', '.join(LOG_FILES)} (one URL per line), .csv/.tsv or .parquet")
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except OSError as exc:
        raise LogError(f"cannot read {path.name[:120]}: {exc.strerror or exc}") from None


__all__ = ["LogError", "LogSource", "LogTable", "Sampled", "sample", "sample_relation", "statements"]
