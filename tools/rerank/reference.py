"""Slow, obviously-correct float64 references, for property tests and the benchmark's check."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from tools.rerank.common import ScoreNorm, normalize_scores, unit_rows


def gram_schmidt_greedy(
    X: Any,
    scores: Any,
    k: int,
    gamma: float,
    window: int | None = None,
    *,
    flagged: Any | None = None,
    spacing: tuple[float, int] | None = None,
    categories: Any | None = None,
    coverage: float = 0.0,
) -> list[int]:
    """SSD by the book: residual norms recomputed from scratch against the window's basis.

    Each pick maximises rel + γ·residual − λ·Σ_{d≤w}(1/d)·flag[pick t−d]·flag + coverage·[its
    category not shown yet], with `spacing` = (λ, w)."""
    X = unit_rows(np.asarray(X, np.float32)).astype(np.float64)
    rel = normalize_scores(np.asarray(scores, np.float32), ScoreNorm.ZSCORE).astype(np.float64)
    flags = np.zeros(len(rel)) if flagged is None else np.asarray(flagged, np.float64)
    shown: set[Any] = set()
    bases: list[np.ndarray[Any, Any]] = []
    picked: list[int] = []
    for _ in range(min(k, len(rel))):
        active = bases if window is None else bases[-window:]
        residual = X.copy()
        for b in active:
            residual -= np.outer(residual @ b, b)
        norms = np.linalg.norm(residual, axis=1)
        total = rel + gamma * norms
        if spacing is not None:
            weight, reach = spacing
            recent_flags = [flags[i] for i in reversed(picked)][:reach]
            total -= weight * sum(f / (d + 1) for d, f in enumerate(recent_flags)) * flags
        if categories is not None:
            total += coverage * np.array([c not in (None, "") and c not in shown for c in categories])
        total[picked] = -np.inf
        best = int(np.argmax(total))
        picked.append(best)
        if categories is not None:
            shown.add(categories[best])
        v = X[best].copy()
        for b in active:
            v -= (v @ b) * b
        nv = np.linalg.norm(v)
        bases.append(v / nv if nv > 1e-12 else np.zeros_like(v))
    return picked


def determinant_greedy(X: Any, scores: Any, k: int, theta: float) -> list[int]:
    """DPP greedy MAP by brute force: the log-determinant of every candidate subset."""
    X = unit_rows(np.asarray(X, np.float32)).astype(np.float64)
    rel = normalize_scores(np.asarray(scores, np.float32), ScoreNorm.ZSCORE).astype(np.float64)
    q = np.exp(theta * (rel - rel.max()))
    L = q[:, None] * (X @ X.T) * q[None, :]
    picked: list[int] = []
    for _ in range(min(k, len(rel))):
        best, best_value = -1, -math.inf
        for i in range(len(rel)):
            if i in picked:
                continue
            subset = [*picked, i]
            sign, logdet = np.linalg.slogdet(L[np.ix_(subset, subset)])
            value = logdet if sign > 0 else -math.inf
            if value > best_value:
                best, best_value = i, value
        if best < 0:
            break
        picked.append(best)
    return picked


def brute_force_best_set(X: Any, scores: Any, k: int, theta: float) -> tuple[int, ...]:
    """The exact MAP set (tiny inputs only), to show greedy is a heuristic, not the optimum."""
    X = unit_rows(np.asarray(X, np.float32)).astype(np.float64)
    rel = normalize_scores(np.asarray(scores, np.float32), ScoreNorm.ZSCORE).astype(np.float64)
    q = np.exp(theta * (rel - rel.max()))
    L = q[:, None] * (X @ X.T) * q[None, :]
    best = max(itertools.combinations(range(len(rel)), k), key=lambda s: np.linalg.slogdet(L[np.ix_(s, s)])[1])
    return tuple(best)
