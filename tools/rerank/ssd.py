"""Sliding spectrum decomposition (SSD), Huang et al., KDD 2021.

Greedy: each pick maximises   relevance_i + γ · ‖x_i − proj_W(x_i)‖   where W is the span of the
last `window` picks, held as an orthonormal basis built by Gram–Schmidt as items are picked.
Items leaving the window stop counting.

Because the window's basis vectors are orthonormal, a candidate's squared residual is
‖x_i‖² − Σ_{u ∈ W} (x_i·u)². So each pick costs one matrix–vector product X·u (its squared
column is subtracted from the residuals, and added back when the basis leaves the window) plus a
few O(N) vector operations: T picks cost T products, O(T·N·d), with no N×d updates.
The loop runs in a compiled kernel (`kernels`) that keeps the product in BLAS and fuses those
O(N) passes, soft spacing and the coverage bonus included.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from tools.rerank.common import (
    EPS,
    Picks,
    RerankError,
    ScoreNorm,
    Spacing,
    as_matrix,
    as_scores,
    category_codes,
    check_k,
    flags_vector,
    normalize_scores,
    row_norms,
    unit_rows,
)


def ssd(
    embeddings: Any,
    scores: Any,
    k: int,
    *,
    gamma: float = 1.0,
    window: int = 10,
    recent: Any | None = None,
    normalize: bool = True,
    bias: bool = False,
    score_norm: ScoreNorm | str = ScoreNorm.ZSCORE,
    flagged: Any | None = None,
    spacing: Spacing | None = None,
    categories: Any | None = None,
    coverage: float = 0.0,
    dtype: type[np.floating[Any]] = np.float32,
    prune: bool = True,
) -> Picks:
    """Pick `k` items. `recent` (oldest first) seeds the window with what the user just saw.

    `prune` drops, before the loop, candidates that cannot be picked: a candidate's total is
    at most its relevance plus its norm, and at every one of the k picks some top-k-relevance
    item is still unpicked, so the pick's total is at least the k-th best relevance. Exact
    (the picks do not change); off only to measure what it saves.
    """
    if not math.isfinite(gamma) or gamma < 0:
        raise RerankError("gamma must be a finite number ≥ 0")
    if window < 1:
        raise RerankError("window must be ≥ 1")
    if not math.isfinite(coverage) or coverage < 0:
        raise RerankError("coverage must be a finite number ≥ 0")
    rel = normalize_scores(as_scores(scores), ScoreNorm(score_norm))
    n = rel.shape[0]
    k = check_k(k, n)
    if k == 0:
        if n:
            as_matrix(embeddings, n)
        return Picks()
    X = as_matrix(embeddings, n, checked=True)
    norms = row_norms(X)
    flags = flags_vector(flagged, n)
    codes = category_codes(categories, n)
    if gamma == 0.0 and spacing is None and coverage == 0.0:
        order = np.argsort(-rel, kind="stable")[:k]
        zero = np.zeros(k)
        return Picks.from_arrays(order, rel[order], zero, zero, zero)
    spaced = spacing is not None and flags is not None
    covered = codes is not None and coverage > 0
    seeded = recent is not None and np.size(recent) > 0
    # The kernel (and the seeding below) scale each projection by 1/‖x_i‖, which spares an N×d
    # copy of unit rows (at N≈500 that copy costs as much as five of the loop's matrix–vector
    # products). Only a bias column needs the copy.
    if normalize and not bias:
        nonzero = norms > 0
        row_scale = np.divide(1.0, norms, out=np.zeros(n, dtype), where=nonzero)
        res_sq = nonzero.astype(dtype)
    else:
        row_scale = np.ones(n, dtype)
        if normalize:
            X = unit_rows(X, bias, norms)
            res_sq = np.where(norms > 0, 2.0, 1.0).astype(dtype)  # the bias column adds 1
        else:
            res_sq = (norms * norms).astype(dtype)
    X = X.astype(dtype, copy=False)

    # Work in units of 1/γ: argmax(rel/γ + residual) ranks like argmax(rel + γ·residual). With
    # γ = 0 (only spacing or coverage act) relevance keeps its units and residuals weigh nothing.
    scale = 1.0 / gamma if gamma > 0 else 1.0
    rel_scaled = (rel * scale).astype(dtype)
    signed = np.zeros((window, n), dtype)  # x_i·u for each window basis u; squared, what leaves res_sq
    basis = np.zeros((window, X.shape[1]), dtype)  # orthonormal rows; unused slots stay zero
    count = 0  # bases in the window
    head = 0  # the slot the next basis goes to
    # The most any candidate's total can reach; taken before seeding lowers the residuals.
    ceiling = rel_scaled + np.sqrt(res_sq) if prune and gamma > 0 and not spaced and not covered and k < n else None

    if seeded:
        context = as_matrix(recent)
        if context.shape[1] != X.shape[1] - (1 if normalize and bias else 0):
            raise RerankError(f"recent items have {context.shape[1]} dimensions; candidates have {X.shape[1]}")
        if normalize:
            context = unit_rows(context, bias)
        for seen in context[-window:].astype(dtype):
            # Orthogonalise against the window, then make it the newest basis vector.
            vector = seen - basis.T @ (basis @ seen) if count else seen  # zero rows contribute nothing
            norm = math.sqrt(float(vector @ vector))
            if count == window:  # the oldest basis leaves the window: its projections stop counting
                res_sq += signed[head] * signed[head]
                count -= 1
            basis[head] = vector / norm if norm > EPS else 0.0  # in the window's span: no new direction
            np.matmul(X, basis[head], out=signed[head])
            signed[head] *= row_scale
            res_sq -= signed[head] * signed[head]
            head, count = (head + 1) % window, count + 1

    # Spacing and coverage inputs; empty when neither acts, and the kernel skips their terms.
    flag_values = uncovered = spacing_weights = np.zeros(0, dtype)
    category = np.zeros(0, np.int64)
    if spaced or covered:
        flag_values = flags if flags is not None and spaced else np.zeros(n, dtype)
        if spacing is not None and spaced:
            weights = [spacing.weight * scale / back for back in range(1, spacing.window + 1)]
            spacing_weights = np.array(weights, dtype)
        category = codes if codes is not None and covered else np.full(n, -1, np.int64)
        uncovered = np.where(category >= 0, coverage * scale, 0.0).astype(dtype)
    kept = None
    if ceiling is not None:
        kth_best = float(np.partition(rel_scaled, n - k)[n - k])
        # The margin covers float32 rounding in the totals (~1e-7 of their magnitude) many times.
        margin = 1e-4 * (1.0 + float(np.abs(ceiling).max()))
        kept = np.flatnonzero(ceiling >= kth_best - margin)
        if len(kept) < n:  # (spacing and coverage are off here: their arrays are empty)
            X, row_scale, rel_scaled, res_sq = X[kept], row_scale[kept], rel_scaled[kept], res_sq[kept]
            signed = np.ascontiguousarray(signed[:, kept])
        else:
            kept = None
    idx, residuals, penalties, bonuses = _kernel()(
        X, row_scale, rel_scaled, res_sq, k, window, basis, signed, count, head, dtype(EPS),
        dtype(1.0 if gamma > 0 else 0.0), flag_values, spacing_weights, category, uncovered,
    )  # fmt: skip
    if kept is not None:
        idx = kept[idx]  # back to the caller's candidate numbers
    # A pick's bonus is all of `coverage` or nothing: say so exactly rather than unscaled in float32.
    bonuses = np.where(bonuses > 0, coverage, 0.0)
    return Picks.from_arrays(idx, rel[idx], residuals * gamma, penalties / scale, bonuses)


@functools.cache
def _kernel() -> Any:
    """numba costs ~0.4 s to import: load it on the first request, not with the gateway."""
    from tools.rerank.kernels import ssd_picks

    return ssd_picks
