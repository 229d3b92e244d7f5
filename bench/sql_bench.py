"""SQL guard latency on a 30-line query (CTEs, a window function, three joins) and the agent's own
overhead per question (everything but LLM time), on the demo warehouse's index.

Side by side in one run: the guard against sqlglot's parse alone and parse + qualify (the floor any
column-resolving validator pays), so the ratio says what our checks add. The agent runs in
retrieval-only mode over the labelled questions: retrieval, re-validation, EXPLAIN — no LLM time.
Targets: guard p50 ≤ 10 ms; agent overhead p50 ≤ 150 ms with the default embedding model.
"""

from __future__ import annotations

import time

import sqlglot
from rich.progress import Progress
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from bench.common import console, histogram, percentile, render, save
from embeddings.evaluation import demo_questions
from embeddings.settings import IndexSettings, LLMSettings
from governance.sqlguard import check

QUERY = """
WITH weekly AS (
    SELECT date_trunc('week', d.dt) AS week,
           d.advertiser_id,
           sum(d.spend_usd) AS spend_usd,
           sum(d.clicks) AS clicks,
           sum(d.impressions) AS impressions
    FROM ads.ad_delivery_daily d
    WHERE d.dt BETWEEN DATE '2026-08-01' AND DATE '2026-10-31'
    GROUP BY 1, 2
),
conversions AS (
    SELECT date_trunc('week', c.dt) AS week,
           c.advertiser_id,
           count(*) AS conversions,
           sum(c.value_usd) AS value_usd
    FROM conv.conversion_events c
    WHERE c.dt BETWEEN DATE '2026-08-01' AND DATE '2026-10-31'
    GROUP BY 1, 2
)
SELECT w.week,
       a.advertiser_name,
       a.industry,
       w.spend_usd,
       coalesce(v.value_usd, 0) / nullif(w.spend_usd, 0) AS roas,
       w.clicks * 1.0 / nullif(w.impressions, 0) AS ctr,
       rank() OVER (PARTITION BY w.week ORDER BY w.spend_usd DESC) AS spend_rank
FROM weekly w
JOIN ads.advertisers a ON a.advertiser_id = w.advertiser_id
LEFT JOIN conversions v
       ON v.week = w.week
      AND v.advertiser_id = w.advertiser_id
WHERE a.industry IS NOT NULL
ORDER BY w.week, spend_rank
LIMIT 500
"""
ROUNDS = 300


def main() -> None:
    from agents.text2sql import Text2SQLAgent
    from tools.sql.service import SqlService

    service = SqlService(index=IndexSettings())
    catalog = service.catalog
    assert len(QUERY.strip().splitlines()) >= 30
    result = check(QUERY, catalog)
    if not result.ok:
        raise SystemExit(f"the benchmark query does not validate: {result.errors}")
    mapping: dict[str, dict[str, dict[str, str]]] = {}
    for name in result.tables:
        table = catalog.tables[name]
        db, bare = name.split(".")
        mapping.setdefault(db, {})[bare] = {c.name: c.type or "TEXT" for c in table.columns}
    schema = MappingSchema(dict(mapping), dialect="duckdb")
    cases = {
        "sqlglot parse only": lambda: sqlglot.parse_one(QUERY, read="duckdb"),
        "sqlglot parse + qualify": lambda: qualify(sqlglot.parse_one(QUERY, read="duckdb"), schema=schema,
                                                    dialect="duckdb", validate_qualify_columns=True),
        "bastion guard (all rules)": lambda: check(QUERY, catalog),
    }  # fmt: skip
    samples: dict[str, list[float]] = {name: [] for name in cases}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("validating (interleaved)", total=ROUNDS * len(cases))
        for _ in range(ROUNDS):
            for name, fn in cases.items():
                began = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - began) * 1000)
                progress.advance(task)
        agent = Text2SQLAgent(service, LLMSettings(base_url=None, model=None))
        questions = [q.question for q in demo_questions()]
        agent.ask(questions[0])  # load the model and the index once
        overhead: list[float] = []
        task = progress.add_task("agent, retrieval-only", total=len(questions))
        for question in questions:
            began = time.perf_counter()
            answer = agent.ask(question)
            overhead.append((time.perf_counter() - began) * 1000 - answer.timings_ms.get("llm", 0.0))
            progress.advance(task)
    base = percentile(samples["sqlglot parse + qualify"], 50)
    rows = [[name, percentile(s, 50), percentile(s, 99), percentile(s, 50) / base] for name, s in samples.items()]
    rows.append(["agent overhead per question (no LLM time)", percentile(overhead, 50), percentile(overhead, 99), "—"])
    render(
        f"SQL guard on a {len(QUERY.strip().splitlines())}-line query (2 CTEs, a window, 3 joins) and agent overhead",
        ["case", "p50 ms", "p99 ms", "× parse+qualify"],
        rows,
        note="targets: guard p50 ≤ 10 ms; agent overhead p50 ≤ 150 ms (MiniLM on CPU)",
    )
    plot = histogram("sql_latency", {"bastion guard": samples["bastion guard (all rules)"], "agent": overhead})
    path = save("sql", {"guard_ms": samples, "agent_overhead_ms": overhead})
    console.print(f"wrote {path} and {plot}")


if __name__ == "__main__":
    main()
