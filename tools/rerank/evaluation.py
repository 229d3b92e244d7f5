"""`bastion eval rerank`: diversity versus accuracy on MovieLens-100K, side by side with pyversity.

Protocol: each user's latest interactions are held out; candidates are the top-N unseen items of
an item-KNN scorer trained on the rest; item embeddings are the SVD factors of the training
matrix; genres are a second, independent diversity space. Every method re-ranks the same
candidates into a feed of `list_length`; metrics are averaged over users.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.table import Table

from tools.datasets import MOVIELENS_FILES, movielens_100k
from tools.progress import bar
from tools.provenance import data_version, provenance
from tools.rerank import dpp, mmr, ssd

HOLDOUT = 10
CANDIDATES = 100
LIST_LENGTH = 30
TOP = 10
FEED_WINDOW = 5
ILAD_LEVELS = [round(x, 3) for x in np.arange(0.525, 0.7001, 0.025)]
DIMS = 32


# --- data --------------------------------------------------------------------------------------


@dataclass
class Dataset:
    train: np.ndarray[Any, Any]  # users × items, 1 where seen in training
    test: list[np.ndarray[Any, Any]]  # held-out item indices per user
    genres: np.ndarray[Any, Any]  # items × genres, 0/1
    genre_names: list[str]


def load(folder: Path, holdout: int = HOLDOUT) -> Dataset:
    rows = [line.split("\t") for line in (folder / "ml-100k.inter").read_text().splitlines()[1:]]
    users = {u: i for i, u in enumerate(sorted({r[0] for r in rows}, key=int))}
    items = {m: i for i, m in enumerate(sorted({r[1] for r in rows}, key=int))}
    by_user: dict[int, list[tuple[float, int]]] = {}
    for user, item, _rating, stamp in rows:
        by_user.setdefault(users[user], []).append((float(stamp), items[item]))
    train = np.zeros((len(users), len(items)), np.float32)
    test: list[np.ndarray[Any, Any]] = []
    for u in range(len(users)):
        history = sorted(by_user[u])
        cut = len(history) - holdout
        train[u, [i for _, i in history[:cut]]] = 1.0
        test.append(np.array([i for _, i in history[cut:]], dtype=np.int64))
    genre_of: dict[int, list[str]] = {}
    names: set[str] = set()
    for line in (folder / "ml-100k.item").read_text(encoding="latin-1").splitlines()[1:]:
        parts = line.split("\t")
        if parts[0] in items:
            labels = parts[3].split() if len(parts) > 3 else []
            genre_of[items[parts[0]]] = labels
            names.update(labels)
    genre_names = sorted(names)
    genres = np.zeros((len(items), len(genre_names)), np.float32)
    for column, labels in genre_of.items():
        for label in labels:
            genres[column, genre_names.index(label)] = 1.0
    return Dataset(train, test, genres, genre_names)


def candidates_and_embeddings(
    data: Dataset, n_candidates: int = CANDIDATES, dims: int = DIMS
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Item-KNN scores (cosine, over training users), top-N unseen per user; SVD item factors.

    The factors are those of the raw (uncentred) training matrix with 32 dimensions: there a
    relevance-only top-10 has ILAD ≈ 0.50 and ten random candidates ≈ 0.71, so ILAD levels up
    to 0.7 span the whole range a re-ranker can reach.
    """
    R = data.train
    norms = np.linalg.norm(R, axis=0)
    Rn = R / np.where(norms > 0, norms, 1.0)
    sim = Rn.T @ Rn
    np.fill_diagonal(sim, 0.0)
    scores = R @ sim
    scores[R > 0] = -np.inf
    top = np.argsort(-scores, axis=1)[:, :n_candidates]
    top_scores = np.take_along_axis(scores, top, axis=1)
    _, singular, vt = np.linalg.svd(R, full_matrices=False)
    factors = (vt[:dims].T * np.sqrt(singular[:dims])).astype(np.float32)
    return top, top_scores.astype(np.float32), factors


# --- metrics -----------------------------------------------------------------------------------


