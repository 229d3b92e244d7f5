"""The vector store: three Chroma collections, synced incrementally by content hash.

`PersistentClient` under DATA_DIR/chroma by default; `HttpClient` when BASTION_CHROMA_URL is set.
A document whose hash is unchanged is never re-embedded; upserts are keyed by id, so an interrupted
sync is resumed by the next one, and readers only trust hits whose hash matches the snapshot they
loaded (see `index`), so a half-synced collection never serves a wrong answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import chromadb
import numpy as np

from embeddings.embedder import ChromaEmbeddingFunction, Embedder

COLLECTIONS = ("schema", "intent", "governance")
BATCH = 1024  # large enough for the model to sort by length within it


@dataclass
class Doc:
    id: str
    text: str
    hash: str
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass
class SyncStats:
    embedded: int = 0
    unchanged: int = 0
    removed: int = 0


@dataclass
class Hit:
    id: str
    similarity: float
    metadata: dict[str, Any]


def client_for(chroma_url: str | None, path: Path) -> Any:
    if chroma_url:
        parts = urlsplit(chroma_url)
        return chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1", port=parts.port or 8000, ssl=parts.scheme == "https"
        )
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path))


class VectorStore:
    def __init__(self, client: Any, embedder: Embedder, namespace: str = "bastion") -> None:
        self.client = client
        self.embedder = embedder
        function = ChromaEmbeddingFunction(embedder)
        self.collections = {
            name: client.get_or_create_collection(
                f"{namespace}-{name}", embedding_function=function, configuration={"hnsw": {"space": "cosine"}}
            )
            for name in COLLECTIONS
        }
        self._counts: dict[str, tuple[float, int]] = {}

    def count(self, name: str) -> int:
        """The collection's size, re-read at most every 30 s (a count costs as much as a query)."""
        cached = self._counts.get(name)
        if cached is None or time.monotonic() - cached[0] > 30:
            cached = (time.monotonic(), self.collections[name].count())
            self._counts[name] = cached
        return cached[1]

    def forget_counts(self) -> None:
        """Re-read the collections' sizes on the next query (another process has synced them)."""
        self._counts.clear()

    def hashes(self, name: str) -> dict[str, str]:
        collection = self.collections[name]
        out: dict[str, str] = {}
        total = collection.count()
        for offset in range(0, total, 5000):
            page = collection.get(include=["metadatas"], limit=5000, offset=offset)
            for doc_id, metadata in zip(page["ids"], page["metadatas"] or [], strict=False):
                out[doc_id] = str((metadata or {}).get("hash", ""))
        return out

    def sync(self, name: str, docs: Sequence[Doc], progress: Callable[[int], None] | None = None) -> SyncStats:
        collection = self.collections[name]
        existing = self.hashes(name)
        wanted = {d.id for d in docs}
        changed = [d for d in docs if existing.get(d.id) != d.hash]
        stats = SyncStats(unchanged=len(docs) - len(changed))
        if progress is not None:
            progress(stats.unchanged)  # done already; and the stage shows while the model loads for the first batch
        for start in range(0, len(changed), BATCH):
            batch = changed[start : start + BATCH]
            # Templated documents repeat (the same question asked of many tables): embed each text once.
            unique = list(dict.fromkeys(d.text for d in batch))
            embedded = dict(zip(unique, self.embedder.embed(unique), strict=True))
            vectors = np.stack([embedded[d.text] for d in batch])
            collection.upsert(
                ids=[d.id for d in batch],
                embeddings=vectors,
                documents=[d.text for d in batch],
                metadatas=[{**d.metadata, "hash": d.hash} for d in batch],
            )
            stats.embedded += len(batch)
            if progress is not None:
                progress(len(batch))
        stale = [doc_id for doc_id in existing if doc_id not in wanted]
        for start in range(0, len(stale), 5000):
            collection.delete(ids=stale[start : start + 5000])
        stats.removed = len(stale)
        self._counts.pop(name, None)
        return stats

    def query(self, name: str, vector: np.ndarray[Any, Any], k: int, where: dict[str, Any] | None = None) -> list[Hit]:
        collection = self.collections[name]
        count = self.count(name)
        if count == 0 or k <= 0:
            return []
        result = collection.query(
            query_embeddings=[vector.tolist()], n_results=min(k, count), where=where, include=["metadatas", "distances"]
        )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[]])[0]
        metadatas = (result.get("metadatas") or [[]])[0]
        return [Hit(i, 1.0 - float(d), dict(m or {})) for i, d, m in zip(ids, distances, metadatas, strict=False)]
