"""Dedupe learning on Spark (Connect, local[2]): the same map as on DuckDB, and the normalizer as an Arrow UDF.

The log is the site simulator's (three sites, some URLs refused by the syntax layer), as a Parquet file, as a
table of Spark's catalog and as URLs in memory. Pages are rendered by the simulator (no network).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tools.dedupe.batches import normalize_relation
from tools.dedupe.fingerprint import Fingerprint, page_fingerprint
from tools.dedupe.learning import learn_domain
from tools.dedupe.model import DomainMap, LearnSettings
from tools.dedupe.normalizer import Normalizer
from tools.dedupe.sampling import LogSource, LogTable, Sampled, sample
from tools.dedupe.service import DedupeError, DedupeService, DedupeSettings
from tools.dedupe.simulator import World
from tools.dedupe.syntax import URLError
from tools.engines import connect

REFUSED = ["not a url", "ftp://files.example/a?x=1", "http://", "https://bad host.example/?q=1", "http://[::1"]


@pytest.fixture(scope="module")
def world() -> World:
    return World.generate(3, 7)


@pytest.fixture(scope="module")
def log(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The log as URLs and as a Parquet file: 3,000 URLs of the learned site, 1,500 of two others, refused ones."""
    urls = world.sites[0].urls(3000, 1) + world.sites[1].urls(1000, 1) + world.sites[2].urls(500, 1)
    urls += REFUSED * 3
    random.Random(0).shuffle(urls)
    root = tmp_path_factory.mktemp("dedupe-spark")
    path = root / "urls.parquet"
    pq.write_table(pa.table({"url": urls, "n": list(range(len(urls)))}), path)
    return {"urls": urls, "path": path, "root": root, "domain": world.sites[0].host}


def _fingerprinter(world: World) -> Any:
    async def fingerprint(url: str) -> Fingerprint | None:
        return page_fingerprint(world.render(url))

    return fingerprint


def _learn(world: World, urls: LogSource, domain: str, seed: int, engine: str | None) -> tuple[Sampled, DomainMap]:
    settings = LearnSettings(max_samples=6, top_patterns=12, seed=seed)
    sampled = sample(urls, Normalizer(), domain=domain, top_patterns=12, per_param=6, seed=seed, engine=engine)
    learned = asyncio.run(
        learn_domain(domain, sampled.patterns, _fingerprinter(world), settings, log_urls=sampled.log_urls)
    )
    return sampled, learned


def _samples(sampled: Sampled) -> list[Any]:
    return [(p.host, p.pattern, p.urls, {k: [u.url() for u in v] for k, v in p.by_param.items()}, p.value_counts)
            for p in sampled.patterns]  # fmt: skip


def _comparable(domain_map: DomainMap) -> dict[str, Any]:
    return domain_map.model_dump(mode="json", exclude={"created_at", "version", "status", "gate", "source"})


@pytest.fixture(scope="module")
def on_duckdb(world: World, log: dict[str, Any]) -> dict[int, tuple[Sampled, DomainMap]]:
    return {seed: _learn(world, log["path"], log["domain"], seed, None) for seed in (0, 5)}


def test_learning_on_spark_gives_duckdbs_map_for_each_seed(
    world: World, log: dict[str, Any], on_duckdb: dict[int, tuple[Sampled, DomainMap]], spark_connect_url: str
) -> None:
    for seed, (duck_sampled, duck_map) in on_duckdb.items():
        spark_sampled, spark_map = _learn(world, log["path"], log["domain"], seed, spark_connect_url)
        assert _samples(spark_sampled) == _samples(duck_sampled), seed
        assert _comparable(spark_map) == _comparable(duck_map), seed
        assert spark_sampled.log_urls == duck_sampled.log_urls == 3000
        assert spark_sampled.hosts == duck_sampled.hosts and len(spark_sampled.hosts) == 3
        assert spark_sampled.rejected == duck_sampled.rejected and sum(spark_sampled.rejected.values()) == 15
    # Not vacuous: the maps say something, and the seed changes which URLs are sampled.
    duck_map = on_duckdb[0][1]
    verdicts = {ev.verdict for rule in duck_map.patterns for ev in rule.evidence.values()}
    assert len(duck_map.patterns) >= 5 and {"important", "neutral"} <= verdicts
    assert _samples(on_duckdb[0][0]) != _samples(on_duckdb[5][0])


