"""A semi-synthetic conversion funnel from MovieLens-100K.

Impressions are each user's rated items plus as many sampled unrated ones (shown, not engaged);
click = rating ≥ 4; conversion = rating 5, kept for a hashed 30% of those (sparse, as conversions
are). Each impression gets a surface (home feed, search, related) and the user's last 10 positives
before it as history. Split by time: the last 20% of timestamps are the test period.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.inference.features import SURFACES, FeatureSchema
from tools.inference.training import Arrays

HISTORY = 10


def _read(folder: Path, name: str, encoding: str = "utf-8") -> list[list[str]]:
    lines = (folder / name).read_text(encoding=encoding).splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def movielens_funnel(folder: Path, seed: int = 0) -> tuple[FeatureSchema, Arrays, Arrays, dict[str, float]]:
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
        impressions[:, 3],
    )
    click = (rating >= 4).astype(np.float32)
    keep_conv = np.asarray([hash((int(u), int(i))) % 10 for u, i in zip(user, item, strict=True)]) < 3
    conversion = ((rating == 5) & keep_conv).astype(np.float32)
    surface = ((user * 31 + item * 17) % len(SURFACES)).astype(np.int64)
    # History: the user's last positives strictly before this impression (time-ordered scan).
    history = np.zeros((len(user), HISTORY), dtype=np.int64)
    recent: dict[int, list[int]] = {}
    for n, (u, i, c) in enumerate(zip(user, item, click, strict=True)):
        past = recent.get(u, [])
        if past:
            history[n, -len(past) :] = past
        if c:
            recent[u] = ([*past, i])[-HISTORY:]
    popularity = np.bincount(item, weights=click, minlength=items)
    arrays = Arrays(
        user_cat=np.column_stack([user, user_features[user]]).astype(np.int64),
        user_dense=np.zeros((len(user), 0), dtype=np.float32),
        history=history,
        surface=surface,
        item_cat=np.column_stack([item, genre[item], year[item]]).astype(np.int64),
        item_dense=np.log1p(popularity[item]).astype(np.float32).reshape(-1, 1) / 6,
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
    cut = np.quantile(ts, 0.8)
    train_idx, test_idx = np.where(ts < cut)[0], np.where(ts >= cut)[0]
    rates = {
        "impressions": float(len(user)),
        "click_rate": float(click.mean()),
        "conversion_rate": float(conversion.mean()),
        "conversions_per_click": float(conversion.sum() / click.sum()),
    }
    return schema, arrays.take(train_idx), arrays.take(test_idx), rates


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
