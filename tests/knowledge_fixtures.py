"""Session fixtures for the knowledge index: the demo warehouse, its history, a built index."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from embeddings.demo import history, warehouse
from embeddings.embedder import MiniLMEmbedder
from embeddings.index import IndexSummary, Snapshot, build_index
from embeddings.retrieval import Retriever
from embeddings.settings import DEMO_DIR, IndexSettings, LLMSettings
from embeddings.store import VectorStore, client_for


@dataclass
class Demo:
    data_dir: Path
    warehouse: Path
    query_log: Path
    row_counts: dict[str, int]


@dataclass
class Knowledge:
    settings: IndexSettings
    summary: IndexSummary
    snapshot: Snapshot
    retriever: Retriever
    embedder: MiniLMEmbedder


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    data_dir = tmp_path_factory.mktemp("demo-data")
    target = data_dir / "demo" / "warehouse.duckdb"
    counts = warehouse.build(target)
    log = data_dir / "demo" / "query_log.jsonl"
    history.write(log, target)
    return Demo(data_dir, target, log, counts)


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def demo_settings(demo: Demo, data_dir: Path, **overrides: object) -> IndexSettings:
    """Index settings reading the session's demo warehouse, writing the index under `data_dir`."""
    return index_settings(
        data_dir, warehouse_url=str(demo.warehouse), catalog_metadata=DEMO_DIR / "metadata.yaml",
        query_log=demo.query_log, **overrides,
    )  # fmt: skip


def index_settings(data_dir: Path, **overrides: object) -> IndexSettings:
    return IndexSettings.model_validate(
        {
            "data_dir": data_dir,
            "warehouse_url": None,
            "catalog_metadata": None,
            "query_log": None,
            "chroma_path": None,
            "chroma_url": None,
            **overrides,
        }
    )


@pytest.fixture(scope="session")
def knowledge(demo: Demo, embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Knowledge]:
    data_dir = tmp_path_factory.mktemp("knowledge")
    settings = demo_settings(demo, data_dir)
    summary = build_index(settings, embedder, llm=LLMSettings(base_url=None, model=None))
    snapshot = Snapshot.read(Snapshot.directory(settings))
    store = VectorStore(client_for(None, settings.chroma_dir()), embedder)
    yield Knowledge(settings, summary, snapshot, Retriever(snapshot, store, embedder), embedder)


def demo_serve_env(demo: Demo, knowledge: Knowledge, database: Path, port: int) -> dict[str, str]:
    """The environment of a `bastion` process over the demo index: this process's without its BASTION_*
    settings, plus the demo warehouse, catalog, query log and index, a seeded registry's database and a port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update({
        "BASTION_DATA_DIR": str(knowledge.settings.data_dir),
        "BASTION_DATABASE_URL": f"sqlite:///{database}",
        "BASTION_SEED_FILE": str(Path(__file__).parent.parent / "seed/registry.yaml"),
        "BASTION_PORT": str(port),
        "BASTION_WAREHOUSE_URL": str(demo.warehouse),
        "BASTION_CATALOG_METADATA": str(DEMO_DIR / "metadata.yaml"),
        "BASTION_QUERY_LOG": str(demo.query_log),
    })  # fmt: skip
    return env
