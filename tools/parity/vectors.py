"""Embedding parity and funnel alignment.

Embeddings: version tags, per-entity cosine and norm ratio (DuckDB list functions, one scan), and
the overlap of nearest neighbours on a sample (NumPy): a model-version swap keeps norms plausible
but moves every vector and scrambles neighbourhoods. Funnel: how much of the ranker's top-K the
retrieval stage supplies, and rank correlation between the stages on what they share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from tools.parity.model import Finding, ParityError, Redactor
from tools.parity.sources import connect, register
from tools.parity.sources import quote_identifier as _q

MAX_VERSIONS = 20  # a version column is a stamp: more distinct values than this is not a version


def _register_all(con: Any, sources: dict[str, tuple[Any, tuple[str, ...]]]) -> None:
    """Each source as the view of its name; a missing column is an error naming the input."""
    for name, (source, needed) in sources.items():
        columns = dict(register(con, name, source))
        for column in needed:
            if column not in columns:
                raise ParityError(name, "column is missing", column)


class EmbeddingReport(BaseModel):
    compared: int
    mean_cosine: float
    p01_cosine: float = Field(description="1st percentile of per-entity cosine")
    mean_norm_ratio: float
    neighbour_overlap: float | None = Field(None, description="Mean overlap@10 of nearest neighbours on a sample")
    versions_training: list[str] = Field(default_factory=list)
    versions_serving: list[str] = Field(default_factory=list)
    findings: list[Finding]


def compare_embeddings(
    training: Any,
    serving: Any,
    key: str,
    column: str,
    version_column: str | None = None,
    min_cosine: float = 0.99,
    sample: int = 2000,
    engine: str | None = None,
    redactor: Redactor | None = None,
) -> EmbeddingReport:
    redact = redactor or Redactor()
    con = connect(engine, training, serving)
    try:
        needed = (key, column, *([version_column] if version_column else []))
        _register_all(con, {"training": (training, needed), "serving": (serving, needed)})
        k, c = _q(key), _q(column)
        row = con.execute(
            f"WITH j AS (SELECT list_cosine_similarity(CAST(t.{c} AS DOUBLE[]), CAST(s.{c} AS DOUBLE[])) cos, "
            f"sqrt(list_inner_product(CAST(s.{c} AS DOUBLE[]), CAST(s.{c} AS DOUBLE[]))) / "
            f"nullif(sqrt(list_inner_product(CAST(t.{c} AS DOUBLE[]), CAST(t.{c} AS DOUBLE[]))), 0) ratio "
            f"FROM training t JOIN serving s USING ({k})) "
            # A zero vector has no direction: it counts as compared, not in the cosine statistics.
            "SELECT count(*), avg(cos) FILTER (WHERE NOT isnan(cos)), "
            "quantile_cont(cos, 0.01) FILTER (WHERE NOT isnan(cos)), avg(ratio) FROM j"
        ).fetchone()
        assert row is not None
        compared, mean_cos, p01, ratio = row
        if not compared:
            raise ParityError("serving", f"no key in common with training on {key!r}", key)
        versions: dict[str, list[str]] = {}
        if version_column:
            for side in ("training", "serving"):
                rows = con.execute(f"SELECT DISTINCT CAST({_q(version_column)} AS VARCHAR) FROM {side} ORDER BY 1 "
                                   f"LIMIT {MAX_VERSIONS + 1}").fetchall()  # fmt: skip
                shown = [str(redact.value(version_column, r[0])) for r in rows[:MAX_VERSIONS]]
                versions[side] = shown + ([f"… more than {MAX_VERSIONS} versions"] if len(rows) > MAX_VERSIONS else [])
        ids = con.execute(
            f"SELECT {k} FROM training JOIN serving USING ({k}) ORDER BY hash({k}) LIMIT {int(sample)}"
        ).fetchall()
        overlap = None
        if len(ids) >= 20:
            keys = [r[0] for r in ids]
            con.execute("CREATE TEMP TABLE sample_keys AS SELECT unnest($1) AS k", [keys])
            vectors = {}
            for side in ("training", "serving"):
                fetched = con.execute(
                    f"SELECT CAST({c} AS DOUBLE[]) FROM {side} JOIN sample_keys ON {side}.{k} = sample_keys.k "
                    f"ORDER BY sample_keys.k"
                ).fetchall()
                vectors[side] = np.array([r[0] for r in fetched], dtype=np.float32)
            overlap = _neighbour_overlap(vectors["training"], vectors["serving"])
    finally:
        con.close()
    findings: list[Finding] = []
    if version_column and versions.get("training") != versions.get("serving"):
        findings.append(
            Finding(
                check="embedding_version",
                severity="critical",
                feature=column,
                summary=f"{column}: training uses {versions['training']}, serving {versions['serving']}",
                likely_cause="the two towers or the index were built with different model versions (version skew)",
                evidence={"training": versions["training"], "serving": versions["serving"]},
            )
        )
    if mean_cos is not None and (mean_cos < min_cosine or (overlap is not None and overlap < 0.8)):
        findings.append(
            Finding(
                check="embedding_values",
                severity="critical" if mean_cos < 0.9 else "high",
                feature=column,
                summary=f"{column}: mean cosine {mean_cos:.4f}, neighbour "
                f"overlap {overlap if overlap is not None else float('nan'):.2f}",
                likely_cause="serving embeddings come from another model version or another entity's row",
                evidence={
                    "mean_cosine": mean_cos,
                    "p01_cosine": p01,
                    "neighbour_overlap": overlap,
                    "norm_ratio": ratio,
                },
            )
        )
    return EmbeddingReport(
        compared=int(compared),
        mean_cosine=round(float(mean_cos), 6),
        p01_cosine=round(float(p01), 6),
        mean_norm_ratio=round(float(ratio or 0), 6),
        neighbour_overlap=overlap,
        versions_training=versions.get("training", []),
        versions_serving=versions.get("serving", []),
        findings=findings,
    )


def _neighbour_overlap(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], k: int = 10) -> float:
    def top(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return np.argpartition(-sims, k, axis=1)[:, :k]

    ta, tb = top(a), top(b)
    return round(float(np.mean([len(set(x) & set(y)) / k for x, y in zip(ta, tb, strict=True)])), 4)


class FunnelReport(BaseModel):
    requests: int
    k: int
    supply_rate: float = Field(description="Share of the ranker's top-K that the retriever supplied")
    rank_correlation: float | None = Field(description="Mean per-request Spearman between stages on shared items")
    findings: list[Finding]


def funnel_alignment(
    retrieval: Any,
    ranking: Any,
    request_key: str,
    item_key: str,
    retrieval_score: str,
    ranking_score: str,
    k: int = 10,
    engine: str | None = None,
) -> FunnelReport:
    con = connect(engine, retrieval, ranking)
    try:
        _register_all(con, {"retrieval": (retrieval, (request_key, item_key, retrieval_score)),
                            "ranking": (ranking, (request_key, item_key, ranking_score))})  # fmt: skip
        rq, it = _q(request_key), _q(item_key)
        row = con.execute(
            f"WITH top AS (SELECT {rq}, {it} FROM ranking QUALIFY row_number() OVER (PARTITION BY {rq} "
            f"ORDER BY {_q(ranking_score)} DESC) <= {int(k)}), "
            f"supplied AS (SELECT top.{rq}, (r.{it} IS NOT NULL)::INT AS hit FROM top LEFT JOIN retrieval r "
            f"ON r.{rq} = top.{rq} AND r.{it} = top.{it}), "
            f"shared AS (SELECT a.{rq}, rank() OVER (PARTITION BY a.{rq} ORDER BY a.{_q(retrieval_score)} DESC) ra, "
            f"rank() OVER (PARTITION BY a.{rq} ORDER BY b.{_q(ranking_score)} DESC) rb FROM retrieval a "
            f"JOIN ranking b ON a.{rq} = b.{rq} AND a.{it} = b.{it}), "
            f"per AS (SELECT {rq}, corr(ra, rb) c FROM shared GROUP BY {rq}) "
            f"SELECT (SELECT count(DISTINCT {rq}) FROM top), (SELECT avg(hit) FROM supplied), (SELECT avg(c) FROM per)"
        ).fetchone()
        assert row is not None
    finally:
        con.close()
    requests, supply, correlation = row
    findings = []
    if supply is not None and supply < 0.9:
        findings.append(
            Finding(
                check="funnel_supply",
                severity="high" if supply < 0.7 else "medium",
                summary=f"the retriever supplies {supply:.0%} of the ranker's top-{k}",
                likely_cause="the retrieval stage optimises a different objective than the ranker "
                "(or serves a stale index): the ranker's best items never reach it",
                evidence={"supply_rate": supply},
            )
        )
    if correlation is not None and correlation < 0.3:
        findings.append(
            Finding(
                check="funnel_order",
                severity="medium",
                summary=f"stages disagree on order (mean Spearman {correlation:.2f})",
                likely_cause="the stages are trained on different targets",
                evidence={"rank_correlation": correlation},
            )
        )
    return FunnelReport(
        requests=int(requests or 0),
        k=k,
        supply_rate=round(float(supply or 0), 6),
        rank_correlation=None if correlation is None else round(float(correlation), 6),
        findings=findings,
    )
