"""DPP greedy MAP inference (Chen, Zhang & Zhou, NeurIPS 2018), and its sliding-window variant.

Kernel L = diag(q)·S·diag(q), with S the cosine similarities and q_i = exp(θ·relevance_i).
Fast greedy keeps, for every candidate, the row of the incremental Cholesky factor and its
remaining variance d_i²; each pick costs one product X·x_j and one C·c_j: O(N·(d + T)).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tools.rerank.common import (
    F32,
    Picks,
    RerankError,
    ScoreNorm,
    as_matrix,
    as_scores,
    check_k,
    normalize_scores,
    unit_rows,
)

_FLOOR = 1e-10
# A candidate keeping less than this fraction of its own variance adds no volume: below it we
# see float32 rounding in the similarities, not diversity.
_RELATIVE_FLOOR = 1e-5


def _no_volume_left(variance: np.ndarray[Any, Any], q: np.ndarray[Any, Any]) -> bool:
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(q > 0, variance / (q.astype(np.float64) ** 2), -np.inf)
    return bool(np.nanmax(fraction) < _RELATIVE_FLOOR) if fraction.size else True


def _fill_by_relevance(picks: Picks, rel: np.ndarray[Any, Any], k: int) -> None:
    """When nothing adds volume (duplicates, rank exhausted), the rest follow relevance."""
    if len(picks.indices) >= k:
        return
    taken = set(picks.indices)
    picks.notes.append(
        f"after {len(picks.indices)} picks the remaining candidates add no volume (duplicates or the "
        "embedding rank is exhausted); the rest follow relevance"
    )
    for i in np.argsort(-rel, kind="stable"):
        if len(picks.indices) >= k:
            break
        if int(i) not in taken:
            picks.add(int(i), float(rel[i]), 0.0)


def _kernel_inputs(embeddings: Any, scores: Any, k: int, theta: float, score_norm: ScoreNorm | str) -> tuple[Any, ...]:
    if not math.isfinite(theta) or theta < 0:
        raise RerankError("theta must be a finite number ≥ 0")
    rel = normalize_scores(as_scores(scores), ScoreNorm(score_norm))
    n = rel.shape[0]
    X = unit_rows(as_matrix(embeddings, n)) if n else np.zeros((0, 1), F32)
    quality = np.exp(theta * (rel - (rel.max() if n else 0.0))).astype(F32)  # shifted: no overflow
    return rel, X, quality, check_k(k, n)


def dpp(
    embeddings: Any,
    scores: Any,
    k: int,
    *,
    theta: float = 1.0,
    score_norm: ScoreNorm | str = ScoreNorm.ZSCORE,
) -> Picks:
    """Fast greedy MAP: each pick maximises the log-determinant gain log d_j²."""
    rel, X, q, k = _kernel_inputs(embeddings, scores, k, theta, score_norm)
    picks = Picks()
    n = rel.shape[0]
    if k == 0:
        return picks
    variance = (q * q).astype(np.float64)  # diag(L): ‖x‖ = 1
    C = np.zeros((n, k), np.float64)
    for t in range(k):
        j = int(np.argmax(variance))
        if variance[j] <= _FLOOR or (t and _no_volume_left(variance, q)):
            break
        gain = math.log(variance[j])
        picks.add(j, float(rel[j]), gain - 2.0 * math.log(float(q[j])) if q[j] > 0 else gain)
        row = (X @ X[j]).astype(np.float64) * q * q[j]  # L[j, :]
        e = (row - C[:, :t] @ C[j, :t]) / math.sqrt(variance[j])
        C[:, t] = e
        variance -= e * e
        variance[j] = -np.inf
    _fill_by_relevance(picks, rel, k)
    return picks


def dpp_window(
    embeddings: Any,
    scores: Any,
    k: int,
    *,
    theta: float = 1.0,
    window: int = 10,
    score_norm: ScoreNorm | str = ScoreNorm.ZSCORE,
) -> Picks:
    """Greedy MAP where only the last `window` picks count (the feed setting of Chen et al. §4)."""
    if window < 1:
        raise RerankError("window must be ≥ 1")
    rel, X, q, k = _kernel_inputs(embeddings, scores, k, theta, score_norm)
    picks = Picks()
    n = rel.shape[0]
    taken = np.zeros(n, dtype=bool)
    for _ in range(k):
        # Rebuild the Cholesky rows against the current window: O(w·N·(d + w)) per pick.
        recent = picks.indices[-(window - 1) :] if window > 1 else []
        variance = (q * q).astype(np.float64)
        C = np.zeros((n, len(recent)), np.float64)
        for t, j in enumerate(recent):
            row = (X @ X[j]).astype(np.float64) * q * q[j]
            e = (row - C[:, :t] @ C[j, :t]) / math.sqrt(max(variance[j], _FLOOR))
            C[:, t] = e
            variance -= e * e
        variance[taken] = -np.inf
        j = int(np.argmax(variance))
        if not np.isfinite(variance[j]) or variance[j] <= _FLOOR or (recent and _no_volume_left(variance, q)):
            break
        picks.add(j, float(rel[j]), math.log(max(variance[j], _FLOOR)) - 2.0 * math.log(max(float(q[j]), 1e-30)))
        taken[j] = True
    _fill_by_relevance(picks, rel, k)
    return picks