def _pairwise_cosine_distance(vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    distances: np.ndarray[Any, Any] = 1.0 - unit @ unit.T
    return distances


def _mean_offdiag(m: np.ndarray[Any, Any]) -> float:
    n = m.shape[0]
    return float((m.sum() - np.trace(m)) / (n * (n - 1))) if n > 1 else 0.0


def metrics(
    ranked: np.ndarray[Any, Any], relevant: set[int], factors: np.ndarray[Any, Any], genres: np.ndarray[Any, Any]
) -> dict[str, float]:
    top = ranked[:TOP]
    gains = np.array([1.0 if i in relevant else 0.0 for i in top])
    discounts = 1.0 / np.log2(np.arange(2, len(top) + 2))
    ideal = discounts[: min(len(relevant), len(top))].sum()
    dist = _pairwise_cosine_distance(factors[top])
    off = dist[~np.eye(len(top), dtype=bool)]
    full = _pairwise_cosine_distance(factors[ranked])
    windows = [
        _mean_offdiag(full[s : s + FEED_WINDOW, s : s + FEED_WINDOW]) for s in range(len(ranked) - FEED_WINDOW + 1)
    ]
    g = genres[top]
    union = np.maximum(g[:, None, :], g[None, :, :]).sum(-1)
    inter = np.minimum(g[:, None, :], g[None, :, :]).sum(-1)
    jaccard = 1.0 - np.divide(inter, union, out=np.ones_like(inter), where=union > 0)
    return {
        "ndcg": float((gains * discounts).sum() / ideal) if ideal > 0 else 0.0,
        "ilad": float(off.mean()),
        "ilmd": float(off.min()),
        "wilad": float(np.mean(windows)),
        "genre_coverage": float((g.max(axis=0) > 0).sum() / genres.shape[1]),
        "genre_ilad": _mean_offdiag(jaccard),
    }


# --- methods and sweep -------------------------------------------------------------------------

Reranker = Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any], int], list[int]]


@dataclass
class Config:
    family: str  # "ours SSD", "pyversity SSD", ...
    label: str
    run: Reranker
    ours: bool
    results: dict[str, float] = field(default_factory=dict)


def _ours(method: Callable[..., Any], **params: Any) -> Reranker:
    def run(X: np.ndarray[Any, Any], s: np.ndarray[Any, Any], k: int) -> list[int]:
        indices: list[int] = method(X, s, k, **params).indices
        return indices

    return run


def _pyversity(strategy: str, **params: Any) -> Reranker:
    from pyversity import diversify

    def run(X: np.ndarray[Any, Any], s: np.ndarray[Any, Any], k: int) -> list[int]:
        return [int(i) for i in diversify(X, s, k, strategy=strategy, **params).indices]

    return run


def _relevance(X: np.ndarray[Any, Any], s: np.ndarray[Any, Any], k: int) -> list[int]:
    return [int(i) for i in np.argsort(-s, kind="stable")[:k]]


# pyversity's SSD at diversity d picks exactly what ours with a bias column picks at γ = d/(1−d)
# (tested), so our sweep includes those γ and our frontier holds every point of theirs.
DIVERSITIES = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def configurations() -> list[Config]:
    configs = [Config("relevance", "top-k", _relevance, ours=False)]
    base = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 20.0)
    gammas = sorted({*base, *(round(d / (1 - d), 4) for d in DIVERSITIES)})
    # Window FEED_WINDOW − 1 is the metric's own reach: a windowed-ILAD window holds each item with
    # its FEED_WINDOW − 1 predecessors. pyversity's SSD gets the same windows.
    windows = (FEED_WINDOW - 1, FEED_WINDOW, 10, LIST_LENGTH)
    for window in windows:
        for gamma in gammas:
            configs.append(Config(f"ours SSD w={window}", f"γ={gamma}", _ours(ssd, gamma=gamma, window=window), True))
            configs.append(
                Config(
                    f"ours SSD+bias w={window}", f"γ={gamma}", _ours(ssd, gamma=gamma, window=window, bias=True), True
                )
            )
    for theta in (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 4.0):
        configs.append(Config("ours DPP", f"θ={theta}", _ours(dpp, theta=theta), ours=False))
    for lam in (0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1):
        configs.append(Config("ours MMR", f"λ={lam}", _ours(mmr, lambda_=lam), ours=False))
    for diversity in DIVERSITIES:
        configs.append(Config("pyversity MMR", f"div={diversity}", _pyversity("mmr", diversity=diversity), False))
        configs.append(Config("pyversity DPP", f"div={diversity}", _pyversity("dpp", diversity=diversity), False))
        for window in windows:
            configs.append(
                Config(
                    f"pyversity SSD w={window}",
                    f"div={diversity}",
                    _pyversity("ssd", diversity=diversity, window=window),
                    False,
                )
            )
    return configs


