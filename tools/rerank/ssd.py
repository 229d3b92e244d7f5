"""Sliding spectrum decomposition (SSD), Huang et al., KDD 2021.

Greedy: each pick maximises   relevance_i + γ · ‖x_i − proj_W(x_i)‖   where W is the span of the
last `window` picks, held as an orthonormal basis built by Gram–Schmidt as items are picked.
Items leaving the window stop counting.

Because the window's basis vectors are orthonormal, a candidate's squared residual is
‖x_i‖² − Σ_{u ∈ W} (x_i·u)². So each pick costs one matrix–vector product X·u (its squared
column enters a ring buffer and is subtracted again when the basis leaves the window) plus a
few O(N) vector operations: T picks cost T products, O(T·N·d), with no N×d updates.
Plain SSD runs in a compiled kernel (`kernels`) that fuses those O(N) passes; with spacing or
coverage the loop below, in NumPy (preallocated buffers, in-place ufuncs), does the same steps.
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
    plain = not (spacing is not None and flags is not None) and not (codes is not None and coverage > 0)
    seeded = recent is not None and np.size(recent) > 0
    # The compiled loop can scale each projection by 1/‖x_i‖ itself, which spares an N×d copy of
    # unit rows (at N≈500 that copy costs as much as five of the loop's matrix–vector products).
    row_scale = np.ones(n, dtype)
    if plain and normalize and not bias and not seeded:
        np.divide(1.0, norms, out=row_scale, where=norms > 0)
        row_scale[norms == 0] = 0.0
        res_sq = (norms > 0).astype(dtype)
    elif normalize:
        X = unit_rows(X, bias, norms)
        res_sq = np.where(norms > 0, 1.0, 0.0).astype(dtype) + (1.0 if bias else 0.0)
    else:
        res_sq = (norms * norms).astype(dtype)
    X = X.astype(dtype, copy=False)

    n_dim = X.shape[1]
    # Work in units of 1/γ: argmax(rel/γ + residual) ranks like argmax(rel + γ·residual).
    scale = 1.0 / gamma if gamma > 0 else 1.0
    rel_scaled = (rel * scale).astype(dtype) if gamma > 0 else np.zeros(n, dtype)
    ring = np.zeros((window, n), dtype)  # squared projections onto each window basis vector
    signed = np.zeros((window, n), dtype)  # the projections themselves: x_i·u for each basis u
    basis = np.zeros((window, n_dim), dtype)  # orthonormal rows; unused slots stay zero
    zeros = np.zeros(n, dtype)
    total = np.empty(n, dtype)
    root = np.empty(n, dtype)
    count = 0  # bases in the window
    head = 0  # the slot the next basis goes to

    # Local names: attribute lookups are a measurable share of a pick at N≈500.
    matmul, multiply, subtract, add, maximum, sqrt = np.matmul, np.multiply, np.subtract, np.add, np.maximum, np.sqrt

    def push(vector: np.ndarray[Any, Any]) -> None:
        """Orthogonalise `vector` against the window, then make it the newest basis vector."""
        nonlocal count, head
        if count:
            vector = vector - basis.T @ (basis @ vector)  # zero rows contribute nothing
        norm = math.sqrt(float(vector @ vector))
        if count == window:  # the oldest basis leaves the window: its projections stop counting
            add(res_sq, ring[head], out=res_sq)
            count -= 1
        if norm <= EPS:
            basis[head] = 0.0  # already in the window's span: no new direction
            ring[head] = 0.0
            signed[head] = 0.0
        else:
            multiply(vector, 1.0 / norm, out=basis[head])
            matmul(X, basis[head], out=signed[head])
            multiply(signed[head], signed[head], out=ring[head])
            subtract(res_sq, ring[head], out=res_sq)
        head = (head + 1) % window
        count += 1

    # The most any candidate's total can reach; taken before seeding lowers the residuals.
    ceiling = rel_scaled + np.sqrt(res_sq) if plain and prune and k < n else None

    if recent is not None and np.size(recent):
        context = as_matrix(recent)
        if context.shape[1] != X.shape[1] - (1 if normalize and bias else 0):
            raise RerankError(f"recent items have {context.shape[1]} dimensions; candidates have {n_dim}")
        if normalize:
            context = unit_rows(context, bias)
        for vector in context[-window:].astype(dtype):
            push(vector)

    if plain:
        kept = None
        if ceiling is not None:
            kth_best = float(np.partition(rel_scaled, n - k)[n - k])
            # The margin covers float32 rounding in the totals (~1e-7 of their magnitude) many times.
            margin = 1e-4 * (1.0 + float(np.abs(ceiling).max()))
            kept = np.flatnonzero(ceiling >= kth_best - margin)
        if kept is not None and len(kept) < n:
            X, rel_scaled, res_sq, row_scale = X[kept], rel_scaled[kept], res_sq[kept], row_scale[kept]
            signed = np.ascontiguousarray(signed[:, kept])
        else:
            kept = None
        idx, residuals = _plain_loop(X, row_scale, rel_scaled, res_sq, k, window, basis, signed, count, head, dtype)
        if kept is not None:
            idx = kept[idx]  # back to the caller's candidate numbers
        return Picks.from_arrays(idx, rel[idx], residuals * gamma, np.zeros(len(idx)), np.zeros(len(idx)))

    chosen = np.empty(k, np.int64)
    residual_at_pick = np.zeros(k, np.float64)
    penalty_at_pick = np.zeros(k, np.float64)
    bonus_at_pick = np.zeros(k, np.float64)
    spaced = spacing is not None and flags is not None
    weights = [1.0 / (j + 1) for j in range(spacing.window)] if spacing is not None else []
    flag_history: list[float] = []
    uncovered = np.zeros(n, dtype)
    members: dict[int, np.ndarray[Any, Any]] = {}
    if codes is not None and coverage > 0:
        uncovered[codes >= 0] = coverage * scale
        members = {int(c): np.flatnonzero(codes == c) for c in np.unique(codes[codes >= 0])}

    picked = 0
    for t in range(k):
        maximum(res_sq, zeros, out=res_sq)  # float error must not become NaN in the sqrt
        sqrt(res_sq, out=root)
        add(root, rel_scaled, out=total)
        q = 0.0
        if spaced and flag_history:
            q = sum(w * f for w, f in zip(weights, reversed(flag_history), strict=False))
            if q:
                total -= (spacing.weight * scale * q) * flags  # type: ignore[union-attr, operator]
        if members:
            add(total, uncovered, out=total)
        best = int(total.argmax())
        if total[best] == -np.inf:
            break  # everything left is already picked
        chosen[t] = best
        residual_at_pick[t] = root[best]
        if spaced:
            penalty_at_pick[t] = spacing.weight * q * flags[best]  # type: ignore[union-attr, index]
            flag_history.append(float(flags[best]))  # type: ignore[index]
        if members:
            bonus_at_pick[t] = uncovered[best] / scale
            if codes is not None and codes[best] >= 0:
                uncovered[members[int(codes[best])]] = 0.0
        rel_scaled[best] = -np.inf
        picked = t + 1
        if picked < k:
            push(X[best].copy())
    idx = chosen[:picked]
    return Picks.from_arrays(
        idx, rel[idx], residual_at_pick[:picked] * gamma, penalty_at_pick[:picked], bonus_at_pick[:picked]
    )


def _plain_loop(
    X: np.ndarray[Any, Any],
    row_scale: np.ndarray[Any, Any],
    rel_scaled: np.ndarray[Any, Any],
    res_sq: np.ndarray[Any, Any],
    k: int,
    window: int,
    basis: np.ndarray[Any, Any],
    signed: np.ndarray[Any, Any],
    count: int,
    head: int,
    dtype: Any,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Plain SSD (no spacing, no coverage) in the compiled kernel; row i of X counts as row_scale[i]·x_i.

    Two identities keep a pick small: the new basis vector's norm is the candidate's residual,
    which this pick already computed; and its Gram–Schmidt coefficients against the window
    are the signed projections computed at earlier picks (kept in `signed`).
    """
    idx, residuals = _kernel()(X, row_scale, rel_scaled, res_sq, k, window, basis, signed, count, head, dtype(EPS))
    return idx, residuals


@functools.cache
def _kernel() -> Any:
    """numba costs ~0.4 s to import: load it on the first request, not with the gateway."""
    from tools.rerank.kernels import ssd_picks

    return ssd_picks
