"""Build the knowledge index over a synthetic 10,000-table warehouse and 100,000 logged queries.

The warehouse is generated (DuckDB, empty tables: the index reads schema, not data) from a domain
vocabulary so table and column names look like a real lake's; the query log repeats a smaller set
of analyses with varying dates and values, as real logs do. Two sizes run in the same process: a
small one (the baseline) and the full one, so the table shows what scale costs (ratios), not only
absolute times on this shared machine. Figures: wall time per stage, peak RSS, size on disk,
search latency p50/p99 (plus a histogram plot). Targets: build ≤ 15 min, search p50 ≤ 50 ms.
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.common import console, histogram, percentile, render, save
from embeddings.embedder import MiniLMEmbedder
from embeddings.index import Snapshot, build_index
from embeddings.retrieval import Retriever
from embeddings.settings import IndexSettings, LLMSettings
from embeddings.store import VectorStore, client_for

TABLES = int(os.environ.get("BASTION_BENCH_EMBEDDINGS_TABLES", "10000"))
QUERIES = int(os.environ.get("BASTION_BENCH_EMBEDDINGS_QUERIES", "100000"))
SEARCHES = 300

DOMAINS = ["ads", "billing", "content", "users", "shopping", "search", "ml", "growth", "trust", "messaging",
           "payments", "creators", "video", "notifications", "experiments", "partners"]  # fmt: skip
ENTITIES = ["advertiser", "campaign", "ad_group", "creative", "pin", "board", "user", "session", "order",
            "product", "merchant", "invoice", "payment", "query", "model", "feature", "experiment", "message",
            "creator", "video", "notification", "partner", "report", "device", "country", "keyword", "audience",
            "budget"]  # fmt: skip
GRAINS = ["daily", "hourly", "weekly", "events", "snapshot", "summary", "facts", "dim", "agg", "log"]
METRICS = ["impressions", "clicks", "spend_usd", "revenue_usd", "conversions", "saves", "views", "sessions",
           "orders", "refunds_usd", "latency_ms", "errors", "signups", "messages_sent", "watch_seconds"]  # fmt: skip
DIMENSIONS = ["platform", "country", "surface", "objective", "category", "status", "channel", "device_type",
              "language", "tier", "region", "source"]  # fmt: skip


def _table_names(n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    names: dict[tuple[str, str], str] = {}
    while len(names) < n:
        domain = rng.choice(DOMAINS)
        name = f"{rng.choice(ENTITIES)}_{rng.choice(ENTITIES)}_{rng.choice(GRAINS)}"
        if len(names) % 7 == 0:
            name = "stg_" + name  # staging copies, as in a real lake
        names.setdefault((domain, name), rng.choice(ENTITIES))
    return sorted((domain, name, key) for (domain, name), key in names.items())


def generate(directory: Path, tables: int, queries: int) -> IndexSettings:
    """A DuckDB file of `tables` empty tables and a JSONL log of `queries` queries over them."""
    rng = random.Random(tables)
    directory.mkdir(parents=True, exist_ok=True)
    warehouse = directory / "warehouse.duckdb"
    specs = _table_names(tables, rng)
    schema: list[tuple[str, str, list[str], list[str]]] = []
    con = duckdb.connect(str(warehouse))
    try:
        for domain in sorted({d for d, _, _ in specs}):
            con.execute(f"CREATE SCHEMA {domain}")
        statements = []
        for domain, name, key in specs:
            metrics = rng.sample(METRICS, rng.randint(2, 6))
            dimensions = rng.sample(DIMENSIONS, rng.randint(1, 4))
            columns = ["dt DATE", f"{key}_id BIGINT"] + [f"{d} VARCHAR" for d in dimensions]
            columns += [f"{m} DOUBLE" for m in metrics]
            statements.append(f"CREATE TABLE {domain}.{name} ({', '.join(columns)})")
            schema.append((f"{domain}.{name}", key, metrics, dimensions))
        con.execute(";\n".join(statements))
    finally:
        con.close()
    # The log repeats analyses: a Zipf choice of tables (s = 1.1: a few tables get most queries, as in
    # real warehouses), three variants per table, new dates and values each time.
    weights = [1 / (i + 1) ** 1.1 for i in range(len(schema))]
    chosen = rng.choices(range(len(schema)), weights=weights, k=queries)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log = directory / "query_log.jsonl"
    with log.open("w") as f:
        for n, index in enumerate(chosen):
            table, key, metrics, dimensions = schema[index]
            variant = rng.randrange(3)
            metric, dimension = metrics[variant % len(metrics)], dimensions[variant % len(dimensions)]
            day = start + timedelta(days=rng.randrange(300))
            window = (
                f"dt BETWEEN DATE '{day:%Y-%m-%d}' AND DATE '{day + timedelta(days=rng.choice([6, 13, 27])):%Y-%m-%d}'"
            )
            if variant == 0:
                sql = f"SELECT dt, {dimension}, sum({metric}) AS {metric} FROM {table} WHERE {window} GROUP BY 1, 2"
            elif variant == 1:
                sql = (f"SELECT {key}_id, sum({metric}) AS total FROM {table} WHERE {window} "
                       f"GROUP BY 1 ORDER BY total DESC LIMIT {rng.choice([10, 20, 50])}")  # fmt: skip
            else:
                value = rng.choice(["WEB", "IOS", "US", "DE"])
                sql = (f"SELECT date_trunc('week', dt) AS week, count(*) AS n FROM {table} "
                       f"WHERE {window} AND {dimension} = '{value}' GROUP BY 1")  # fmt: skip
            record = {"query_id": n, "sql": sql, "author": f"analyst{rng.randrange(200)}",
                      "executed_at": (day + timedelta(hours=rng.randrange(24))).isoformat(),
                      "runtime_ms": rng.randint(50, 90_000), "success": rng.random() > 0.04,
                      "rows_returned": rng.randint(0, 5000)}  # fmt: skip
            f.write(json.dumps(record) + "\n")
    return IndexSettings(data_dir=directory, warehouse_url=str(warehouse), query_log=log, catalog_metadata=None)


def _questions(rng: random.Random) -> list[str]:
    out = []
    for _ in range(SEARCHES):
        metric = rng.choice(METRICS).replace("_", " ")
        out.append(rng.choice([
            f"total {metric} by {rng.choice(DIMENSIONS).replace('_', ' ')} per day",
            f"top {rng.choice(ENTITIES).replace('_', ' ')}s by {metric} last month",
            f"weekly {rng.choice(ENTITIES).replace('_', ' ')} {metric} in {rng.choice(['US', 'DE', 'web'])}",
        ]))  # fmt: skip
    return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(label: str, tables: int, queries: int, embedder: MiniLMEmbedder, root: Path) -> dict[str, Any]:
    directory = root / label
    stages: dict[str, float] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:  # fmt: skip
        task = progress.add_task(f"{label}: generating {tables:,} tables, {queries:,} queries", total=None)
        began = time.perf_counter()
        settings = generate(directory, tables, queries)
        stages["generate"] = time.perf_counter() - began
        progress.remove_task(task)
        tasks: dict[str, Any] = {}
        marks: dict[str, float] = {}

        def advance(stage: str, n: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{label}: {stage}", total=total)
                marks[stage] = time.perf_counter()
            progress.update(tasks[stage], advance=n, total=total)
            stages[stage] = time.perf_counter() - marks[stage]

        began = time.perf_counter()
        summary = build_index(settings, embedder, llm=LLMSettings(base_url=None, model=None), progress=advance)
        build_seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store = VectorStore(client_for(None, settings.chroma_dir()), embedder)
    retriever = Retriever(Snapshot.read(Snapshot.directory(settings)), store, embedder)
    questions = _questions(random.Random(7))
    retriever.search_tables(questions[0])  # warm caches once
    table_ms, query_ms = [], []
    for question in questions:
        began = time.perf_counter()
        retriever.search_tables(question, k=10)
        table_ms.append((time.perf_counter() - began) * 1000)
        began = time.perf_counter()
        retriever.search_queries(question, k=5)
        query_ms.append((time.perf_counter() - began) * 1000)
    return {
        "label": label, "tables": summary.tables, "queries": summary.queries, "intents": summary.intents,
        "documents": sum(v["embedded"] + v["unchanged"] for v in summary.synced.values()),
        "build_s": build_seconds, "stages": stages, "peak_rss_mb": peak_mb,
        "disk_mb": (_size(settings.chroma_dir()) + _size(Snapshot.directory(settings))) / 1e6,
        "tables_ms": table_ms, "queries_ms": query_ms,
    }  # fmt: skip


def main() -> None:
    embedder = MiniLMEmbedder()
    embedder.embed(["warm up the model"])
    root = Path(tempfile.mkdtemp(prefix="bastion-embeddings-bench-"))
    try:
        small = run("small", max(100, TABLES // 30), max(1000, QUERIES // 30), embedder, root)
        large = run("large", TABLES, QUERIES, embedder, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for result in (small, large):
        rows.append([
            result["label"], f"{result['tables']:,}", f"{result['queries']:,}", f"{result['intents']:,}",
            f"{result['documents']:,}", f"{result['build_s']:.0f}", f"{result['peak_rss_mb']:,.0f}",
            f"{result['disk_mb']:.0f}", percentile(result["tables_ms"], 50), percentile(result["tables_ms"], 99),
            percentile(result["queries_ms"], 50), percentile(result["queries_ms"], 99),
        ])  # fmt: skip
    ratio = percentile(large["tables_ms"], 50) / percentile(small["tables_ms"], 50)
    stages = ", ".join(f"{k} {v:.0f}s" for k, v in large["stages"].items())
    render(
        "Knowledge index at scale (MiniLM on CPU, embedded Chroma, deterministic intents)",
        ["case", "tables", "queries", "intents", "docs", "build s", "peak RSS MB", "disk MB",
         "tables p50 ms", "tables p99 ms", "queries p50 ms", "queries p99 ms"],
        rows,
        note=f"large stages: {stages}\nsearch_tables p50 large/small = {ratio:.2f}×; "
        "targets: build ≤ 900 s, search p50 ≤ 50 ms; peak RSS is the process high-water mark (model included)",
    )  # fmt: skip
    plot = histogram("embeddings_search", {
        f"search_tables, {large['tables']:,} tables": large["tables_ms"],
        f"search_queries, {large['intents']:,} intents": large["queries_ms"],
    })  # fmt: skip
    path = save("embeddings", {"small": small, "large": large})
    console.print(f"wrote {path} and {plot}")


if __name__ == "__main__":
    main()