Point = TypeVar("Point", bound=tuple[Any, ...])


def pareto(points: list[Point]) -> list[Point]:
    """The points (x, y, …) that no other point beats on both x and y, in ascending x."""
    front: list[Point] = []
    best_y = -np.inf
    for point in sorted(points, key=lambda p: (-p[0], -p[1])):  # high x to low x
        if point[1] > best_y:  # keep the points that raise the best y
            front.append(point)
            best_y = point[1]
    return front[::-1]


def frontier(points: list[Point]) -> list[Point]:
    """The Pareto points on their upper concave hull, in ascending x.

    Serving one setting to some users and another to the rest reaches every mix of the two, so
    the achievable frontier is the concave hull, as with ROC curves. Joining neighbouring Pareto
    points instead would let a finer grid lower a method's frontier: a setting below the chord
    of its neighbours would replace that chord.
    """
    hull: list[Point] = []
    for point in pareto(points):
        while len(hull) >= 2 and _on_or_below_chord(hull[-1], hull[-2], point):
            hull.pop()
        hull.append(point)
    return hull


def _on_or_below_chord(middle: tuple[Any, ...], left: tuple[Any, ...], right: tuple[Any, ...]) -> bool:
    cross = (middle[0] - left[0]) * (right[1] - left[1]) - (middle[1] - left[1]) * (right[0] - left[0])
    return bool(cross >= 0)


def interpolate_on_frontier(
    configs: list[Config],
    per_user: dict[str, np.ndarray[Any, Any]],
    x_key: str,
    y_key: str,
    level: float,
    *,
    ours: bool,
) -> np.ndarray[Any, Any] | None:
    """Per-user `y` at `x = level` on the pool's frontier (max y for x ≥ level, settings mixed).

    Between the two frontier settings around `level` the per-user values are mixed with one
    weight (what serving the two settings to shares of users reaches), so paired differences and
    their standard errors stay meaningful. Adding a setting to a pool never lowers its frontier.
    """
    means = {key: np.asarray([c.results[key] for c in configs]) for key in (x_key, y_key)}
    mix = frontier_mix(means, [c.ours == ours for c in configs], x_key, y_key, level)
    return None if mix is None else mixed(per_user[y_key], mix)


Mix = tuple[int, int, float]  # two settings (config rows) and the share of users served the second


def frontier_mix(
    means: dict[str, np.ndarray[Any, Any]], pool: list[bool], x_key: str, y_key: str, level: float
) -> Mix | None:
    """The mix of two frontier settings of `pool` (rows where True) that reaches `x = level` with
    the highest `y`, from per-setting means; None beyond the frontier's reach."""
    points = [(float(means[x_key][i]), float(means[y_key][i]), i) for i, keep in enumerate(pool) if keep]
    frontier_points = frontier(points)  # ascending in x, descending in y
    if not frontier_points or level > frontier_points[-1][0] + 1e-12:  # a mean's last bit is not reach
        return None
    if level <= frontier_points[0][0]:
        first = frontier_points[0][2]
        return (first, first, 0.0)
    if level >= frontier_points[-1][0]:
        last = frontier_points[-1][2]
        return (last, last, 0.0)
    for (x0, _y0, i0), (x1, _y1, i1) in itertools.pairwise(frontier_points):
        if x0 <= level <= x1:
            return (i0, i1, (level - x0) / (x1 - x0) if x1 > x0 else 1.0)
    return None


