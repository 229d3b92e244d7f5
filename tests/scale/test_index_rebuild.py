"""A serving process picks up a rebuild of the index made by another process (`bastion index` next to the
replicas), keeps its model loaded, and keeps answering from the previous build while the new one is swapped in
or if it cannot be read. In-process, on the embedded store; tests/scale/test_cluster.py does it with real
processes on a Chroma server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from embeddings.embedder import MiniLMEmbedder
from embeddings.index import Snapshot, build_index
from embeddings.settings import LLMSettings
from tests.knowledge_fixtures import Demo, demo_settings
from tools.sql.service import SqlError, SqlService, SqlSettings

NO_LLM = LLMSettings(base_url=None, model=None)
NEW_QUERY = "SELECT brand, avg(price_usd) AS avg_price FROM shopping.products GROUP BY brand ORDER BY avg_price DESC"


def test_a_rebuild_is_picked_up_and_the_previous_build_serves_meanwhile(
    demo: Demo, embedder: MiniLMEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "query_log.jsonl"
    shutil.copy(demo.query_log, log)
    settings = demo_settings(demo, tmp_path).model_copy(update={"query_log": log})
    monkeypatch.setattr("tools.sql.service.make_embedder", lambda settings: embedder)
    service = SqlService(SqlSettings(url=None), settings)
    with pytest.raises(SqlError, match="no index"):
        service.search_tables("daily active users")
    build_index(settings, embedder, llm=NO_LLM)
    first = service.retriever()
    assert service.search_tables("daily active users by platform", k=1)[0].table == "users.daily_active_users"
    assert service.retriever() is first  # unchanged build: nothing re-read

    with log.open("a") as f:
        for n in range(2):
            f.write(json.dumps({"query_id": f"new-{n}", "author": "nina", "executed_at": f"2026-04-0{n + 1}T10:00:00",
                                "success": True, "sql": NEW_QUERY}) + "\n")  # fmt: skip
    rebuilt = build_index(settings, embedder, llm=NO_LLM)
    assert 0 < rebuilt.synced["intent"]["embedded"] < 20  # incremental
    new = next(r for r in Snapshot.read(Snapshot.directory(settings)).intents if "price_usd" in r.example_sql)
    hits = service.search_queries(new.intent.questions[0], k=3)
    assert hits[0].hit.id == new.id
    second = service.retriever()
    assert second is not first and second.embedder is first.embedder and second.store is first.store

    # Mid-swap (`Snapshot.write` renames the old directory away, then the new one in): the loaded build serves.
    directory = Snapshot.directory(settings)
    directory.rename(directory.with_name("index.old"))
    assert service.search_queries(new.intent.questions[0], k=1)[0].hit.id == new.id
    directory.with_name("index.old").rename(directory)
    # A build that cannot be read (here: a damaged catalog) does not replace the one serving.
    (directory / "catalog.json").write_text("{not json")
    (directory / "summary.json").write_text((directory / "summary.json").read_text())  # a new stamp
    assert service.search_tables("daily active users by platform", k=1)[0].table == "users.daily_active_users"
    assert service.retriever() is second
