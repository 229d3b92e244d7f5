"""BM25 (Okapi) over a sparse term matrix: lexical recall for names a sentence model blurs.

Identifiers are split (`ad_delivery_daily` → ad, delivery, daily, and the whole name), tokens are
lower-cased and lightly stemmed (plural `s`), and common English words are dropped.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from scipy import sparse

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:_[A-Za-z0-9]+)*")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
# fmt: off
_QUESTION_FILLER = (
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "how", "i", "in", "is", "it",
    "its", "me", "my", "of", "on", "or", "per", "show", "tell", "that", "the", "their", "them", "there", "these",
    "this", "to", "was", "we", "what", "when", "where", "which", "who", "why", "with", "would", "you", "your",
    "give", "list", "find", "get", "many", "much", "each", "all", "any", "do", "does", "did", "can", "could",
    "should", "one"
)
# Time-window filler: "the last two weeks" says when, not what.
_TIME_FILLER = (
    "last", "past", "previous", "recent", "recently", "ago", "since", "until", "till", "between", "during", "two",
    "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve", "this", "year", "month", "week",
    "day", "today", "yesterday"
)
# fmt: on
STOPWORDS = frozenset((*_QUESTION_FILLER, *_TIME_FILLER))
_ADVERBS = {"daily": "day", "weekly": "week", "monthly": "month", "yearly": "year", "hourly": "hour"}


def _stem(token: str) -> str:
    if token in _ADVERBS:
        return _ADVERBS[token]
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN.finditer(text):
        word = match.group()
        parts = [p for piece in word.split("_") for p in _CAMEL.split(piece) if p]
        lowered = [p.lower() for p in parts]
        if len(lowered) > 1:
            tokens.append(word.lower())
        tokens.extend(_stem(p) for p in lowered if p not in STOPWORDS)
    return tokens


class BM25:
    def __init__(self, documents: list[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.vocabulary: dict[str, int] = {}
        rows: list[int] = []
        cols: list[int] = []
        values: list[float] = []
        lengths = np.zeros(len(documents), dtype=np.float32)
        for row, document in enumerate(documents):
            counts: dict[int, int] = {}
            tokens = tokenize(document)
            lengths[row] = len(tokens)
            for token in tokens:
                column = self.vocabulary.setdefault(token, len(self.vocabulary))
                counts[column] = counts.get(column, 0) + 1
            rows.extend([row] * len(counts))
            cols.extend(counts)
            values.extend(counts.values())
        n = max(len(documents), 1)
        tf = sparse.csr_matrix(
            (values, (rows, cols)), shape=(len(documents), max(len(self.vocabulary), 1)), dtype=np.float32
        )
        df = np.bincount(np.asarray(cols, dtype=np.int64), minlength=tf.shape[1]).astype(np.float32)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        average = float(lengths.mean()) if len(documents) else 1.0
        norm = k1 * (1 - b + b * lengths / max(average, 1e-9))
        # Precompute the per-entry BM25 weight: tf·(k1+1)/(tf + norm_row).
        tf = tf.tocoo()
        weights = tf.data * (k1 + 1) / (tf.data + norm[tf.row])
        self.matrix: Any = sparse.csc_matrix((weights, (tf.row, tf.col)), shape=tf.shape, dtype=np.float32)
        self.size = len(documents)

    def scores(self, query: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        columns = [self.vocabulary[t] for t in dict.fromkeys(tokenize(query)) if t in self.vocabulary]
        if not columns or self.size == 0:
            return np.zeros(self.size, dtype=np.float32)
        sub = self.matrix[:, columns]
        return np.asarray(sub @ self.idf[columns], dtype=np.float32).ravel()