def test_the_dedupe_engine_setting_learns_on_spark_from_a_file_or_a_catalog_table(
    world: World, log: dict[str, Any], on_duckdb: dict[int, tuple[Sampled, DomainMap]], spark_connect_url: str,
    spark_table: str,
) -> None:  # fmt: skip
    root: Path = log["root"]
    service = DedupeService(
        DedupeSettings(store=root / "maps.db", log_dir=root, engine=spark_connect_url)  # BASTION_DEDUPE_ENGINE
    )
    settings = LearnSettings(max_samples=6, top_patterns=12, seed=0)
    for urls in (service.log_source("urls.parquet"), LogTable(spark_table)):
        outcome = asyncio.run(
            service.learn(
                log["domain"], urls, _fingerprinter(world), settings, source="test", created_by=None, override_gate=True
            )
        )
        assert outcome.log_urls == 3000 and sum(outcome.rejected_urls.values()) == 15
        assert _comparable(service.map(log["domain"], outcome.version)) == _comparable(on_duckdb[0][1])
    # Files outside the log directory, and tables that are not there, are refused with the reason.
    with pytest.raises(DedupeError, match="outside the log directory"):
        service.log_source("../urls.parquet")
    with pytest.raises(DedupeError, match=r"TABLE_OR_VIEW_NOT_FOUND.*no_such_log"):
        asyncio.run(service.learn(log["domain"], LogTable("no_such_log"), _fingerprinter(world), settings,
                                  source="test", created_by=None))  # fmt: skip


@pytest.fixture(scope="module")
def spark_table(log: dict[str, Any], spark_connect_url: str) -> Iterator[str]:
    """The log as a table of Spark's catalog (in the server's scratch warehouse)."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_connect_url).create()
    session.read.parquet(str(log["path"])).write.mode("overwrite").saveAsTable("dedupe_url_log")
    try:
        yield "dedupe_url_log"
    finally:
        session.sql("DROP TABLE IF EXISTS dedupe_url_log")
        session.stop()


def test_an_unreachable_engine_is_a_clear_error(world: World, log: dict[str, Any]) -> None:
    service = DedupeService(
        DedupeSettings(store=log["root"] / "other.db", log_dir=log["root"], engine="sc://127.0.0.1:9")
    )
    with pytest.raises(DedupeError, match=r"BASTION_DEDUPE_ENGINE\) is not available: cannot reach Spark Connect"):
        asyncio.run(service.learn(log["domain"], ["https://a.example/?x=1"], _fingerprinter(world), LearnSettings(),
                                  source="test", created_by=None))  # fmt: skip


def _python(normalizer: Normalizer, url: str | None) -> tuple[str | None, str | None]:
    if url is None:
        return None, None
    try:
        return normalizer.normalize(url), None
    except URLError as exc:
        return None, exc.code


def test_the_normalizer_as_an_arrow_udf_on_spark_equals_the_python_one(
    world: World, log: dict[str, Any], on_duckdb: dict[int, tuple[Sampled, DomainMap]], spark_connect_url: str
) -> None:
    # Fresh URLs of all three sites (a learned map for one of them), refused ones and NULLs.
    urls: list[str | None] = [u for site in world.sites for u in site.urls(1200, 9)]
    urls += [*REFUSED, None, None]
    normalizer = Normalizer([on_duckdb[0][1]])
    expected = {i: _python(normalizer, u) for i, u in enumerate(urls)}
    data = pa.table({"id": list(range(len(urls))), "url": pa.array(urls, pa.string())})
    for engine_url in (spark_connect_url, None):
        engine = connect(engine_url)
        try:
            engine.register_arrow("log", data)
            normalize_relation(engine, "normalized_log", "log", normalizer)
            assert [c for c, _ in engine.columns("normalized_log")] == ["id", "url", "normalized", "normalize_error"]
            got = {
                int(i): (n, e) for i, n, e in engine.rows("SELECT id, normalized, normalize_error FROM normalized_log")
            }
        finally:
            engine.close()
        assert got == expected, engine_url
    # Not vacuous: the learned map reaches the workers (it strips what syntax and priors alone keep), URLs change,
    # and refusals come back as codes.
    plain = Normalizer()
    by_map = [
        i for i, u in enumerate(urls) if u is not None and expected[i][0] and expected[i][0] != _python(plain, u)[0]
    ]
    assert len(by_map) > 100
    assert sum(1 for i, u in enumerate(urls) if expected[i][0] not in (None, u)) > 1000
    assert {e for _, e in expected.values() if e} >= {"malformed", "unsupported_scheme"}
