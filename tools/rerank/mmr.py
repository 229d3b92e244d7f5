"""Maximal marginal relevance (Carbonell & Goldstein, 1998).

Each pick maximises  λ·relevance_i − (1 − λ)·max_{j picked} cos(x_i, x_j); one product X·x_j per pick.
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


def mmr(
    embeddings: Any,
    scores: Any,
    k: int,
    *,
    lambda_: float = 0.5,
    score_norm: ScoreNorm | str = ScoreNorm.ZSCORE,
) -> Picks:
    if not math.isfinite(lambda_) or not 0.0 <= lambda_ <= 1.0:
        raise RerankError("lambda must be in [0, 1]")
    rel = normalize_scores(as_scores(scores), ScoreNorm(score_norm))
    n = rel.shape[0]
    X = unit_rows(as_matrix(embeddings, n)) if n else np.zeros((0, 1), F32)
    k = check_k(k, n)
    picks = Picks()
    if k == 0:
        return picks
    base = (lambda_ * rel).astype(F32)
    closest = np.full(n, -np.inf, F32)  # max similarity to anything picked; −inf before the first pick
    total = np.empty(n, F32)
    sim = np.empty(n, F32)
    for t in range(k):
        if t == 0:
            total[:] = base
        else:
            np.multiply(closest, -(1.0 - lambda_), out=total)
            np.add(total, base, out=total)
        best = int(total.argmax())
        if not np.isfinite(total[best]):
            break
        redundancy = float(closest[best]) if t else 0.0
        picks.add(best, float(rel[best]), -(1.0 - lambda_) * redundancy if t else 0.0)
        base[best] = -np.inf
        np.matmul(X, X[best], out=sim)
        np.maximum(closest, sim, out=closest)
    return picks