def mixed(values: np.ndarray[Any, Any], mix: Mix, users: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
    """Per-user values (settings × users) under a mix, for `users` (default: all)."""
    i0, i1, w = mix
    cols = slice(None) if users is None else users
    out: np.ndarray[Any, Any] = (1 - w) * values[i0, cols] + w * values[i1, cols]
    return out


def heldout(
    configs: list[Config],
    per_user: dict[str, np.ndarray[Any, Any]],
    x_key: str,
    y_key: str,
    levels: list[float],
    split_seed: int,
) -> list[dict[str, Any]]:
    """Settings chosen on half the users, compared on the other half.

    Users are split at random (`split_seed`). On the validation half each pool's frontier is fitted
    and, per level, the mix of settings that reaches it; those same mixes then serve the test half,
    where y is compared paired over users. x on the test half is reported too: it lands near, not
    exactly on, the level the mix was chosen for.
    """
    val, test = split_users(per_user[y_key].shape[1], split_seed)
    means = {key: per_user[key][:, val].mean(axis=1) for key in (x_key, y_key)}
    rows: list[dict[str, Any]] = []
    for level in levels:
        mine = frontier_mix(means, [c.ours for c in configs], x_key, y_key, level)
        theirs = frontier_mix(means, [not c.ours for c in configs], x_key, y_key, level)
        if mine is None or theirs is None:
            rows.append({"level": level, "verdict": "n/a", "ok": True})
            continue
        y_mine, y_theirs = mixed(per_user[y_key], mine, test), mixed(per_user[y_key], theirs, test)
        diff = y_mine - y_theirs
        delta, se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
        verdict = _verdict(delta, se)
        rows.append(
            {
                "level": level,
                "ours": float(y_mine.mean()),
                "reference": float(y_theirs.mean()),
                "ours_x": float(mixed(per_user[x_key], mine, test).mean()),
                "reference_x": float(mixed(per_user[x_key], theirs, test).mean()),
                "ours_settings": [configs[mine[0]].family + " " + configs[mine[0]].label,
                                  configs[mine[1]].family + " " + configs[mine[1]].label, mine[2]],
                "reference_settings": [configs[theirs[0]].family + " " + configs[theirs[0]].label,
                                       configs[theirs[1]].family + " " + configs[theirs[1]].label, theirs[2]],
                "delta": delta,
                "se": se,
                "verdict": verdict,
                "ok": verdict != "WORSE",
            }
        )  # fmt: skip
    return rows


SPLIT_SEEDS = (0, 1, 2, 3, 4)


def split_users(n: int, seed: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """A random half of `n` users (validation) and the rest (test), each in ascending order."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2 :])


def ndcg_levels_for(ndcg: Any, ours: Any) -> list[float]:
    """Five nDCG levels from 0.025 to 0.005 below the lower of the two pools' best nDCG.

    Levels stop short of the top: there each frontier is a single setting (on MovieLens the same
    one, pyversity's SSD at d=0.5 being ours at γ=1), not a trade-off. Rounding down keeps every
    level within both frontiers' reach. `ndcg`: per-setting means; `ours`: which settings are ours."""
    ndcg, ours = np.asarray(ndcg), np.asarray(ours, dtype=bool)
    top = min(float(ndcg[ours].max()), float(ndcg[~ours].max()))
    return [math.floor(float(y) * 1e4) / 1e4 for y in np.linspace(top - 0.025, top - 0.005, 5)]


def _render_heldout(
    console: Console, by_split: dict[int, list[dict[str, Any]]], x_key: str, fmt: str, title: str
) -> None:
    table = Table(title=title)
    for col in (f"{x_key} level", "ours (test half)", "reference (test half)", f"{x_key} reached: ours / ref",
                "Δ ± s.e.", "verdict", "verdicts, all splits"):  # fmt: skip
        table.add_column(col, justify="right")
    first, *_ = by_split
    for n, row in enumerate(by_split[first]):
        tally: dict[str, int] = {}
        for rows in by_split.values():
            if n < len(rows):
                tally[rows[n]["verdict"]] = tally.get(rows[n]["verdict"], 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()))
        if row["verdict"] == "n/a":
            table.add_row(f"{row['level']:.3f}", "—", "—", "—", "—", "n/a", summary)
            continue
        table.add_row(
            f"{row['level']:.3f}",
            format(row["ours"], fmt),
            format(row["reference"], fmt),
            f"{row['ours_x']:.4f} / {row['reference_x']:.4f}",
            f"{row['delta']:+.4f} ± {row['se']:.4f}",
            row["verdict"],
            summary,
        )
    console.print(table)


def _verdict(delta: float, se: float) -> str:
    return "better" if delta > 2 * se else ("tie" if delta >= -2 * se else "WORSE")


def evaluate(cache: Path, users: int | None, console: Console) -> dict[str, Any]:
    folder = movielens_100k(cache)
    data = load(folder)
    top, top_scores, factors = candidates_and_embeddings(data)
    user_ids = np.arange(len(data.test))
    if users is not None and users < len(user_ids):
        user_ids = np.random.default_rng(0).choice(user_ids, size=users, replace=False)
    configs = configurations()
    keys = ("ndcg", "ilad", "ilmd", "wilad", "genre_coverage", "genre_ilad")
    per_user = {key: np.zeros((len(configs), len(user_ids))) for key in keys}
    with bar(console) as progress:
        task = progress.add_task("re-ranking MovieLens-100K feeds", total=len(user_ids))
        for col, u in enumerate(user_ids):
            X = factors[top[u]]
            s = top_scores[u]
            relevant = {int(i) for i in data.test[u]}
            for row, c in enumerate(configs):
                order = c.run(X, s, LIST_LENGTH)
                m = metrics(top[u][np.asarray(order, dtype=np.int64)], relevant, factors, data.genres)
                for key in keys:
                    per_user[key][row, col] = m[key]
            progress.advance(task)
    for row, c in enumerate(configs):
        c.results = {key: float(per_user[key][row].mean()) for key in keys}
    stamp = provenance(
        [0], {"movielens_100k": data_version(folder / f for f in MOVIELENS_FILES)},
        users=len(user_ids), user_sample_seed=0 if users is not None else None, split_seeds=list(SPLIT_SEEDS),
    )  # fmt: skip
    return {"configs": configs, "users": len(user_ids), "items": data.train.shape[1], "per_user": per_user,
            "provenance": stamp}  # fmt: skip


def report(outcome: dict[str, Any], out_dir: Path, console: Console) -> dict[str, Any]:
    configs: list[Config] = outcome["configs"]
    table = Table(
        title=f"Re-ranking MovieLens-100K ({outcome['users']} users, {CANDIDATES} candidates, feed of {LIST_LENGTH})"
    )
    for col in (
        "method",
        "setting",
        "nDCG@10",
        "ILAD@10",
        "ILMD@10",
        f"windowed ILAD (w={FEED_WINDOW})",
        "genre cov.",
        "genre ILAD",
    ):
        table.add_column(col, justify="left" if col in ("method", "setting") else "right")
    for c in configs:
        r = c.results
        table.add_row(
            c.family,
            c.label,
            f"{r['ndcg']:.4f}",
            f"{r['ilad']:.3f}",
            f"{r['ilmd']:.3f}",
            f"{r['wilad']:.3f}",
            f"{r['genre_coverage']:.3f}",
            f"{r['genre_ilad']:.3f}",
        )
    console.print(table)

    per_user = outcome["per_user"]
    ours = np.asarray([c.ours for c in configs])

    def compare(x_key: str, y_key: str, levels_: list[float], title: str, fmt: str) -> list[dict[str, Any]]:
        table_ = Table(title=title)
        for col in (x_key + " level", "ours SSD", "best reference", "Δ ± s.e.", "verdict"):
            table_.add_column(col, justify="right")
        rows_: list[dict[str, Any]] = []
        for level in levels_:
            mine = interpolate_on_frontier(configs, per_user, x_key, y_key, level, ours=True)
            theirs = interpolate_on_frontier(configs, per_user, x_key, y_key, level, ours=False)
            if mine is None or theirs is None:
                rows_.append(
                    {
                        "level": level,
                        "ours": None if mine is None else float(mine.mean()),
                        "reference": None if theirs is None else float(theirs.mean()),
                        "verdict": "ours only" if theirs is None and mine is not None else "n/a",
                        "ok": theirs is None,
                    }
                )
                continue
            diff = mine - theirs
            delta, se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
            verdict = _verdict(delta, se)
            rows_.append(
                {
                    "level": level,
                    "ours": float(mine.mean()),
                    "reference": float(theirs.mean()),
                    "delta": delta,
                    "se": se,
                    "verdict": verdict,
                    "ok": verdict != "WORSE",
                }
            )
            table_.add_row(
                f"{level:.3f}",
                format(float(mine.mean()), fmt),
                format(float(theirs.mean()), fmt),
                f"{delta:+.4f} ± {se:.4f}",
                verdict,
            )
        console.print(table_)
        return rows_

    # The headline: settings chosen on a validation half of the users, compared on the other half.
    users = per_user["ndcg"].shape[1]
    validation_ndcg = {s: per_user["ndcg"][:, split_users(users, s)[0]].mean(axis=1) for s in SPLIT_SEEDS}
    heldout_ilad = {s: heldout(configs, per_user, "ilad", "ndcg", ILAD_LEVELS, s) for s in SPLIT_SEEDS}
    heldout_windowed = {
        s: heldout(configs, per_user, "ndcg", "wilad", ndcg_levels_for(validation_ndcg[s], ours), s)
        for s in SPLIT_SEEDS
    }
    _render_heldout(
        console, heldout_ilad, "ilad", ".4f",
        "HELD OUT — nDCG@10 at equal ILAD@10: settings and frontiers chosen on half the users, compared on "
        f"the other half (split seed {SPLIT_SEEDS[0]}; last column: verdicts over {len(SPLIT_SEEDS)} random splits)",
    )  # fmt: skip
    _render_heldout(
        console, heldout_windowed, "ndcg", ".3f",
        f"HELD OUT — windowed ILAD (window {FEED_WINDOW}) at equal nDCG@10 (levels set from the validation half)",
    )  # fmt: skip
    console.print("In-sample (secondary): frontiers fitted and compared on the same users, as before.")
    levels = compare(
        "ilad",
        "ndcg",
        ILAD_LEVELS,
        "in-sample — nDCG@10 at equal ILAD@10 on each frontier: our SSD vs every reference (pyversity "
        "MMR/DPP/SSD, our DPP/MMR); Δ paired over users",
        ".4f",
    )
    windowed = compare(
        "ndcg",
        "wilad",
        ndcg_levels_for([c.results["ndcg"] for c in configs], ours),
        f"in-sample — windowed ILAD (window {FEED_WINDOW}) at equal nDCG@10 on each frontier; Δ paired over users",
        ".3f",
    )

    plot = _plot(configs, out_dir)
    first = SPLIT_SEEDS[0]
    payload = {
        "users": outcome["users"],
        "configs": [{"method": c.family, "setting": c.label, **c.results} for c in configs],
        "note": "differences are paired over users; 'tie' means within two standard errors. Headline: "
        "held out (settings chosen on a random half of the users, compared on the other half)",
        "heldout": {
            "split_seeds": list(SPLIT_SEEDS),
            "ilad_levels": {str(s): rows for s, rows in heldout_ilad.items()},
            "windowed": {str(s): rows for s, rows in heldout_windowed.items()},
            "ndcg_never_worse_split0": all(r["ok"] for r in heldout_ilad[first]),
            "windowed_better_split0": all(r["verdict"] == "better" for r in heldout_windowed[first]),
        },
        "in_sample": {
            "ilad_levels": levels,
            "windowed": windowed,
            "target_ndcg_at_every_ilad_level": all(level["ok"] for level in levels),
            "windowed_ilad_better_at_equal_ndcg": all(w.get("verdict") == "better" for w in windowed),
        },
        "embedding": f"SVD of the training matrix, {DIMS} dimensions",
        "provenance": outcome.get("provenance", {}),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "rerank_eval.json").write_text(json.dumps(payload, indent=2))
    console.print(f"results: {out_dir / 'rerank_eval.json'}  plot: {plot}")
    return payload


# Plot groups: every SSD window and variant pooled into one frontier per implementation, as the
# comparisons pool them; colour says the method, the line style says whose implementation.
PLOT_GROUPS = (
    ("ours SSD (all windows, ± bias)", "ours SSD", "tab:red", "-"),
    ("pyversity SSD (all windows)", "pyversity SSD", "tab:red", "--"),
    ("ours DPP", "ours DPP", "tab:blue", "-"),
    ("pyversity DPP", "pyversity DPP", "tab:blue", "--"),
    ("ours MMR", "ours MMR", "tab:green", "-"),
    ("pyversity MMR", "pyversity MMR", "tab:green", "--"),
)


def _plot(configs: list[Config], out_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    for ax, x_key in zip(axes, ("ilad", "wilad"), strict=True):
        for label, prefix, colour, style in PLOT_GROUPS:
            pts = [(c.results[x_key], c.results["ndcg"]) for c in configs if c.family.startswith(prefix)]
            if not pts:
                continue
            ax.scatter(*zip(*pts, strict=True), s=6, color=colour, alpha=0.2)
            front = frontier(pts)
            ax.plot(*zip(*front, strict=True), style, color=colour, marker="o", markersize=3, label=label)
        base = [(c.results[x_key], c.results["ndcg"]) for c in configs if c.family == "relevance"]
        if base:
            ax.plot(*base[0], "k*", markersize=9, label="relevance only")
        ax.set_ylabel("nDCG@10")
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("ILAD@10 (SVD embedding space)")
    axes[1].set_xlabel(f"windowed ILAD (window {FEED_WINDOW}, feed of {LIST_LENGTH})")
    axes[0].legend(fontsize=8)
    fig.suptitle(
        "Accuracy versus diversity on MovieLens-100K: frontiers, settings mixed across users (dots: every setting)"
    )
    fig.tight_layout()
    path = out_dir / "rerank_pareto.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
