"""A semi-synthetic conversion funnel from MovieLens-100K.

Impressions are each user's rated items plus as many sampled unrated ones (shown, not engaged);
click = rating ≥ 4; conversion = rating 5, kept for a hashed 30% of those (sparse, as conversions
are). Each impression gets a surface (home feed, search, related) and the user's last 10 positives
before it as history. Split by time: the last 20% of timestamps are the test period.

No feature uses an event from the test period or from the row's own time onwards: item popularity
counts clicks strictly before min(row time, split time), and a test row's history is the user's
last positives of the training period (an earlier version counted popularity over every
impression, test period included, which by itself scored a test conversion AUC of 0.755).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tools.inference.features import SURFACES, FeatureSchema
from tools.inference.training import Arrays

HISTORY = 10


def _read(folder: Path, name: str, encoding: str = "utf-8") -> list[list[str]]:
    lines = (folder / name).read_text(encoding=encoding).splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


@dataclass(frozen=True)
class Funnel:
    schema: FeatureSchema
    train: Arrays
    test: Arrays
    rates: dict[str, float]
    split_ts: int
    # Per impression, in time order (train rows then test rows): the time of the latest event any
    # of its features was computed from (−1: none), and the impression's own time.
    feature_latest_event: np.ndarray[Any, Any]
    row_ts: np.ndarray[Any, Any]


def movielens_funnel(folder: Path, seed: int = 0) -> tuple[FeatureSchema, Arrays, Arrays, dict[str, float]]:
    funnel = movielens(folder, seed)
    return funnel.schema, funnel.train, funnel.test, funnel.rates


def movielens(folder: Path, seed: int = 0) -> Funnel:
    rng = np.random.default_rng(seed)
    inter = np.array([[int(r[0]), int(r[1]), float(r[2]), int(r[3])] for r in _read(folder, "ml-100k.inter")])
    users, items = int(inter[:, 0].max()) + 1, int(inter[:, 1].max()) + 1
    genre = np.zeros(items, dtype=np.int64)
    year = np.zeros(items, dtype=np.int64)
    genre_names: dict[str, int] = {}
    for row in _read(folder, "ml-100k.item", "latin-1"):
        item_id = int(row[0])
        first = row[-1].split()[0] if row[-1].strip() else "unknown"
        genre[item_id] = genre_names.setdefault(first, len(genre_names) + 1)
        released = row[2].strip() if len(row) > 2 else ""
        year[item_id] = min(max(int(released) - 1920, 0) // 10 + 1, 9) if released.isdigit() else 0
    user_features = np.zeros((users, 3), dtype=np.int64)  # age bucket, gender, occupation
    occupations: dict[str, int] = {}
    user_file = folder / "ml-100k.user"
    if user_file.exists():
        for row in _read(folder, "ml-100k.user"):
            u = int(row[0])
            user_features[u] = [
                min(int(row[1]) // 10, 7) + 1,
                1 if row[2] == "M" else 2,
                occupations.setdefault(row[3], len(occupations) + 1),
            ]
    # Impressions: every rating, plus one unrated item per rating (shown, not engaged).
    shown = inter.copy()
    negatives = np.column_stack([inter[:, 0], rng.integers(1, items, len(inter)), np.zeros(len(inter)), inter[:, 3]])
    rated = {(int(u), int(i)) for u, i in inter[:, :2]}
    keep = np.array([(int(u), int(i)) not in rated for u, i in negatives[:, :2]])
    impressions = np.concatenate([shown, negatives[keep]])
    impressions = impressions[np.lexsort((impressions[:, 1], impressions[:, 3]))]  # by time
    user, item, rating, ts = (
        impressions[:, 0].astype(int),
        impressions[:, 1].astype(int),
        impressions[:, 2],
        impressions[:, 3].astype(np.int64),
    )
    click = (rating >= 4).astype(np.float32)
    keep_conv = np.asarray([hash((int(u), int(i))) % 10 for u, i in zip(user, item, strict=True)]) < 3
    conversion = ((rating == 5) & keep_conv).astype(np.float32)
    surface = ((user * 31 + item * 17) % len(SURFACES)).astype(np.int64)
    # The split comes first: every feature of a row is computed from events strictly before
    # min(the row's time, the split time), so nothing a test row sees happened in the test period.
    cut = int(np.quantile(ts, 0.8))
    asof = np.minimum(ts, cut)
    history, history_latest = _histories(user, item, click, ts, cut)
    popularity, popularity_latest = _popularity(item, click, ts, asof)
    arrays = Arrays(
        user_cat=np.column_stack([user, user_features[user]]).astype(np.int64),
        user_dense=np.zeros((len(user), 0), dtype=np.float32),
        history=history,
        surface=surface,
        item_cat=np.column_stack([item, genre[item], year[item]]).astype(np.int64),
        item_dense=np.log1p(popularity).astype(np.float32).reshape(-1, 1) / 6,
        click=click,
        conversion=conversion,
        ts=ts,
    )
    schema = FeatureSchema(
        user_categorical={"user_id": users, "age_bucket": 9, "gender": 3, "occupation": len(occupations) + 2},
        item_categorical={"item_id": items, "genre": len(genre_names) + 2, "decade": 10},
        item_dense=["popularity"],
        history_length=HISTORY,
    )
    train_idx, test_idx = np.where(ts < cut)[0], np.where(ts >= cut)[0]
    rates = {
        "impressions": float(len(user)),
        "click_rate": float(click.mean()),
        "conversion_rate": float(conversion.mean()),
        "conversions_per_click": float(conversion.sum() / click.sum()),
    }
    return Funnel(
        schema=schema,
        train=arrays.take(train_idx),
        test=arrays.take(test_idx),
        rates=rates,
        split_ts=cut,
        feature_latest_event=np.maximum(history_latest, popularity_latest),
        row_ts=ts,
    )


def _histories(
    user: np.ndarray[Any, Any],
    item: np.ndarray[Any, Any],
    click: np.ndarray[Any, Any],
    ts: np.ndarray[Any, Any],
    cut: int,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Each row's user's last positives strictly before min(row time, split time), and the time of
    the latest one used (−1 when none). Rows sharing a timestamp do not see each other's clicks."""
    history = np.zeros((len(user), HISTORY), dtype=np.int64)
    latest = np.full(len(user), -1, dtype=np.int64)
    recent: dict[int, list[tuple[int, int]]] = {}
    start = 0
    while start < len(user):
        end = start
        while end + 1 < len(user) and ts[end + 1] == ts[start]:
            end += 1
        for n in range(start, end + 1):  # read first, for the whole timestamp
            past = recent.get(int(user[n]), [])
            if past:
                history[n, -len(past) :] = [i for i, _ in past]
                latest[n] = past[-1][1]
        if ts[start] < cut:  # then record this timestamp's clicks, training period only
            for n in range(start, end + 1):
                if click[n]:
                    u = int(user[n])
                    recent[u] = [*recent.get(u, []), (int(item[n]), int(ts[n]))][-HISTORY:]
        start = end + 1
    return history, latest


