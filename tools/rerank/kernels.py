"""The SSD per-pick loop, compiled (numba) and loaded on first use.

At N≈500 a NumPy pick is one 5 µs matrix–vector product plus a dozen ~1 µs NumPy calls
(clamp, sqrt, add, argmax, Gram–Schmidt, square, subtract): the calls cost twice the product.
Here those O(N) passes are fused into two loops per pick and the product stays in BLAS, so a
request costs little more than its T products. The arithmetic is in the arrays' own dtype;
the picks are checked against the float64 by-the-book reference (`reference`) in the tests.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def ssd_picks(
    X: Any,
    row_scale: Any,
    rel_scaled: Any,
    res_sq: Any,
    k: int,
    window: int,
    basis: Any,
    signed: Any,
    count: int,
    head: int,
    eps: Any,
    residual_weight: Any,
    flags: Any,
    spacing_weights: Any,
    codes: Any,
    uncovered: Any,
) -> tuple[Any, Any, Any, Any]:
    """SSD, k picks, in units of 1/γ: total_i = rel_i/γ + residual_i − spacing_i + coverage_i.

    - Candidate i is row_scale[i]·X[i] (1/‖X[i]‖ when the rows are to count as unit vectors).
    - `rel_scaled` (picked items become −inf) and `res_sq` (squared residuals against the window)
      are updated in place; `signed[w, i]` is x_i·u_w for window basis w (its square is what
      leaves the residuals when basis w leaves the window); `basis`, `count` and `head` are the
      window as seeding left it.
    - `residual_weight` is 1, or 0 when γ = 0 (then only spacing and coverage act on relevance).
    - Spacing: a flagged candidate (flags 1) loses Σ_d spacing_weights[d−1]·flags[pick t−d].
    - Coverage: `uncovered[i]` is candidate i's bonus until an item of its category (`codes`,
      −1 for none) is picked.
    - When neither acts, `flags`, `codes` and `uncovered` are empty and their terms are skipped.
    - `eps` has the arrays' dtype, so every scalar below does too.

    Returns the picks and, per pick, its residual, spacing penalty and coverage bonus.
    """
    n, d = X.shape
    zero = eps - eps
    one = zero + 1
    spaced = spacing_weights.shape[0] > 0
    extras = flags.shape[0] > 0  # spacing or coverage acts: flags, codes and uncovered hold N values
    chosen = np.empty(k, np.int64)
    residuals = np.zeros(k, np.float64)
    penalties = np.zeros(k, np.float64)
    bonuses = np.zeros(k, np.float64)
    picked_flags = np.zeros(k, X.dtype)
    vector = np.empty(d, X.dtype)
    picked = 0
    for t in range(k):
        q = zero  # this pick's spacing pressure on flagged candidates
        if spaced:
            for back in range(1, min(t, spacing_weights.shape[0]) + 1):
                q += spacing_weights[back - 1] * picked_flags[t - back]
        best = -1
        best_total = -np.inf
        best_root = zero
        for i in range(n):
            r = res_sq[i]
            if r < zero:  # float error must not become NaN in the sqrt
                r = zero
                res_sq[i] = zero
            root = np.sqrt(r)
            total = rel_scaled[i] + residual_weight * root
            if extras:
                total = total - q * flags[i] + uncovered[i]
            if total > best_total:  # strict: the first of equal totals wins, as argmax
                best_total = total
                best = i
                best_root = root
        if best < 0:
            break  # everything left is already picked
        chosen[t] = best
        residuals[t] = best_root * residual_weight
        if extras:
            penalties[t] = q * flags[best]
            bonuses[t] = uncovered[best]
            picked_flags[t] = flags[best]
            category = codes[best]
            if category >= 0:
                for i in range(n):
                    if codes[i] == category:
                        uncovered[i] = zero
        rel_scaled[best] = -np.inf
        picked = t + 1
        if picked == k:
            break
        # Orthogonalise against the whole window (the oldest basis included, as the reference
        # does); x·u_w is already known from the pick that made u_w. Unused rows are zero.
        for j in range(d):
            vector[j] = X[best, j] * row_scale[best]
        if count:
            for w in range(window):
                c = signed[w, best]
                if c != zero:
                    for j in range(d):
                        vector[j] -= c * basis[w, j]
        if count == window:  # the oldest basis leaves the window: its projections stop counting
            for i in range(n):
                s = signed[head, i]
                res_sq[i] += s * s
            count -= 1
        if best_root <= eps:  # already in the window's span: no new direction
            basis[head, :] = zero
            signed[head, :] = zero
        else:
            inverse = one / best_root  # the new basis's norm is the residual just picked on
            for j in range(d):
                basis[head, j] = vector[j] * inverse
            projections = np.dot(X, basis[head])
            for i in range(n):
                s = projections[i] * row_scale[i]
                signed[head, i] = s
                res_sq[i] -= s * s
        head = (head + 1) % window
        count += 1
    return chosen[:picked], residuals[:picked], penalties[:picked], bonuses[:picked]
