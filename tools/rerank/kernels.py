"""Compiled per-pick loops (numba), loaded on first use.

At N≈500 a NumPy pick is one 5 µs matrix–vector product plus a dozen ~1 µs NumPy calls
(clamp, sqrt, add, argmax, Gram–Schmidt, square, subtract): the calls cost twice the product.
Here those O(N) passes are fused into two loops per pick and the product stays in BLAS, so a
request costs little more than its T products. The arithmetic is the NumPy loop's, in the
array's own dtype, and the picks are checked against the float64 reference in the tests.
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
) -> tuple[Any, Any]:
    """Plain SSD, k picks. Arguments are the NumPy loop's state (see `ssd._plain_loop`).

    Candidate i is row_scale[i]·X[i] (1/‖X[i]‖ when the rows are to count as unit vectors).
    `rel_scaled` (relevance / γ, picked items become −inf) and `res_sq` (squared residuals
    against the window) are updated in place; `signed[w, i]` is x_i·u_w for window basis w
    (its square is what leaves the residuals when basis w leaves the window). `eps` has the
    arrays' dtype, so every scalar below does too.
    """
    n, d = X.shape
    zero = eps - eps
    one = zero + 1
    chosen = np.empty(k, np.int64)
    residuals = np.empty(k, np.float64)
    vector = np.empty(d, X.dtype)
    picked = 0
    for t in range(k):
        best = -1
        best_total = -np.inf
        best_root = zero
        for i in range(n):
            r = res_sq[i]
            if r < zero:  # float error must not become NaN in the sqrt
                r = zero
                res_sq[i] = zero
            root = np.sqrt(r)
            total = root + rel_scaled[i]
            if total > best_total:  # strict: the first of equal totals wins, as argmax
                best_total = total
                best = i
                best_root = root
        if best < 0:
            break  # everything left is already picked
        chosen[t] = best
        residuals[t] = best_root
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
    return chosen[:picked], residuals[:picked]