def _popularity(
    item: np.ndarray[Any, Any], click: np.ndarray[Any, Any], ts: np.ndarray[Any, Any], asof: np.ndarray[Any, Any]
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Clicks on each row's item strictly before the row's `asof`, and the latest such click's time."""
    clicked = click > 0
    keys = np.sort(item[clicked].astype(np.int64) * _SPAN + ts[clicked])
    base = item.astype(np.int64) * _SPAN
    upto = np.searchsorted(keys, base + asof, side="left")
    count = upto - np.searchsorted(keys, base, side="left")
    latest = np.where(count > 0, keys[np.maximum(upto - 1, 0)] - base, -1)
    return count.astype(np.float64), latest.astype(np.int64)


_SPAN = np.int64(1) << 40  # larger than any Unix timestamp in seconds


def arrays_from_parquet(path: Path, schema: FeatureSchema) -> Arrays:
    """An impressions file: the schema's user/item columns, `history` (list of item ids), `surface`
    (name), `click`, `conversion` (0/1) and `ts`."""
    import duckdb

    from tools.inference.features import InferenceError

    con = duckdb.connect()
    try:
        columns = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()}
    except duckdb.Error as exc:
        raise InferenceError("bad_data", f"{path}: {str(exc).splitlines()[0]}") from None
    needed = [
        *schema.user_categorical,
        *schema.user_dense,
        *schema.item_categorical,
        *schema.item_dense,
        "history",
        "surface",
        "click",
        "conversion",
        "ts",
    ]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise InferenceError("missing_feature", f"{path} lacks columns: {', '.join(missing)}")
    data = con.execute(f"SELECT * FROM read_parquet('{path}') ORDER BY ts").fetchnumpy()
    n = len(data["ts"])
    history = np.zeros((n, schema.history_length), dtype=np.int64)
    for row, items in enumerate(data["history"]):
        recent = list(items or [])[-schema.history_length :]
        if recent:
            history[row, -len(recent) :] = recent
    surfaces = {name: i for i, name in enumerate(schema.surfaces)}
    return Arrays(
        user_cat=np.column_stack([data[c] for c in schema.user_categorical]).astype(np.int64),
        user_dense=np.column_stack([data[c] for c in schema.user_dense]).astype(np.float32)
        if schema.user_dense
        else np.zeros((n, 0), dtype=np.float32),
        history=history,
        surface=np.array([surfaces.get(str(s), 0) for s in data["surface"]], dtype=np.int64),
        item_cat=np.column_stack([data[c] for c in schema.item_categorical]).astype(np.int64),
        item_dense=np.column_stack([data[c] for c in schema.item_dense]).astype(np.float32)
        if schema.item_dense
        else np.zeros((n, 0), dtype=np.float32),
        click=np.asarray(data["click"], dtype=np.float32),
        conversion=np.asarray(data["conversion"], dtype=np.float32),
        ts=np.asarray(data["ts"]),
    )
