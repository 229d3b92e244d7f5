"""Input checking and the per-request preparation every re-ranker shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

F32 = np.float32
FloatArray = npt.NDArray[np.float32]
EPS = float(np.finfo(np.float32).eps)


class RerankError(ValueError):
    """Bad input, with the offending candidate or parameter named."""


class ScoreNorm(StrEnum):
    ZSCORE = "zscore"
    MINMAX = "minmax"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Spacing:
    """Soft spacing for flagged items: q_i(t) = 1[flagged_i] · Σ_{d=1..window} (1/d)·1[pick t−d flagged]."""

    weight: float = 1.0
    window: int = 5

    def __post_init__(self) -> None:
        if not np.isfinite(self.weight) or self.weight < 0:
            raise RerankError("spacing.weight must be a finite number ≥ 0")
        if self.window < 1:
            raise RerankError("spacing.window must be ≥ 1")


@dataclass
class Picks:
    """The ordered picks and what each term contributed to choosing them."""

    indices: list[int] = field(default_factory=list)
    relevance: list[float] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)
    penalty: list[float] = field(default_factory=list)
    coverage: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_arrays(cls, indices: Any, relevance: Any, diversity: Any, penalty: Any, coverage: Any) -> Picks:
        def floats(values: Any) -> list[float]:
            return np.asarray(values, dtype=np.float64).tolist()  # type: ignore[no-any-return]

        indices = np.asarray(indices, dtype=np.int64).tolist()
        return cls(indices, floats(relevance), floats(diversity), floats(penalty), floats(coverage))

    def add(self, index: int, relevance: float, diversity: float, penalty: float = 0.0, coverage: float = 0.0) -> None:
        self.indices.append(index)
        self.relevance.append(relevance)
        self.diversity.append(diversity)
        self.penalty.append(penalty)
        self.coverage.append(coverage)

    @property
    def scores(self) -> list[float]:
        return [
            r + d - p + c
            for r, d, p, c in zip(self.relevance, self.diversity, self.penalty, self.coverage, strict=True)
        ]


def as_matrix(embeddings: Any, n: int | None = None, *, checked: bool = False) -> FloatArray:
    """A C-contiguous float32 matrix. ``checked=True``: the caller checks finiteness itself."""
    matrix = np.ascontiguousarray(embeddings, dtype=F32)
    if matrix.ndim != 2:
        raise RerankError(f"embeddings must be a 2-D array (items × dimensions), got shape {matrix.shape}")
    if n is not None and matrix.shape[0] != n:
        raise RerankError(f"{matrix.shape[0]} embeddings for {n} scores")
    if not checked:
        check_finite(matrix)
    return matrix


def check_finite(matrix: FloatArray) -> None:
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise RerankError(f"embedding of candidate {int(np.flatnonzero(bad)[0])} contains NaN or infinity")


def row_norms(matrix: FloatArray) -> FloatArray:
    """Euclidean row norms, also proving every entry finite (NaN/inf make a norm non-finite)."""
    norms: FloatArray = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    if not np.isfinite(norms).all():
        check_finite(matrix)  # names the candidate with NaN/inf, if that is the cause
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1).astype(F32)  # huge but finite values
    return norms


def as_scores(scores: Any) -> FloatArray:
    vector = np.ascontiguousarray(scores, dtype=F32).reshape(-1)
    bad = ~np.isfinite(vector)
    if bad.any():
        raise RerankError(f"score of candidate {int(np.flatnonzero(bad)[0])} is NaN or infinite")
    return vector


def normalize_scores(scores: FloatArray, how: ScoreNorm) -> FloatArray:
    """Per-request normalisation, so one γ means the same trade-off for every request."""
    if how is ScoreNorm.NONE or scores.size == 0:
        return np.array(scores, dtype=F32)
    if how is ScoreNorm.MINMAX:
        low, high = float(scores.min()), float(scores.max())
        return ((scores - low) / (high - low) if high > low else np.zeros_like(scores)).astype(F32)
    # In float64 and with plain reductions (ndarray.mean/std wrap several calls each): per request
    # at N≈500 this is a visible share of the whole re-rank.
    centered = scores.astype(np.float64)
    centered -= np.add.reduce(centered) / centered.size
    std = np.sqrt(np.dot(centered, centered) / centered.size)
    if std > 0:
        centered *= 1.0 / std
    return centered.astype(F32)


def unit_rows(matrix: FloatArray, bias: bool = False, norms: FloatArray | None = None) -> FloatArray:
    """Rows scaled to unit length (zero rows stay zero); optionally a constant bias column."""
    if norms is None:
        norms = row_norms(matrix)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    if not bias:
        return np.multiply(matrix, inverse[:, None], dtype=F32)
    out = np.ones((matrix.shape[0], matrix.shape[1] + 1), dtype=F32)
    np.multiply(matrix, inverse[:, None], out=out[:, :-1])
    return out


def check_k(k: int, n: int) -> int:
    if k < 0:
        raise RerankError("k must be ≥ 0")
    return min(int(k), n)


def category_codes(categories: Any, n: int) -> npt.NDArray[np.int64] | None:
    """Integer codes for categories (None or '' means 'no category', code −1)."""
    if categories is None:
        return None
    values = list(categories)
    if len(values) != n:
        raise RerankError(f"{len(values)} categories for {n} candidates")
    index: dict[Any, int] = {}
    codes = np.full(n, -1, dtype=np.int64)
    for i, value in enumerate(values):
        if value is None or value == "":
            continue
        codes[i] = index.setdefault(value, len(index))
    return codes


def flags_vector(flagged: Any, n: int) -> FloatArray | None:
    if flagged is None:
        return None
    vector = np.asarray(flagged, dtype=F32).reshape(-1)
    if vector.shape[0] != n:
        raise RerankError(f"{vector.shape[0]} flags for {n} candidates")
    return np.asarray(vector != 0, dtype=F32)
