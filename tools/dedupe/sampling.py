"""The scale path: grouping and sampling as SQL, run in DuckDB here and on Trino or Spark at scale.

Step 0 (a map over the log, a UDF on Spark) prepares each URL with the runtime normalizer minus the
learned layer and writes two relations:

    prepared(host, url, pattern, candidates)        -- one row per log URL
    prepared_params(host, pattern, url, param, value)  -- one row per untested parameter

Steps 1–3 are the SQL below (DuckDB dialect; `statements(dialect=...)` transpiles them with sqlglot).
Sampling is pseudo-random but reproducible: rows are ordered by md5(key || seed).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlglot

from tools.dedupe.normalizer import Normalizer, Prepared
from tools.dedupe.syntax import URLError

PATTERNS = """
CREATE OR REPLACE TABLE patterns AS
SELECT host, pattern, COUNT(*) AS urls, COUNT(DISTINCT url) AS distinct_urls, MAX(candidates) AS candidates
FROM prepared
GROUP BY host, pattern
"""

TOP_PATTERNS = """
CREATE OR REPLACE TABLE top_patterns AS
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
               ORDER BY CASE WHEN frequency_rank = 1 THEN 0 ELSE 1 END, MD5(value || '{seed}')
           ) AS pick
    FROM (
        SELECT host, pattern, param, value, url, n,
               ROW_NUMBER() OVER (
                   PARTITION BY host, pattern, param ORDER BY n DESC, MD5(value || '{seed}')
               ) AS frequency_rank
        FROM (
            SELECT p.host, p.pattern, p.param, p.value, COUNT(*) AS n, ARG_MIN(p.url, MD5(p.url || '{seed}')) AS url
            FROM prepared_params AS p
            JOIN top_patterns AS t ON p.host = t.host AND p.pattern = t.pattern
            GROUP BY p.host, p.pattern, p.param, p.value
        ) AS by_value
    ) AS ranked
) AS picked
WHERE pick <= {per_param}
ORDER BY host, pattern, param, pick
"""


def statements(dialect: str = "duckdb", top_patterns: int = 50, per_param: int = 20, seed: int = 0) -> list[str]:
    """Steps 1–3 as SQL for `dialect` (duckdb, trino, spark, ...)."""
    values = {"top_patterns": int(top_patterns), "per_param": int(per_param), "seed": int(seed)}
    sql = [PATTERNS, TOP_PATTERNS.format(**values), PARAM_SAMPLES.format(**values)]
    if dialect == "duckdb":
        return [s.strip() for s in sql]
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


def _pattern_key(pattern: tuple[str, ...]) -> str:
    return "&".join(pattern)


def sample(
    urls: Iterable[str],
    normalizer: Normalizer,
    *,
    domain: str | None = None,
    top_patterns: int = 50,
    per_param: int = 20,
    seed: int = 0,
    workdir: Path | None = None,
) -> Sampled:
    """Prepare a URL log, then group and sample it in DuckDB."""
    rejected: dict[str, int] = {}
    hosts: dict[str, int] = {}
    log_urls = 0
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        urls_path, params_path = Path(tmp) / "prepared.tsv", Path(tmp) / "params.tsv"
        with urls_path.open("w", newline="") as uf, params_path.open("w", newline="") as pf:
            url_rows, param_rows = csv.writer(uf, delimiter="\t"), csv.writer(pf, delimiter="\t")
            url_rows.writerow(["host", "url", "pattern", "candidates"])
            param_rows.writerow(["host", "pattern", "url", "param", "value"])
            for prep in _prepare_all(urls, normalizer, rejected):
                hosts[prep.host] = hosts.get(prep.host, 0) + 1
                if domain is not None and prep.host != domain:
                    continue
                log_urls += 1
                url = prep.url()
                key = _pattern_key(prep.pattern)
                url_rows.writerow([prep.host, url, key, len(prep.candidates)])
                for name, value in prep.candidates:
                    param_rows.writerow([prep.host, key, url, name, value or ""])
        con = duckdb.connect()
        try:
            read = "read_csv('{}', delim='\t', header=true, quote='', escape='', all_varchar=true)"
            con.execute(
                "CREATE TABLE prepared AS SELECT host, url, pattern, CAST(candidates AS INTEGER) AS candidates "
                f"FROM {read.format(urls_path)}"
            )
            con.execute(f"CREATE TABLE prepared_params AS SELECT DISTINCT * FROM {read.format(params_path)}")
            step_patterns, step_top, step_param_samples = statements("duckdb", top_patterns, per_param, seed)
            con.execute(step_patterns)
            con.execute(step_top)
            top = con.execute(
                "SELECT host, pattern, urls FROM top_patterns ORDER BY host, urls DESC, pattern"
            ).fetchall()
            groups: dict[tuple[str, str], PatternSample] = {}
            for host, pattern, count in top:
                names = tuple(pattern.split("&")) if pattern else ()
                groups[(host, pattern)] = PatternSample(host, names, int(count), {}, {})
            for host, pattern, param, value, url, n in con.execute(step_param_samples).fetchall():
                group = groups[(host, pattern)]
                group.by_param.setdefault(param, []).append(normalizer.prepare(url))
                group.value_counts.setdefault(param, {})[value] = int(n)
        finally:
            con.close()
    return Sampled(list(groups.values()), log_urls, rejected, hosts)


def _prepare_all(urls: Iterable[str], normalizer: Normalizer, rejected: dict[str, int]) -> Iterator[Prepared]:
    for url in urls:
        try:
            yield normalizer.prepare(url)
        except URLError as exc:
            rejected[exc.code] = rejected.get(exc.code, 0) + 1
