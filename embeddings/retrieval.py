"""Retrieval that ranks by meaning *and* governance, and says why.

Tables: BM25 over table documents + vector similarity (Chroma) + evidence from past questions (an
intent whose questions match votes for the tables it used, weighted by its success), fused; then
join-aware expansion (a table that joins a strong hit through a known key rises with it); then
governance: tier, freshness, ownership, documentation, usage; deprecated tables are demoted below
their successor, which is suggested. Every hit carries its reasons.

Past queries: vector similarity to their questions + BM25, re-ranked by success rate, usage and
recency; those that read deprecated tables are flagged with the successor.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from embeddings.bm25 import BM25, tokenize
from embeddings.documents import IntentRecord, content_hash, table_document
from embeddings.embedder import Embedder
from embeddings.index import Snapshot
from embeddings.store import VectorStore
from governance.catalog import Catalog, Table

MAX_QUESTION = 2000


class RetrievalError(ValueError):
    pass


class TableFilters(BaseModel):
    tiers: list[int] | None = Field(None, description="Only these tiers, e.g. [1]")
    domains: list[str] | None = None
    include_deprecated: bool = True
    exclude_pii: bool = False


class Weights(BaseModel):
    lexical: float = 0.45
    dense: float = 0.35
    intent: float = 0.25
    join: float = 0.25
    metric: float = 0.5
    tier: dict[int, float] = Field(default_factory=lambda: {1: 0.08, 2: 0.0, 3: -0.12})
    deprecated: float = -0.35
    stale: float = -0.06
    documented: float = 0.04
    owned: float = 0.02
    usage: float = 0.04


class TableHit(BaseModel):
    table: str
    rank: int
    score: float
    relevance: float = Field(description="Before governance signals")
    tier: int | None
    domain: str | None
    deprecated: bool
    successor: str | None = None
    description: str | None
    reasons: list[str]


class QueryHit(BaseModel):
    id: str
    rank: int
    score: float
    summary: str
    questions: list[str]
    sql: str
    tables: list[str]
    runs: int
    success_rate: float
    authors: int
    last_run: str
    reasons: list[str]
    warnings: list[str] = Field(default_factory=list)


def _normalise(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


class Retriever:
    def __init__(self, snapshot: Snapshot, store: VectorStore, embedder: Embedder, weights: Weights | None = None):
        self.catalog: Catalog = snapshot.catalog
        self.store = store
        self.embedder = embedder
        self.weights = weights or Weights()
        self.tables: list[Table] = list(self.catalog.tables.values())
        self.position = {t.name: i for i, t in enumerate(self.tables)}
        table_texts = [table_document(t, self.catalog) for t in self.tables]
        self.table_hashes = {
            f"table:{t.name}": content_hash(text) for t, text in zip(self.tables, table_texts, strict=True)
        }
        self.table_bm25 = BM25(table_texts)
        self.table_terms = [set(tokenize(text)) for text in table_texts]
        self._vectors: dict[str, np.ndarray[Any, Any]] = {}
        self.intents: list[IntentRecord] = [r for r in snapshot.intents if r.parsed]
        self.intent_by_id = {r.id: r for r in self.intents}
        self.intent_bm25 = BM25([r.document() for r in self.intents])
        self.neighbours: dict[str, dict[str, int]] = defaultdict(dict)
        for table in self.tables:
            for key in table.join_keys:
                other = key.right.rsplit(".", 1)[0]
                if other in self.position and other != table.name:
                    self.neighbours[table.name][other] = self.neighbours[table.name].get(other, 0) + max(key.queries, 1)
        self.latest = max((r.last_run for r in self.intents), default=None)
        self.metrics = list(self.catalog.metrics.values())
        self.metric_bm25 = BM25([f"{m.name} {m.definition}" for m in self.metrics])

    def _metrics(self, question: str) -> list[tuple[Any, float]]:
        """Metric definitions the question names ("return on ad spend", "CTR") and how strongly."""
        if not self.metrics:
            return []
        scores = self.metric_bm25.scores(question)
        top = float(scores.max())
        return [
            (m, float(s / top))
            for m, s in zip(self.metrics, scores, strict=True)
            if s > 0 and s / top >= 0.6 and s >= 2.0
        ]

    # -- helpers --------------------------------------------------------------------------------

    def _vector(self, question: str) -> np.ndarray[Any, Any]:
        # An agent asks for tables and past queries with the same question: embed it once.
        vector = self._vectors.get(question)
        if vector is None:
            vector = self.embedder.embed([question])[0]
            if len(self._vectors) >= 256:
                self._vectors.pop(next(iter(self._vectors)))
            self._vectors[question] = vector
        return vector

    def _check(self, question: str) -> str:
        question = question.strip()
        if not question:
            raise RetrievalError("the question is empty")
        if len(question) > MAX_QUESTION:
            raise RetrievalError(f"the question is {len(question)} characters; at most {MAX_QUESTION}")
        return question

    def _intent_scores(self, question: str, vector: np.ndarray[Any, Any], k: int) -> dict[str, tuple[float, str]]:
        """Intent id → (relevance 0..1, the past question that matched best)."""
        best: dict[str, tuple[float, str]] = {}
        if not self.intents:
            return best
        for hit in self.store.query("intent", vector, k * 4):
            intent_id = str(hit.metadata.get("intent", ""))
            record = self.intent_by_id.get(intent_id)
            if record is None:
                continue  # a vector from a newer or older sync than the snapshot
            n = int(hit.id.rsplit(":", 1)[1])
            texts = [record.intent.summary, *record.intent.questions]
            if n >= len(texts) or content_hash(texts[n]) != hit.metadata.get("hash"):
                continue
            if hit.similarity > best.get(intent_id, (-1.0, ""))[0]:
                best[intent_id] = (hit.similarity, texts[n])
        lexical = _normalise(self.intent_bm25.scores(question))
        fused: dict[str, tuple[float, str]] = {}
        for i in np.argsort(-lexical)[: k * 2]:
            if lexical[i] > 0:
                record = self.intents[int(i)]
                fused[record.id] = (0.3 * float(lexical[i]), best.get(record.id, (0.0, record.intent.questions[0]))[1])
        for intent_id, (similarity, text) in best.items():
            previous = fused.get(intent_id, (0.0, text))[0]
            fused[intent_id] = (previous + 0.7 * max(0.0, similarity), text)
        return fused

    # -- tables ---------------------------------------------------------------------------------

    def search_tables(self, question: str, k: int = 10, filters: TableFilters | None = None) -> list[TableHit]:
        question = self._check(question)
        if k < 1:
            raise RetrievalError("k must be at least 1")
        w = self.weights
        n = len(self.tables)
        vector = self._vector(question)
        lexical = _normalise(self.table_bm25.scores(question))
        dense = np.zeros(n, dtype=np.float32)
        for hit in self.store.query("schema", vector, min(n, 100)):
            i = self.position.get(hit.id.removeprefix("table:"))
            if i is not None and self.table_hashes.get(hit.id) == hit.metadata.get("hash"):
                dense[i] = max(0.0, hit.similarity)
        dense_norm = _normalise(dense)
        intent_vote = np.zeros(n, dtype=np.float32)
        matched: dict[int, list[tuple[float, IntentRecord | None, str]]] = defaultdict(list)
        for intent_id, (relevance, text) in self._intent_scores(question, vector, 10).items():
            record = self.intent_by_id[intent_id]
            # Absolute, not normalised: a weak best match must not count as strong evidence.
            weight = max(0.0, relevance * (0.5 + 0.5 * record.success_rate) - 0.3) / 0.5
            for table_name in record.tables:
                i = self.position.get(table_name)
                if i is not None:
                    intent_vote[i] = max(intent_vote[i], weight)
                    matched[i].append((weight, record, text))
        metric_vote = np.zeros(n, dtype=np.float32)
        for metric, strength in self._metrics(question):
            for table_name in metric.tables:
                i = self.position.get(table_name)
                if i is not None and strength > metric_vote[i]:
                    metric_vote[i] = strength
                    matched[i].append((strength, None, f"metric {metric.name}: {metric.definition}"))
        intent_vote = np.minimum(intent_vote, 1.0)
        relevance = w.lexical * lexical + w.dense * dense_norm + w.intent * intent_vote + w.metric * metric_vote

        # Join-aware expansion: a table that joins a strong hit rises with it (bridge tables).
        top = np.argsort(-relevance)[:3]
        joined = np.zeros(n, dtype=np.float32)
        joined_from: dict[int, str] = {}
        for i in top:
            anchor = self.tables[int(i)]
            for other, _count in self.neighbours.get(anchor.name, {}).items():
                j = self.position[other]
                # Only a table with some relevance of its own rises with its join partner.
                boost = float(relevance[i]) * float(lexical[j] + dense_norm[j]) / 2
                if boost > joined[j]:
                    joined[j], joined_from[j] = boost, anchor.name
        relevance = relevance + w.join * joined

        scored: list[tuple[float, int, list[str]]] = []
        # Governance adds at most `max_boost`: once a table's relevance plus that bound cannot reach the
        # current k-th score, no later (less relevant) table can either — stop there (10k tables: ~50×).
        max_boost = max(w.tier.values()) + w.documented + w.owned + w.usage
        kth: list[float] = []
        for i in np.argsort(-relevance, kind="stable"):
            table = self.tables[int(i)]
            if len(kth) >= k and float(relevance[i]) + max_boost < kth[0]:
                break
            if not self._passes(table, filters):
                continue
            score, reasons = self._governance(table, float(relevance[i]))
            scored.append((score, int(i), reasons))
            heapq.heappush(kth, score)
            if len(kth) > k:
                heapq.heappop(kth)
        scored.sort(key=lambda s: (-s[0], s[1]))
        hits = []
        question_terms = set(tokenize(question))
        for rank, (score, i, governance) in enumerate(scored[:k], 1):
            table = self.tables[i]
            reasons = self._relevance_reasons(question_terms, i, lexical, dense, matched, joined_from) + governance
            hits.append(
                TableHit(
                    table=table.name, rank=rank, score=round(score, 4), relevance=round(float(relevance[i]), 4),
                    tier=table.tier, domain=table.domain, deprecated=table.deprecated, successor=table.successor,
                    description=table.description, reasons=reasons,
                )
            )  # fmt: skip
        return hits

    def _passes(self, table: Table, filters: TableFilters | None) -> bool:
        if filters is None:
            return True
        if filters.tiers is not None and table.tier not in filters.tiers:
            return False
        if filters.domains is not None and table.domain not in filters.domains:
            return False
        if not filters.include_deprecated and table.deprecated:
            return False
        return not (filters.exclude_pii and table.pii_columns)

    def _governance(self, table: Table, relevance: float) -> tuple[float, list[str]]:
        w = self.weights
        score = relevance
        reasons: list[str] = []
        if relevance <= 0:
            return 0.0, reasons
        # Governance moves a table within its neighbourhood of relevance, never from nowhere.
        scale = min(1.0, relevance / 0.3)
        if table.tier is not None:
            score += scale * w.tier.get(table.tier, 0.0)
            reasons.append({1: "Tier 1 (cross-team production)", 2: "Tier 2 (team-owned)",
                            3: "Tier 3 (staging/temporary/legacy): demoted"}[table.tier])  # fmt: skip
        if table.deprecated:
            score += w.deprecated * scale
            reasons.append(f"deprecated: use {table.successor}" if table.successor else "deprecated")
        elif table.successor:
            # A staging or snapshot copy that names the table to use instead.
            score += w.deprecated * scale * 0.5
            reasons.append(f"a copy: use {table.successor}")
        fresh = self.catalog.freshness_days(table)
        if fresh is not None and fresh > 30:
            score += w.stale * scale
            reasons.append(f"stale: last updated {fresh} days ago")
        completeness = table.documentation_completeness
        score += w.documented * scale * completeness
        if completeness < 0.3:
            reasons.append("barely documented")
        if table.owner:
            score += w.owned * scale
        else:
            reasons.append("no owner")
        if table.usage.queries:
            score += w.usage * scale * min(1.0, math.log1p(table.usage.queries) / math.log1p(50))
            rate = f", {table.usage.success_rate:.0%} succeeded" if table.usage.success_rate is not None else ""
            reasons.append(
                f"used by {table.usage.queries} past queries from {table.usage.distinct_authors} people{rate}"
            )
        return score, reasons

    def _relevance_reasons(
        self,
        question_terms: set[str],
        i: int,
        lexical: np.ndarray[Any, Any],
        dense: np.ndarray[Any, Any],
        matched: dict[int, list[tuple[float, IntentRecord | None, str]]],
        joined_from: dict[int, str],
    ) -> list[str]:
        reasons = []
        if lexical[i] > 0:
            terms = question_terms & self.table_terms[i]
            shown = ", ".join(sorted(terms)[:6])
            reasons.append(f"words in its name, description or columns: {shown}")
        if dense[i] > 0:
            reasons.append(f"similar in meaning to the question ({dense[i]:.2f})")
        if matched.get(i):
            _, record, text = max(matched[i], key=lambda m: m[0])
            if record is None:
                reasons.append(f"defines the {text}")
            else:
                reasons.append(
                    f"past question “{text}” used it ({record.runs} runs, {record.success_rate:.0%} succeeded)"
                )
        if i in joined_from:
            reasons.append(f"joins {joined_from[i]} through a key used in past queries")
        return reasons

    # -- past queries ---------------------------------------------------------------------------

    def search_queries(self, question: str, k: int = 5) -> list[QueryHit]:
        question = self._check(question)
        if k < 1:
            raise RetrievalError("k must be at least 1")
        if not self.intents:
            return []
        vector = self._vector(question)
        scored = []
        for intent_id, (relevance, text) in self._intent_scores(question, vector, max(k, 10)).items():
            record = self.intent_by_id[intent_id]
            score = relevance * (0.6 + 0.4 * record.success_rate)
            score += 0.03 * min(1.0, math.log1p(record.runs) / math.log1p(30))
            reasons = [f"its question “{text}” matches", f"{record.runs} runs by {len(record.authors)} people, "
                       f"{record.success_rate:.0%} succeeded"]  # fmt: skip
            warnings = []
            if self.latest is not None:
                age = (self.latest - record.last_run).days
                if age > 60:
                    score -= 0.05
                    reasons.append(f"last run {age} days before the newest query in the log")
            for table_name in record.tables:
                table = self.catalog.tables.get(table_name)
                if table is None:
                    continue
                if table.deprecated:
                    score -= 0.2
                    warnings.append(
                        f"reads deprecated {table_name}"
                        + (f": rewrite on {table.successor}" if table.successor else "")
                    )
                elif table.successor:
                    score -= 0.1
                    warnings.append(f"reads {table_name}, a copy: rewrite on {table.successor}")
            if record.success_rate == 0:
                warnings.append("never succeeded")
            scored.append((score, record, reasons, warnings))
        scored.sort(key=lambda s: -s[0])
        return [
            QueryHit(
                id=record.id, rank=rank, score=round(score, 4), summary=record.intent.summary,
                questions=record.intent.questions, sql=record.example_sql, tables=record.tables, runs=record.runs,
                success_rate=round(record.success_rate, 4), authors=len(record.authors),
                last_run=record.last_run.isoformat(), reasons=reasons, warnings=warnings,
            )
            for rank, (score, record, reasons, warnings) in enumerate(scored[:k], 1)
        ]  # fmt: skip
