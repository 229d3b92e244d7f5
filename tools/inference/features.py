"""The feature schema of a conversion model and the encoding of requests against it.

The schema is part of the model artifact, with a hash: a request or a model whose schema does not
match is refused by name, never silently mis-encoded. A request is one user + context + N candidates.
"""

from __future__ import annotations

import hashlib
import json
import math
from itertools import chain
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

SURFACES = ("home_feed", "search", "related")


class InferenceError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FeatureSchema(BaseModel):
    user_categorical: dict[str, int] = Field(description="name → vocabulary size (0 is 'unknown')")
    user_dense: list[str] = Field(default_factory=list)
    history_length: int = Field(10, ge=0, description="Item ids of the user's recent positives")
    item_categorical: dict[str, int]
    item_dense: list[str] = Field(default_factory=list)
    item_id_feature: str = Field("item_id", description="The item categorical that the history refers to")
    surfaces: list[str] = Field(default_factory=lambda: list(SURFACES))

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


class Candidate(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    features: dict[str, float | int] = Field(description="Item-side features named in the model's schema")


class User(BaseModel):
    features: dict[str, float | int]
    history: list[int] = Field(default_factory=list, description="Recent positive item ids, newest last")


class Context(BaseModel):
    surface: str


class Encoded(BaseModel):
    model_config = {"arbitrary_types_allowed": True}

    user_cat: Any  # (1, U) int64
    user_dense: Any  # (1, Du) float32
    history: Any  # (1, H) int64, 0 = padding
    surface: Any  # (1,) int64
    item_cat: Any  # (N, I) int64
    item_dense: Any  # (N, Di) float32


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def clip(value: Any) -> str:
    """A refused value as an error shows it: at most 80 characters of its repr (an integer can be 400 digits)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}… ({len(text)} characters)"


def _categorical(name: str, value: Any, size: int, where: str) -> int:
    fractional = isinstance(value, float) and not value.is_integer()  # NaN and infinities too
    if isinstance(value, bool) or not isinstance(value, int | float) or fractional:
        raise InferenceError("wrong_type", f"{where} feature {name!r} must be an integer id, got {clip(value)}")
    index = int(value)
    return index if 0 <= index < size else 0  # unseen ids map to the 'unknown' row


def _dense(name: str, value: Any, where: str) -> float:
    try:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:  # an integer beyond float64
        number = math.nan
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:  # the model reads float32: it would be infinite
        raise InferenceError("wrong_type", f"{where} feature {name!r} must be a finite number, got {clip(value)}")
    return number


def _check_names(given: dict[str, Any], expected: list[str], where: str) -> None:
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    if missing:
        raise InferenceError("missing_feature", f"{where} features missing: {', '.join(missing)}")
    if extra:
        raise InferenceError("extra_feature", f"{where} features not in the model's schema: {', '.join(extra)}")


# Integers up to here are exact in float64: the vectorised path reads ids as float64 and checks them there.
_EXACT = float(2**53)


def _items(schema: FeatureSchema, candidates: list[Candidate]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The candidates' item features as (N, I) int64 ids and (N, Di) float32 values.

    One pass in C over all values when every candidate is well-formed (the usual request: 500 candidates
    in ~0.5 ms instead of ~3.5 ms of per-value Python); anything else (a missing or extra name, a value
    that is not a plain number, a fractional or non-finite id, a non-finite value, an integer beyond
    float64's exact range) takes the per-value path, which refuses it with the same code and message as
    always. Both paths give the same arrays (tests/test_inference.py)."""
    cat_names, dense_names = list(schema.item_categorical), list(schema.item_dense)
    expected = {*cat_names, *dense_names}
    if all(c.features.keys() == expected for c in candidates):
        rows = [[c.features[n] for n in cat_names] for c in candidates]
        values = [[c.features[n] for n in dense_names] for c in candidates]
        if set(map(type, chain.from_iterable(rows))) | set(map(type, chain.from_iterable(values))) <= {int, float}:
            try:
                cat = np.array(rows, dtype=np.float64).reshape(len(candidates), len(cat_names))
                dense = np.array(values, dtype=np.float64).reshape(len(candidates), len(dense_names))
            except OverflowError:  # an integer beyond float64: the per-value path decides, as before
                cat = dense = np.full((1, 1), np.nan)
            if (
                np.isfinite(cat).all()
                and (cat == np.floor(cat)).all()
                and (np.abs(cat) < _EXACT).all()
                and np.isfinite(dense).all()
                and (np.abs(dense) <= _FLOAT32_MAX).all()
            ):
                sizes = np.array([schema.item_categorical[n] for n in cat_names], dtype=np.float64)
                ids = np.where((cat >= 0) & (cat < sizes), cat, 0).astype(np.int64)  # unseen ids → 'unknown'
                return ids, dense.astype(np.float32)
    return _items_checked(schema, candidates)


def _items_checked(
    schema: FeatureSchema, candidates: list[Candidate]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Value by value: names the first candidate and feature that is wrong."""
    item_names = [*schema.item_categorical, *schema.item_dense]
    item_cat = np.zeros((len(candidates), len(schema.item_categorical)), dtype=np.int64)
    item_dense = np.zeros((len(candidates), len(schema.item_dense)), dtype=np.float32)
    for row, candidate in enumerate(candidates):
        _check_names(candidate.features, item_names, f"candidate {candidate.id!r}")
        for col, (name, size) in enumerate(schema.item_categorical.items()):
            item_cat[row, col] = _categorical(name, candidate.features[name], size, f"candidate {candidate.id!r}")
        for col, name in enumerate(schema.item_dense):
            item_dense[row, col] = _dense(name, candidate.features[name], f"candidate {candidate.id!r}")
    return item_cat, item_dense


def encode(schema: FeatureSchema, user: User, context: Context, candidates: list[Candidate]) -> Encoded:
    if context.surface not in schema.surfaces:
        raise InferenceError("unknown_surface", f"surface {context.surface!r}; known: {', '.join(schema.surfaces)}")
    _check_names(user.features, [*schema.user_categorical, *schema.user_dense], "user")
    user_cat = [_categorical(n, user.features[n], size, "user") for n, size in schema.user_categorical.items()]
    user_dense = [_dense(n, user.features[n], "user") for n in schema.user_dense]
    items = schema.item_categorical[schema.item_id_feature]
    history = [_categorical("history", h, items, "user") for h in user.history[-schema.history_length :]]
    history = [0] * (schema.history_length - len(history)) + history
    item_cat, item_dense = _items(schema, candidates)
    return Encoded(
        user_cat=np.array([user_cat], dtype=np.int64),
        user_dense=np.array([user_dense], dtype=np.float32).reshape(1, len(user_dense)),
        history=np.array([history], dtype=np.int64).reshape(1, schema.history_length),
        surface=np.array([schema.surfaces.index(context.surface)], dtype=np.int64),
        item_cat=item_cat,
        item_dense=item_dense,
    )
