"""Dedupe learning on a generated URL log growing to 10,000,000 URLs, on DuckDB and on Spark (local[2]) side by side.

The log is the site simulator's: HOSTS sites, half of the URLs from the site learned, the rest from the others
(a crawl's log: every URL is prepared and counted, one domain is learned), written once as a Parquet file per size
(each a prefix of the next). Each (size, engine) case runs in its own process, which reads the file through the
engine, groups and samples it (the cost that grows with the log), then learns the map from the samples (pages
rendered by the simulator: a cost that does not grow with the log) and reports its wall times, peak RSS and a
digest of the map: the maps must be identical on both engines. Spark is one Spark Connect server (local[2],
bound to 127.0.0.1, tools/engines/connect_server.py) shared by the Spark cases; its JVM and Python workers are
not in the client's peak RSS. A case past the timeout (or killed for memory) is reported, and larger sizes on that
engine are skipped.

    BASTION_BENCH_DEDUPE_LEARN_SIZES    URLs per log, comma-separated (default 100000,1000000,10000000)
    BASTION_BENCH_DEDUPE_LEARN_ENGINES  duckdb,spark (default both)
    BASTION_BENCH_DEDUPE_LEARN_TIMEOUT  seconds per case (default 3600)
    BASTION_BENCH_SPARK_MEMORY          the Spark driver's memory (default 4g)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bench.common import ROOT, console, peak_rss_mb, render, save
from tools.progress import bar

SIZES = [int(s) for s in os.environ.get("BASTION_BENCH_DEDUPE_LEARN_SIZES", "100000,1000000,10000000").split(",")]
ENGINES = [e.strip() for e in os.environ.get("BASTION_BENCH_DEDUPE_LEARN_ENGINES", "duckdb,spark").split(",")]
TIMEOUT_S = float(os.environ.get("BASTION_BENCH_DEDUPE_LEARN_TIMEOUT", "3600"))
SPARK_MEMORY = os.environ.get("BASTION_BENCH_SPARK_MEMORY", "4g")
HOSTS, WORLD_SEED, CHUNK = 20, 11, 100_000
TOP_PATTERNS, SAMPLES = 20, 10


def generate(directory: Path, sizes: list[int], progress: Progress) -> dict[int, Path]:
    """One Parquet log per size, each a prefix of the largest: half the URLs from site 0, the rest from the others."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tools.dedupe.simulator import World

    world = World.generate(HOSTS, WORLD_SEED)
    wanted = sorted(set(sizes))
    paths = {size: directory / f"urls-{size}.parquet" for size in wanted}
    schema = pa.schema([("url", pa.string())])
    writers = {size: pq.ParquetWriter(paths[size], schema) for size in wanted}
    task = progress.add_task("generating the URL log", total=wanted[-1])
    written = 0
    try:
        for chunk in range((wanted[-1] + CHUNK - 1) // CHUNK):
            count = min(CHUNK, wanted[-1] - written)
            urls = world.sites[0].urls(count // 2, chunk)
            others = world.sites[1:]
            for i, site in enumerate(others):
                share = (count - count // 2) // len(others) + (1 if i < (count - count // 2) % len(others) else 0)
                urls += site.urls(share, chunk)
            random.Random(chunk).shuffle(urls)
            for size, writer in writers.items():
                if written < size:
                    writer.write_table(pa.table({"url": urls[: size - written]}, schema=schema))
            written += count
            progress.update(task, completed=written)
    finally:
        for writer in writers.values():
            writer.close()
    progress.remove_task(task)
    return paths


def case() -> None:
    """One case, in its own process: argv log path, engine URL ('' for DuckDB); prints one JSON line."""
    from tools.dedupe.fingerprint import Fingerprint, page_fingerprint
    from tools.dedupe.learning import learn_domain
    from tools.dedupe.model import LearnSettings
    from tools.dedupe.normalizer import Normalizer
    from tools.dedupe.sampling import sample
    from tools.dedupe.simulator import World

    path, engine = Path(sys.argv[1]), sys.argv[2] or None
    world = World.generate(HOSTS, WORLD_SEED)
    domain = world.sites[0].host
    settings = LearnSettings(top_patterns=TOP_PATTERNS, max_samples=SAMPLES, seed=0)
    began = time.perf_counter()
    sampled = sample(path, Normalizer(), domain=domain, top_patterns=TOP_PATTERNS, per_param=SAMPLES, seed=0,
                     engine=engine)  # fmt: skip
    sampled_s = time.perf_counter() - began

    async def fingerprint(url: str) -> Fingerprint | None:
        return page_fingerprint(world.render(url))

    learned = asyncio.run(learn_domain(domain, sampled.patterns, fingerprint, settings, log_urls=sampled.log_urls))
    total_s = time.perf_counter() - began
    digest = hashlib.sha256(learned.model_dump_json(exclude={"created_at"}).encode()).hexdigest()[:12]
    peak_mb = peak_rss_mb()
    log_urls = sum(sampled.hosts.values()) + sum(sampled.rejected.values())
    print(json.dumps({"sample_s": sampled_s, "total_s": total_s, "peak_mb": peak_mb, "log_urls": log_urls,
                      "domain_urls": sampled.log_urls, "patterns": len(learned.patterns), "renders": learned.renders,
                      "map": digest}))  # fmt: skip


def _run(path: Path, engine: str | None) -> dict[str, Any]:
    command = [sys.executable, "-c", "from bench.dedupe_learning_bench import case; case()", str(path), engine or ""]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=ROOT, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"failed": f"out of time (> {TIMEOUT_S:g} s)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        why = "killed (out of memory?)" if done.returncode in (-9, 137) else f"status {done.returncode}"
        return {"failed": f"{why}: {done.stderr.strip().splitlines()[-1:] or ''}"[:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    from tools.engines import EngineUnavailable

    results: dict[str, dict[int, dict[str, Any]]] = {engine: {} for engine in ENGINES}
    skipped: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bastion-dedupe-learning-bench-") as tmp,
        bar(console) as progress,
    ):
        paths = generate(Path(tmp), SIZES, progress)
        task = progress.add_task("learning (size × engine)", total=len(SIZES) * len(ENGINES))
        for engine in ENGINES:
            try:
                with _engine(engine, Path(tmp)) as url:
                    for size in sorted(paths):
                        progress.update(task, description=f"learning from {size:,} URLs on {engine}")
                        if engine in skipped:
                            results[engine][size] = {"failed": skipped[engine]}
                        else:
                            results[engine][size] = _run(paths[size], url)
                            if "failed" in results[engine][size]:
                                skipped[engine] = f"skipped: {size:,} URLs failed"
                        progress.advance(task)
            except EngineUnavailable as exc:
                console.print(f"[yellow]{engine} skipped: {str(exc)[:300]}[/]")
                for size in paths:
                    results[engine][size] = {"failed": f"unavailable: {str(exc)[:120]}"}
                progress.advance(task, len(paths))
    _report(results)


def _engine(engine: str, scratch: Path) -> contextlib.AbstractContextManager[str | None]:
    """The engine URL a case passes: none for DuckDB (in the case's process), a local Connect server for Spark."""
    from tools.engines.connect_server import connect_server

    if engine == "duckdb":
        return contextlib.nullcontext(None)
    if engine == "spark":
        confs = {"spark.sql.shuffle.partitions": "4"}  # two local cores: a few shuffle partitions, not 200
        return connect_server(scratch / "spark", cores=2, confs=confs, driver_memory=SPARK_MEMORY)
    raise SystemExit(f"BASTION_BENCH_DEDUPE_LEARN_ENGINES: duckdb or spark, not {engine!r}")


def _report(results: dict[str, dict[int, dict[str, Any]]]) -> None:
    rows: list[list[Any]] = []
    reference = results.get("duckdb", {})
    for engine, by_size in results.items():
        previous: tuple[int, float] | None = None
        for size, r in sorted(by_size.items()):
            if "failed" in r:
                rows.append([engine, f"{size:,}", "-", "-", "-", "-", "-", r["failed"]])  # the reason, in place
                continue
            growth = "-"
            if previous is not None:
                growth = f"×{r['sample_s'] / previous[1]:.1f} for ×{size / previous[0]:g} URLs"
            previous = (size, float(r["sample_s"]))
            same = reference.get(size, {}).get("map")
            agree = "yes" if same == r["map"] else ("-" if same is None else "NO")
            rate = f"{size / r['sample_s']:,.0f}"
            rows.append([engine, f"{size:,}", float(r["sample_s"]), rate, growth, float(r["total_s"]),
                         float(r["peak_mb"]), agree])  # fmt: skip
    render(
        "Dedupe learning: grouping and sampling a URL log on each engine, then learning one domain's map",
        ["backend", "URLs", "sample s", "URLs/s", "growth", "total s", "client MB", "same map"],
        rows,
        note=f"{HOSTS} hosts (half the URLs from the one learned), K={TOP_PATTERNS}, S={SAMPLES}; Spark: local[2] "
        f"over Spark Connect, driver {SPARK_MEMORY} (its memory is not in the client's peak)",
    )
    payload = {engine: {str(size): r for size, r in by_size.items()} for engine, by_size in results.items()}
    path = save("dedupe_learning", {
        "sizes": SIZES, "hosts": HOSTS, "seeds": {"world": WORLD_SEED, "sample": 0, "shuffle": "chunk index"},
        "data_version": f"tools.dedupe.simulator World.generate({HOSTS}, {WORLD_SEED}), chunks of {CHUNK:,}",
        "results": payload,
    })  # fmt: skip
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
