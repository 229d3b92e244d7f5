"""The knowledge index: demo warehouse, catalog, mining, intents, Chroma sync, retrieval."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from bastion.live import free_port
from embeddings.bm25 import BM25, tokenize
from embeddings.connectors import SourceError, read_schema
from embeddings.demo import warehouse
from embeddings.embedder import ChromaEmbeddingFunction, OpenAIEmbedder
from embeddings.evaluation import demo_questions, evaluate_demo
from embeddings.index import Snapshot, build_index, mine_history
from embeddings.intent import LLMDescriber, describe
from embeddings.metadata import apply_metadata, load_metadata
from embeddings.mining import mine
from embeddings.querylog import read_query_log
from embeddings.retrieval import RetrievalError, Retriever, TableFilters
from embeddings.settings import DEMO_DIR, LLMSettings
from embeddings.store import VectorStore, client_for
from governance.catalog import Catalog, Column, Table
from tests.knowledge_fixtures import Demo, Knowledge, demo_settings, index_settings
from tests.llm_server import scripted_llm

# -- the demo warehouse ---------------------------------------------------------------------------


def test_demo_warehouse_has_what_makes_retrieval_hard(demo: Demo) -> None:
    counts = demo.row_counts
    assert len(counts) >= 30
    assert len({name.split(".")[0] for name in counts}) >= 4
    assert max(counts.values()) >= 3_000_000
    con = duckdb.connect(str(demo.warehouse), read_only=True)
    try:
        platforms = {r[0] for r in con.execute("SELECT DISTINCT platform FROM ads.ad_delivery_daily").fetchall()}
        assert platforms == {"WEB", "IOS", "ANDROID"}  # upper case: a model guessing 'web' finds nothing
        assert con.execute("SELECT count(*) FROM ads.ad_delivery_daily WHERE platform = 'web'").fetchone() == (0,)
        columns = {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns "
                                            "WHERE table_name = 'ad_delivery_legacy'").fetchall()}  # fmt: skip
        assert {"adv_id", "cost_usd"} <= columns  # synonyms the glossary maps
        dt = con.execute("SELECT min(dt), max(dt) FROM ads.ad_delivery_daily").fetchone()
        assert dt is not None and str(dt[1]) == str(warehouse.LAST_DT)
    finally:
        con.close()
    log = [json.loads(line) for line in demo.query_log.read_text().splitlines()]
    assert len(log) >= 300
    assert any(not r["success"] for r in log) and any(r["success"] and r["rows_returned"] == 0 for r in log)
    assert any("ad_delivery_legacy" in r["sql"] for r in log)  # old queries on deprecated tables


def test_demo_data_is_deterministic() -> None:
    def checksum() -> Any:
        con = duckdb.connect()
        for macro in warehouse.MACROS:
            con.execute(macro)
        sql = dict(warehouse.TABLES)["ads.campaigns"]
        query = (
            "SELECT sum(campaign_id * advertiser_id), sum(daily_budget_usd), "
            f"string_agg(objective, '' ORDER BY campaign_id) FROM ({sql})"
        )
        result = con.execute(query).fetchone()
        con.close()
        return result

    assert checksum() == checksum()
    from embeddings.demo.history import generate

    assert [r.sql for r in generate(50)] == [r.sql for r in generate(50)]


# -- catalog, metadata, query log -------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalog(demo: Demo) -> Catalog:
    tables = read_schema(str(demo.warehouse))
    catalog = Catalog(tables={t.name: t for t in tables})
    metadata, problems = load_metadata(DEMO_DIR / "metadata.yaml")
    assert problems == []
    assert apply_metadata(catalog, metadata, "metadata.yaml") == []
    return catalog


def test_catalog_merges_schema_profile_and_governance(catalog: Catalog) -> None:
    delivery = catalog.tables["ads.ad_delivery_daily"]
    assert delivery.tier == 1 and delivery.owner == "ads-data" and delivery.partition_column == "dt"
    assert delivery.row_count == 3_000_000
    assert delivery.column("platform").values == ["ANDROID", "IOS", "WEB"]  # type: ignore[union-attr]
    legacy = catalog.tables["ads.ad_delivery_legacy"]
    assert legacy.deprecated and legacy.successor == "ads.ad_delivery_daily"
    assert legacy.column("adv_id").glossary_term == "advertiser_id"  # type: ignore[union-attr]
    email = catalog.tables["users.users"].column("email")
    assert email is not None and email.pii == "email" and email.classification.value == "restricted"
    assert catalog.tables["ads.ads_targeting_keywords"].description is None  # undocumented, on purpose
    assert catalog.freshness_days(catalog.tables["content.pin_engagement_v0"]) == 154


def test_malformed_metadata_is_reported_with_line_numbers_and_the_rest_applies(
    tmp_path: Path, catalog: Catalog
) -> None:
    path = tmp_path / "meta.yaml"
    path.write_text(
        "tables:\n"
        "  ads.campaigns:\n"
        "    tier: 7\n"
        "  ads.ads:\n"
        "    owner: someone-new\n"
        "  ads.nope:\n"
        "    tier: 1\n"
        "glossary:\n"
        "  thing: {synonyms: [x]}\n"
    )
    metadata, problems = load_metadata(path)
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(3, "tables.ads.campaigns"), (9, "glossary.thing")]
    assert "less than or equal to 3" in problems[0].message
    copy = catalog.model_copy(deep=True)
    unknown = apply_metadata(copy, metadata, str(path))
    assert copy.tables["ads.ads"].owner == "someone-new"
    assert [p.message for p in unknown] == ["tables.ads.nope: no such table in the schema source"]
    path.write_text("tables: [unclosed\n")
    _, problems = load_metadata(path)
    assert problems[0].line == 2 and "not valid YAML" in problems[0].message


def test_a_columns_additivity_comes_from_the_metadata_and_a_bad_one_is_named(tmp_path: Path, catalog: Catalog) -> None:
    window = catalog.tables["conv.conversion_events"].column("attribution_window_days")
    dau = catalog.tables["users.daily_active_users"].column("dau")
    assert window is not None and window.additivity == "non_additive"
    assert dau is not None and dau.additivity == "semi_additive"
    spend = catalog.tables["ads.ad_delivery_daily"].column("spend_usd")
    assert spend is not None and spend.additivity is None  # unset: the table's partitioning decides
    path = tmp_path / "meta.yaml"
    path.write_text("tables:\n  ads.campaigns:\n    columns:\n      daily_budget_usd: {additivity: sometimes}\n")
    _, problems = load_metadata(path)
    assert len(problems) == 1 and problems[0].line == 3
    assert "columns.daily_budget_usd.additivity" in problems[0].message and "non_additive" in problems[0].message


def test_bad_query_log_rows_are_reported_and_good_rows_kept(tmp_path: Path) -> None:
    good = {"query_id": 1, "author": "ann", "executed_at": "2026-10-01T10:00:00", "sql": "SELECT 1"}
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join([
        json.dumps(good),
        "{not json",
        json.dumps({**good, "sql": "   "}),
        json.dumps({**good, "executed_at": "yesterday"}),
        json.dumps({**good, "query_id": 5, "sql": "SELEC broken FROM"}),
    ]))  # fmt: skip
    records, problems = read_query_log(path)
    assert [r.query_id for r in records] == ["1", "5"]
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [(2, "not JSON"), (3, "sql"), (4, "executed_at")]
    csv_path = tmp_path / "log.csv"
    csv_path.write_text("query_id,author,sql\n1,ann,SELECT 1\n")
    _, problems = read_query_log(csv_path)
    assert problems[0].message == "missing columns: executed_at"


def test_unreachable_sources_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        read_schema(str(tmp_path / "missing.duckdb"))
    with pytest.raises(SourceError, match=r"cannot read the schema of postgresql://bob:\*\*\*@127.0.0.1:1/x"):
        read_schema("postgresql://bob:secret@127.0.0.1:1/x")


@pytest.mark.postgres
def test_sqlalchemy_connector_reads_postgres(postgres_database: str) -> None:
    import sqlalchemy

    engine = sqlalchemy.create_engine(postgres_database)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("CREATE SCHEMA IF NOT EXISTS shop"))
        conn.execute(sqlalchemy.text("DROP TABLE IF EXISTS shop.orders"))
        conn.execute(sqlalchemy.text("CREATE TABLE shop.orders (order_id int, channel text)"))
        conn.execute(sqlalchemy.text("INSERT INTO shop.orders VALUES (1, 'WEB'), (2, 'STORE')"))
    engine.dispose()
    tables = {t.name: t for t in read_schema(postgres_database)}
    orders = tables["shop.orders"]
    assert [c.name for c in orders.columns] == ["order_id", "channel"]
    assert orders.column("channel").values == ["STORE", "WEB"]  # type: ignore[union-attr]


def test_sqlite_connector(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "x.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id INTEGER, kind TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(1, "A"), (2, "B")])
    con.commit()
    con.close()
    (table,) = read_schema(str(path))
    assert table.name == "main.t" and table.row_count == 2 and table.column("kind").values == ["A", "B"]  # type: ignore[union-attr]


# -- mining and intent ------------------------------------------------------------------------------


def test_mining_reads_tables_joins_filters_metrics_and_grain(catalog: Catalog) -> None:
    mined = mine(
        "SELECT date_trunc('week', d.dt) AS week, a.industry, sum(d.spend_usd) AS spend_usd "
        "FROM ads.ad_delivery_daily d "
        "JOIN ads.advertisers a ON a.advertiser_id = d.advertiser_id WHERE d.dt >= DATE '2026-10-01' AND "
        "d.platform = 'WEB' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10",
        "duckdb",
        catalog,
    )
    b = mined.breakdown
    assert b.tables == ["ads.ad_delivery_daily", "ads.advertisers"]
    assert b.joins == [("ads.ad_delivery_daily.advertiser_id", "ads.advertisers.advertiser_id")]
    assert b.time_grain == "week" and b.dimensions == ["industry"] and b.metrics == ["sum(d.spend_usd)"]
    assert "platform = 'WEB'" in b.filters and "dt in a date range" in b.filters
    assert b.order == "top N by 3"
    other_dates = mine(mined.shape.replace("$s", "'2026-01-01'"), "duckdb", catalog)
    assert other_dates.parsed
    same = mine(
        "select date_trunc('week', d.dt) as week, a.industry, sum(d.spend_usd) as spend_usd from "
        "ads.ad_delivery_daily d join ads.advertisers a on a.advertiser_id = d.advertiser_id where "
        "d.dt >= date '2025-01-01' and d.platform = 'IOS' group by 1, 2 order by 3 desc limit 50;",
        "duckdb",
        catalog,
    )
    assert same.shape == mined.shape  # other dates, ids, values and keyword case: the same intent
    broken = mine("SELECT platform sum(clicks) FROM ads.ad_delivery_daily", "duckdb", catalog)
    assert not broken.parsed and "Unexpected token" in (broken.error or "")


def test_deterministic_intent_is_specific_and_literal_free(catalog: Catalog) -> None:
    sql = (
        "SELECT date_trunc('week', dt) AS week, advertiser_id, sum(spend_usd) AS spend_usd FROM ads.ad_delivery_daily "
        "WHERE dt BETWEEN DATE '2026-10-01' AND DATE '2026-10-28' AND advertiser_id = 1234 GROUP BY 1, 2"
    )
    intent = describe(mine(sql, "duckdb", catalog), catalog)
    text = intent.document()
    assert "total spend by advertiser per week" in intent.questions[0]
    assert "for one advertiser" in intent.questions[0] and "over a date range" in intent.questions[0]
    assert "2026" not in text and "1234" not in text
    assert any("week over week" in q for q in intent.questions)
    ctr = describe(mine("SELECT platform, sum(clicks) * 1.0 / nullif(sum(impressions), 0) AS ctr FROM "
                        "ads.ad_delivery_daily GROUP BY platform", "duckdb", catalog), catalog)  # fmt: skip
    assert ctr.summary.startswith("Click-through rate (CTR) by platform")


def test_llm_describer_uses_the_endpoint_and_falls_back(catalog: Catalog) -> None:
    sql = "SELECT platform, sum(spend_usd) AS spend FROM ads.ad_delivery_daily GROUP BY platform"
    mined = mine(sql, "duckdb", catalog)
    with scripted_llm() as (llm, base_url):
        answer = json.dumps({"summary": "Ad spend per client platform.", "questions": ["How much do we spend on iOS?",
                             "Which platform costs the most?"], "breakdown": {"metrics": ["spend"]}})  # fmt: skip
        llm.script(answer, "no json at all", json.dumps({"summary": "Spend on 2026-10-01", "questions": ["x"]}))
        describer = LLMDescriber(LLMSettings(base_url=base_url, model="scripted", api_key="sk-test"))
        first = describer(sql, mined, catalog)
        assert first.describer == "llm:scripted" and first.questions[0] == "How much do we spend on iOS?"
        assert "ads.ad_delivery_daily" in llm.requests[0]["messages"][0]["content"]
        assert describer(sql, mined, catalog).describer == "deterministic"  # not JSON
        assert describer(sql, mined, catalog).describer == "deterministic"  # leaked a literal date
        assert describer.failures == 2


def test_mined_history_yields_usage_join_keys_and_filters(demo: Demo, catalog: Catalog) -> None:
    records, problems = read_query_log(demo.query_log)
    assert problems == []
    copy = catalog.model_copy(deep=True)
    intents = mine_history(records, copy, "duckdb")
    delivery = copy.tables["ads.ad_delivery_daily"]
    assert delivery.usage.queries > 50 and delivery.usage.distinct_authors > 5
    assert 0.9 < (delivery.usage.success_rate or 0) < 1.0
    assert any(k.right == "ads.advertisers.advertiser_id" for k in delivery.join_keys)
    assert any(f.column == "ads.ad_delivery_daily.dt" for f in delivery.common_filters)
    flagged = [r for r in intents if not r.parsed]
    assert flagged and all(r.parse_error for r in flagged)
    weekly = next(r for r in intents if "per week" in r.intent.summary and r.tables == ["ads.ad_delivery_daily"])
    assert weekly.runs > 5 and len(weekly.authors) > 2


# -- the index: sync, incremental, safe ---------------------------------------------------------------


def test_index_build_is_incremental_and_idempotent(knowledge: Knowledge, demo: Demo, tmp_path: Path) -> None:
    summary = knowledge.summary
    assert summary.tables == 35 and summary.queries == 420 and summary.intents > 40
    assert summary.describer.startswith("deterministic") and summary.notes
    assert all(v["embedded"] > 0 for v in summary.synced.values())
    again = build_index(knowledge.settings, knowledge.embedder, llm=LLMSettings(base_url=None, model=None))
    assert all(v["embedded"] == 0 and v["unchanged"] > 0 for v in again.synced.values())
    # One description changes: exactly that table's document is re-embedded.
    meta = (
        (DEMO_DIR / "metadata.yaml")
        .read_text()
        .replace(
            "Ad groups inside campaigns, with targeting type and bidding strategy.",
            "Ad groups inside campaigns, with targeting type, bidding strategy and max bid.",
        )
    )
    changed_meta = tmp_path / "metadata.yaml"
    changed_meta.write_text(meta)
    settings = knowledge.settings.model_copy(update={"catalog_metadata": changed_meta})
    third = build_index(settings, knowledge.embedder, llm=LLMSettings(base_url=None, model=None))
    assert third.synced["schema"] == {"embedded": 1, "unchanged": 34, "removed": 0}


def test_a_failed_build_leaves_the_previous_index_serving(knowledge: Knowledge, demo: Demo, tmp_path: Path) -> None:
    settings = demo_settings(demo, tmp_path)
    build_index(settings, knowledge.embedder, llm=LLMSettings(base_url=None, model=None))
    before = Snapshot.read(Snapshot.directory(settings)).summary.built_at

    class Exploding:
        name, dimension = knowledge.embedder.name, 384
        calls = 0

        def embed(self, texts: list[str]) -> Any:
            Exploding.calls += 1
            if Exploding.calls > 1:
                raise RuntimeError("killed mid-sync")
            return knowledge.embedder.embed(texts)

    changed = tmp_path / "meta.yaml"
    # A new description (schema collection, embedded first) and a new owner (governance, second).
    changed.write_text(
        (DEMO_DIR / "metadata.yaml")
        .read_text()
        .replace("Ad groups inside", "AdGroups inside")
        .replace("owner: ads-data", "owner: ads-platform")
    )
    broken = settings.model_copy(update={"catalog_metadata": changed})
    store = VectorStore(client_for(None, settings.chroma_dir()), Exploding())  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="killed mid-sync"):
        build_index(broken, Exploding(), llm=LLMSettings(base_url=None, model=None), store=store)  # type: ignore[arg-type]
    assert Snapshot.read(Snapshot.directory(settings)).summary.built_at == before  # still the old snapshot
    store = VectorStore(client_for(None, settings.chroma_dir()), knowledge.embedder)
    retriever = Retriever(Snapshot.read(Snapshot.directory(settings)), store, knowledge.embedder)
    assert retriever.search_tables("daily active users by platform", k=1)[0].table == "users.daily_active_users"
    # The killed run re-embedded ad_groups' new text; the old snapshot does not trust that vector.
    groups = next(h for h in retriever.search_tables("ad group bid strategies", k=50) if h.table == "ads.ad_groups")
    assert not any(r.startswith("similar in meaning") for r in groups.reasons)
    resumed = build_index(broken, knowledge.embedder, llm=LLMSettings(base_url=None, model=None))
    assert resumed.synced["schema"]["embedded"] == 0  # the killed run had stored it: kept, not redone
    assert resumed.synced["governance"]["embedded"] > 0
    with pytest.raises(SourceError):
        build_index(settings.model_copy(update={"warehouse_url": str(tmp_path / "gone.duckdb")}), knowledge.embedder)
    not_yaml = tmp_path / "bad.yaml"
    not_yaml.write_text("tables: [unclosed\n")
    with pytest.raises(SourceError, match="not valid YAML"):
        build_index(settings.model_copy(update={"catalog_metadata": not_yaml}), knowledge.embedder)
    assert Snapshot.read(Snapshot.directory(settings)).summary.built_at > before


def test_chroma_reopened_without_our_function_never_downloads(knowledge: Knowledge) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(knowledge.settings.chroma_dir()))
    collection = client.get_collection("bastion-schema")  # no embedding function passed
    assert collection.configuration_json["embedding_function"]["name"] == "bastion"
    # Chroma rebuilds ours from the stored configuration (its default would download a model here).
    assert isinstance(collection.configuration["embedding_function"], ChromaEmbeddingFunction)
    found = collection.query(query_texts=["daily active users by platform"], n_results=1)
    assert found["ids"][0] == ["table:users.daily_active_users"]


@pytest.mark.slow
def test_index_and_search_through_a_chroma_server(demo: Demo, knowledge: Knowledge, tmp_path: Path) -> None:
    port = free_port()
    chroma = Path(sys.executable).parent / "chroma"
    server = subprocess.Popen([str(chroma), "run", "--path", str(tmp_path / "server"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.time() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "chroma server did not start"
            time.sleep(0.2)
        settings = demo_settings(demo, tmp_path, chroma_url=f"http://127.0.0.1:{port}")
        summary = build_index(settings, knowledge.embedder, llm=LLMSettings(base_url=None, model=None))
        assert summary.synced["schema"]["embedded"] == 35
        assert not (tmp_path / "chroma-local").exists() and not settings.chroma_dir().exists()
        store = VectorStore(client_for(settings.chroma_url, settings.chroma_dir()), knowledge.embedder)
        retriever = Retriever(Snapshot.read(Snapshot.directory(settings)), store, knowledge.embedder)
        assert retriever.search_tables("daily active users by platform", k=1)[0].table == "users.daily_active_users"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_openai_compatible_embeddings(demo: Demo, tmp_path: Path) -> None:
    with scripted_llm() as (llm, base_url):
        embedder = OpenAIEmbedder(LLMSettings(base_url=base_url, model=None, api_key="sk-x"), "text-embedding-test")
        vectors = embedder.embed(["weekly spend", "daily active users"])
        assert vectors.shape == (2, 64) and llm.embedding_requests[0]["model"] == "text-embedding-test"
        settings = index_settings(
            tmp_path, warehouse_url=str(demo.warehouse), catalog_metadata=DEMO_DIR / "metadata.yaml"
        )
        summary = build_index(settings, embedder, llm=LLMSettings(base_url=None, model=None))
        assert summary.embedder == "text-embedding-test" and summary.synced["schema"]["embedded"] == 35


# -- retrieval ----------------------------------------------------------------------------------------


def test_labelled_questions_meet_the_targets(knowledge: Knowledge) -> None:
    result = evaluate_demo(knowledge.retriever)
    assert result["questions"] >= 80
    assert result["recall"][5] >= 0.95, result["misses"]
    assert result["bad_first"] == []


def test_hits_carry_reasons_and_governance(knowledge: Knowledge) -> None:
    (first, *_rest) = knowledge.retriever.search_tables("weekly spend by advertiser", k=3)
    assert first.table in ("ads.ad_delivery_daily", "ads.advertiser_spend_daily")
    assert any(r.startswith("Tier 1") for r in first.reasons)
    assert any("past question" in r for r in first.reasons)
    assert any("words in its name" in r for r in first.reasons)
    # The legacy column names (glossary synonyms) find the deprecated table, ranked under its successor.
    legacy = knowledge.retriever.search_tables("adv_id imps clks cost_usd", k=10)
    names = [h.table for h in legacy]
    assert names[0] == "ads.ad_delivery_daily" and "ads.ad_delivery_legacy" in names
    # Asked for by name it comes first, still flagged with the table to use instead.
    (named, *_) = knowledge.retriever.search_tables("adv_id imps clks cost_usd legacy", k=3)
    assert named.table == "ads.ad_delivery_legacy" and named.deprecated
    assert named.successor == "ads.ad_delivery_daily" and "deprecated: use ads.ad_delivery_daily" in named.reasons


def test_filters(knowledge: Knowledge) -> None:
    retriever = knowledge.retriever
    tier1 = retriever.search_tables("ad delivery spend", k=10, filters=TableFilters(tiers=[1]))
    assert tier1 and all(h.tier == 1 for h in tier1)
    ads = retriever.search_tables("users", k=10, filters=TableFilters(domains=["ads"]))
    assert ads and all(h.domain == "ads" for h in ads)
    clean = retriever.search_tables(
        "user email", k=10, filters=TableFilters(exclude_pii=True, include_deprecated=False)
    )
    assert all(h.table not in ("users.users", "users.user_attributes_legacy") for h in clean)


def test_search_queries_ranks_verified_history_and_flags_deprecated(knowledge: Knowledge) -> None:
    hits = knowledge.retriever.search_queries("weekly spend per advertiser", k=3)
    assert hits[0].success_rate > 0.9 and "ads.ad_delivery_daily" in hits[0].tables
    assert "2026" in hits[0].sql  # the real SQL is shown; only the intent text is literal-free
    legacy = knowledge.retriever.search_queries("weekly cost by adv_id", k=10)
    flagged = [h for h in legacy if h.warnings]
    warnings = [w for h in flagged for w in h.warnings]
    assert "reads deprecated ads.ad_delivery_legacy: rewrite on ads.ad_delivery_daily" in warnings
    assert "reads ads.stg_ad_delivery, a copy: rewrite on ads.ad_delivery_daily" in warnings
    deprecated = next(h for h in legacy if "ads.ad_delivery_legacy" in h.tables)
    current = next(h for h in legacy if h.tables == ["ads.ad_delivery_daily"])
    assert current.rank < deprecated.rank  # the same analysis on the successor ranks first


@pytest.mark.parametrize(("question", "message"), [("", "empty"), ("   ", "empty"), ("x" * 3000, "at most 2000")])
def test_bad_questions(knowledge: Knowledge, question: str, message: str) -> None:
    with pytest.raises(RetrievalError, match=message):
        knowledge.retriever.search_tables(question)
    with pytest.raises(RetrievalError, match=message):
        knowledge.retriever.search_queries(question)


def test_bm25_tokenizer_splits_identifiers() -> None:
    assert tokenize("ads.ad_delivery_daily spend_usd") == ["ads", "ad_delivery_daily", "ad", "delivery", "day",
                                                           "spend_usd", "spend", "usd"]  # fmt: skip
    bm25 = BM25(["advertiser spend per day", "pins and boards"])
    scores = bm25.scores("Spend by advertiser")
    assert scores[0] > 0 and scores[1] == 0


def test_retriever_on_a_tiny_catalog_without_history(tmp_path: Path, knowledge: Knowledge) -> None:
    from embeddings.index import IndexSummary, documents

    catalog = Catalog(tables={
        "s.orders": Table(name="s.orders", description="Customer orders", columns=[Column(name="order_id")]),
        "s.refunds": Table(name="s.refunds", description="Refunded payments", columns=[Column(name="refund_id")]),
    })  # fmt: skip
    store = VectorStore(client_for(None, tmp_path), knowledge.embedder, namespace="tiny")
    for name, docs in documents(catalog, []).items():
        store.sync(name, docs)
    retriever = Retriever(Snapshot(catalog, [], IndexSummary.model_construct()), store, knowledge.embedder)
    assert retriever.search_tables("money we gave back", k=1)[0].table == "s.refunds"  # meaning, no shared word
    assert retriever.search_queries("anything") == []


def test_demo_questions_file_is_well_formed() -> None:
    questions = demo_questions()
    assert len({q.id for q in questions}) == len(questions) >= 80
    assert sum(1 for q in questions if q.sql) >= 60
