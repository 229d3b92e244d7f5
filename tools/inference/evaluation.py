"""`bastion eval inference`: multi-task vs single-task, parallel vs stacked, on the MovieLens funnel.

Same split (by time) and seed for every configuration. Per task: AUC, log loss, expected
calibration error (after per-surface Platt calibration). `deepctr-torch`'s DCN and DCN-Mix run as
the external reference on the same features (conversion labels: their models are single-task and
uncalibrated). It is in the `eval` extra; torch stays the pinned CPU build (it asks for torch>=2.4).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from tools.datasets import movielens_100k
from tools.inference.contracts import ModelConfig
from tools.inference.data import movielens
from tools.inference.features import FeatureSchema
from tools.inference.training import (
    Arrays,
    TrainSettings,
    auc,
    calibrated,
    evaluate,
    platt_per_surface,
    predict,
    split_by_time,
    task_metrics,
    train,
)
from tools.progress import bar
from tools.provenance import data_version, provenance

USER_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
CONFIGS: dict[str, ModelConfig] = {
    "multi-task ESMM, parallel DCN v2 + MLP (ours)": ModelConfig(),
    "multi-task shared head, parallel": ModelConfig(heads="shared"),
    "single-task conversion, parallel": ModelConfig(heads="single"),
    "multi-task ESMM, stacked DCN v2 → MLP": ModelConfig(structure="stacked"),
    "multi-task ESMM, parallel, mixture of 3 low-rank experts": ModelConfig(experts=3),
}


def fetch(cache: Path) -> Path:
    return movielens_100k(cache, USER_FILES)  # the same recbole-wheel copy the rerank eval uses


# The learning-rate × epoch budget every trained model gets, ours and deepctr-torch's alike: each
# learning rate is trained once (seed 0) for MAX_EPOCHS, scored on validation after every epoch,
# and the best (learning rate, epochs) by validation conversion AUC is what the seeds then train.
LEARNING_RATES = (1e-3, 2e-3, 5e-3)
MAX_EPOCHS = 4
DEEPCTR = {
    "deepctr-torch DCN (matrix), conversion only": "dcn",
    "deepctr-torch DCN-Mix, conversion only": "dcnmix",
}
# Paired comparisons reported with a t-test over seeds: (a, b) → a − b.
PAIRS = (
    ("multi-task ESMM, parallel DCN v2 + MLP (ours)", "multi-task ESMM, stacked DCN v2 → MLP"),
    ("multi-task ESMM, parallel DCN v2 + MLP (ours)", "single-task conversion, parallel"),
    ("multi-task ESMM, parallel DCN v2 + MLP (ours)", "multi-task ESMM, parallel, mixture of 3 low-rank experts"),
    ("multi-task ESMM, parallel DCN v2 + MLP (ours)", "deepctr-torch DCN (matrix), conversion only"),
    ("single-task conversion, parallel", "deepctr-torch DCN (matrix), conversion only"),
)


def run(
    folder: Path,
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4),
    max_epochs: int = MAX_EPOCHS,
    learning_rates: tuple[float, ...] = LEARNING_RATES,
    embedding_init: str = "uniform",
    configs: tuple[str, ...] | None = None,
    console: Console | None = None,
) -> dict[str, Any]:
    """Every configuration on the same data (split by time): the learning rate and epochs selected on
    validation (the latest 10% of the training period), then trained with each seed and scored on the
    test period. Baselines: popularity alone, logistic regression on the same features."""
    funnel = movielens(folder, 0)
    schema, train_set, test_set = funnel.schema, funnel.train, funnel.test
    fit, validation = split_by_time(train_set, TrainSettings().calibration_share)
    chosen = {name: c.model_copy(update={"embedding_init": embedding_init}) for name, c in CONFIGS.items()}
    wanted = [n for n in [*chosen, *DEEPCTR] if configs is None or n in configs]
    results: dict[str, Any] = {
        "rates": funnel.rates, "train_rows": len(train_set), "test_rows": len(test_set),
        "split_ts": funnel.split_ts, "seeds": list(seeds), "embedding_init": embedding_init,
        "budget": {"learning_rates": list(learning_rates), "max_epochs": max_epochs,
                   "selected_on": "validation conversion AUC (latest 10% of the training period), seed 0"},
        "configs": {}, "per_seed": {}, "selected": {}, "baselines": baselines(schema, fit, validation, test_set),
    }  # fmt: skip
    curves: dict[str, Any] = {}
    with bar(console) as progress:
        for name in wanted:
            task = progress.add_task(f"budget: {name}", total=len(learning_rates) * max_epochs)
            scores: dict[tuple[float, int], float] = {}
            for lr in learning_rates:
                try:
                    for epoch, score in _epochs(name, chosen, schema, train_set, fit, validation, lr, max_epochs):
                        scores[(lr, epoch)] = score
                        progress.advance(task)
                except ImportError:
                    results["skipped"] = "deepctr-torch is not installed (`pip install deepctr-torch==0.3.0`)"
                    break
            progress.remove_task(task)
            if not scores:
                continue
            (lr, epochs), best = max(scores.items(), key=lambda kv: kv[1])
            results["selected"][name] = {"learning_rate": lr, "epochs": epochs, "validation_auc": best,
                                         "grid": [[k[0], k[1], v] for k, v in scores.items()]}  # fmt: skip
            task = progress.add_task(f"seeds: {name}", total=len(seeds))
            for seed in seeds:
                settings = TrainSettings(epochs=epochs, learning_rate=lr, seed=seed)
                if name in DEEPCTR:
                    metrics = {"conversion": deepctr_reference(schema, fit, test_set, DEEPCTR[name], settings)}
                else:
                    model, calibration = train(schema, chosen[name], train_set, settings)
                    metrics = evaluate(model, calibration, test_set)
                    if seed == seeds[0]:
                        curves[name] = _reliability(model, calibration, test_set)
                results["per_seed"].setdefault(name, []).append(metrics)
                progress.advance(task)
            progress.remove_task(task)
    for name, runs in results["per_seed"].items():
        results["configs"][name] = {
            task: {k: float(np.mean([r[task][k] for r in runs])) for k in runs[0][task]}
            | {"auc_std": float(np.std([r[task]["auc"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0}
            for task in runs[0]
        }
    results["paired"] = [
        {"a": a, "b": b, **paired_difference(_aucs(results, a), _aucs(results, b))}
        for a, b in PAIRS
        if a in results["per_seed"] and b in results["per_seed"]
    ]
    results["reliability"] = curves
    results["provenance"] = provenance(seeds, {"movielens_100k": data_version(folder / f for f in USER_FILES)},
                                       max_epochs=max_epochs, learning_rates=list(learning_rates),
                                       embedding_init=embedding_init)  # fmt: skip
    return results


def _aucs(results: dict[str, Any], name: str) -> list[float]:
    return [r["conversion"]["auc"] for r in results["per_seed"][name]]


def _epochs(
    name: str,
    configs: dict[str, ModelConfig],
    schema: FeatureSchema,
    train_set: Arrays,
    fit: Arrays,
    validation: Arrays,
    lr: float,
    max_epochs: int,
) -> Iterator[tuple[int, float]]:
    """Validation conversion AUC after each epoch of one training run (seed 0)."""
    if name in DEEPCTR:
        yield from deepctr_epochs(schema, fit, validation, DEEPCTR[name], lr, max_epochs)
        return
    queue: list[tuple[int, float]] = []

    def after(epoch: int, model: Any) -> None:
        queue.append((epoch + 1, auc(validation.conversion, predict(model, validation)[0])))

    # train() holds out the same latest slice (calibration_share) and never fits on it.
    train(schema, configs[name], train_set, TrainSettings(epochs=max_epochs, learning_rate=lr, seed=0), on_epoch=after)
    yield from queue


def baselines(schema: FeatureSchema, fit: Arrays, validation: Arrays, test: Arrays) -> dict[str, Any]:
    """Popularity alone, and an L2 logistic regression on one-hot encodings of the same features
    (user and item ids and attributes, surface, the history as a bag of items, popularity); its
    regularisation is selected on validation. Both calibrated per surface on the validation slice,
    as our models are."""
    from sklearn.linear_model import LogisticRegression

    names = schema.surfaces
    out: dict[str, Any] = {}
    # The feature as a logit: Platt scaling on it is then a one-feature logistic regression.
    p_val, p_test = (1 / (1 + np.exp(-a.item_dense[:, 0].astype(np.float64))) for a in (validation, test))
    table = platt_per_surface(p_val, validation.conversion, validation.surface, names)
    out["popularity only"] = {
        "conversion": task_metrics(test.conversion, calibrated(p_test, test.surface, table, names))
    }
    x_fit, x_val, x_test = _one_hot(schema, fit, validation, test)
    grid: list[list[float]] = []
    best: tuple[float, Any] | None = None
    for c in (0.01, 0.03, 0.1, 0.3, 1.0):
        lr = LogisticRegression(C=c, max_iter=300, solver="lbfgs").fit(x_fit, fit.conversion)
        score = auc(validation.conversion, lr.predict_proba(x_val)[:, 1])
        grid.append([c, score])
        if best is None or score > best[0]:
            best = (score, lr)
    assert best is not None
    model = best[1]
    table = platt_per_surface(model.predict_proba(x_val)[:, 1], validation.conversion, validation.surface, names)
    p = calibrated(model.predict_proba(x_test)[:, 1], test.surface, table, names)
    out["logistic regression, same features"] = {
        "conversion": task_metrics(test.conversion, p),
        "selected": {"C": float(model.C), "validation_auc": best[0], "grid": grid},
    }
    return out


def _one_hot(schema: FeatureSchema, *parts: Arrays) -> list[Any]:
    from scipy import sparse

    sizes = [*schema.user_categorical.values(), *schema.item_categorical.values(), len(schema.surfaces)]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    items = schema.item_categorical[schema.item_id_feature]
    width = int(offsets[-1]) + items + 1  # + history bag + popularity
    matrices = []
    for a in parts:
        n = len(a)
        cats = np.column_stack([a.user_cat, a.item_cat, a.surface])
        rows = np.repeat(np.arange(n), cats.shape[1])
        cols = (cats + offsets[:-1]).reshape(-1)
        data = np.ones(len(cols))
        h_rows, h_pos = np.nonzero(a.history > 0)
        h_cols = int(offsets[-1]) + a.history[h_rows, h_pos]
        h_data = 1.0 / np.maximum((a.history > 0).sum(1), 1)[h_rows]
        pop_rows, pop_cols = np.arange(n), np.full(n, width - 1)
        matrices.append(
            sparse.csr_matrix(
                (
                    np.concatenate([data, h_data, a.item_dense[:, 0]]),
                    (np.concatenate([rows, h_rows, pop_rows]), np.concatenate([cols, h_cols, pop_cols])),
                ),
                shape=(n, width),
            )
        )
    return matrices


# Equal-budget tuning for the structure comparison: the same grid for both, one selection seed.
STRUCTURE_GRID: tuple[tuple[int, tuple[int, ...]], ...] = tuple(
    (layers, mlp) for layers in (1, 2, 3) for mlp in ((128, 64), (256, 128))
)


def tune_structures(
    folder: Path, seeds: tuple[int, ...] = (0, 1, 2, 3, 4), epochs: int = 3, console: Console | None = None
) -> dict[str, Any]:
    """Parallel vs stacked, each tuned the same way: every grid point is trained once (seed 0) and
    scored on conversion AUC over the latest `calibration_share` of the training slice (validation,
    never the test split); the best point is then trained with every seed and scored on the test."""
    funnel = movielens(folder, 0)
    schema, train_set, test_set = funnel.schema, funnel.train, funnel.test
    settings = TrainSettings(epochs=epochs)
    _, validation = split_by_time(train_set, settings.calibration_share)  # the slice train() calibrates on
    results: dict[str, Any] = {}
    with bar(console) as progress:
        for structure in ("parallel", "stacked"):
            task = progress.add_task(f"tuning {structure}", total=len(STRUCTURE_GRID) + len(seeds))
            points: list[dict[str, Any]] = []
            for layers, mlp in STRUCTURE_GRID:
                config = ModelConfig(structure=structure, cross_layers=layers, mlp=list(mlp))
                model, _ = train(schema, config, train_set, settings.model_copy(update={"seed": 0}))
                score = auc(validation.conversion, predict(model, validation)[0])
                points.append({"cross_layers": layers, "mlp": list(mlp), "validation_auc": score})
                progress.advance(task)
            best = max(points, key=lambda p: p["validation_auc"])
            config = ModelConfig(structure=structure, cross_layers=best["cross_layers"], mlp=best["mlp"])
            tests = []
            for seed in seeds:
                model, calibration = train(schema, config, train_set, settings.model_copy(update={"seed": seed}))
                tests.append(evaluate(model, calibration, test_set)["conversion"]["auc"])
                progress.advance(task)
            results[structure] = {"grid": points, "selected": best, "test_auc": tests,
                                  "mean": float(np.mean(tests)), "sd": float(np.std(tests))}  # fmt: skip
            progress.remove_task(task)
    results["parallel_minus_stacked"] = paired_difference(
        results["parallel"]["test_auc"], results["stacked"]["test_auc"]
    )
    results["provenance"] = provenance(
        seeds, {"movielens_100k": data_version(folder / f for f in USER_FILES)}, epochs=epochs, selection_seed=0
    )
    return results


def paired_difference(a: list[float], b: list[float], alpha: float = 0.05) -> dict[str, Any]:
    """a − b run by run (the same seeds): mean, standard error, a paired t-test's two-sided p, and
    whether the difference is significant at `alpha` (never with fewer than 3 seeds)."""
    from scipy import stats

    deltas = np.subtract(a, b)
    se = float(np.std(deltas, ddof=1) / np.sqrt(len(deltas))) if len(deltas) > 1 else float("nan")
    p = float(stats.ttest_rel(a, b).pvalue) if len(deltas) > 2 and np.ptp(deltas) > 0 else float("nan")
    significant = bool(len(deltas) > 2 and not math.isnan(p) and p < alpha)
    return {"per_seed": deltas.tolist(), "mean": float(deltas.mean()), "se": se, "p": p, "significant": significant,
            "wins": int((deltas > 0).sum()), "seeds": len(deltas)}  # fmt: skip


def verdict(delta: dict[str, Any]) -> str:
    """One plain sentence for a paired difference."""
    if delta["significant"]:
        return f"significant (paired t-test p = {delta['p']:.3f}, {delta['seeds']} seeds)"
    p = "n/a" if math.isnan(delta["p"]) else f"{delta['p']:.2f}"
    return f"not significant (paired t-test p = {p}, {delta['seeds']} seeds): treat as a tie"


def render_tuning(results: dict[str, Any], console: Console) -> None:
    table = Table(title="Parallel vs stacked DCN v2, each tuned on the same grid (selected on validation AUC)")
    for column in ("structure", "selected", "validation AUC", "test conv AUC (± sd over seeds)"):
        table.add_column(column, justify="left" if column == "structure" else "right")
    for structure in ("parallel", "stacked"):
        r = results[structure]
        chosen = r["selected"]
        table.add_row(
            structure,
            f"{chosen['cross_layers']} cross layers, MLP {chosen['mlp']}",
            f"{chosen['validation_auc']:.4f}",
            f"{r['mean']:.4f} ± {r['sd']:.4f}",
        )
    console.print(table)
    delta = results["parallel_minus_stacked"]
    console.print(
        f"parallel − stacked, paired by seed: {delta['mean']:+.4f} ± {delta['se']:.4f} (s.e.); "
        f"per seed {', '.join(f'{d:+.4f}' for d in delta['per_seed'])}; {verdict(delta)}"
    )


def _deepctr_model(schema: Any, variant: str, lr: float, seed: int) -> tuple[Any, Any]:
    """deepctr-torch's DCN or DCN-Mix on our features, with an Adam of learning rate `lr`, and the
    function turning our arrays into its inputs."""
    import torch
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat
    from deepctr_torch.models import DCN, DCNMix

    d = 16
    columns: list[Any] = [SparseFeat(n, size, embedding_dim=d) for n, size in schema.user_categorical.items()]
    columns += [SparseFeat(n, size, embedding_dim=d) for n, size in schema.item_categorical.items()]
    columns += [SparseFeat("surface", len(schema.surfaces), embedding_dim=d)]
    columns += [DenseFeat(n, 1) for n in schema.item_dense]
    columns += [
        VarLenSparseFeat(
            SparseFeat(
                "history",
                schema.item_categorical[schema.item_id_feature],
                embedding_dim=d,
                embedding_name=schema.item_id_feature,
            ),
            maxlen=schema.history_length,
            combiner="mean",
        )
    ]

    def inputs(a: Arrays) -> dict[str, Any]:
        x: dict[str, Any] = {n: a.user_cat[:, i] for i, n in enumerate(schema.user_categorical)}
        x |= {n: a.item_cat[:, i] for i, n in enumerate(schema.item_categorical)}
        x |= {n: a.item_dense[:, i] for i, n in enumerate(schema.item_dense)}
        x |= {"surface": a.surface, "history": a.history}
        return x

    torch.manual_seed(seed)
    common = {"dnn_hidden_units": (128, 64), "task": "binary", "seed": seed, "device": "cpu"}
    model = (
        DCN(columns, columns, cross_num=2, cross_parameterization="matrix", **common)
        if variant == "dcn"
        else DCNMix(columns, columns, cross_num=2, low_rank=16, num_experts=3, **common)
    )
    model.compile(torch.optim.Adam(model.parameters(), lr=lr), "binary_crossentropy")
    return model, inputs


def deepctr_epochs(
    schema: Any, fit: Arrays, validation: Arrays, variant: str, lr: float, max_epochs: int
) -> Iterator[tuple[int, float]]:
    """Validation conversion AUC after each epoch of one deepctr-torch run (seed 0), on the rows
    our models fit on."""
    model, inputs = _deepctr_model(schema, variant, lr, 0)
    for epoch in range(1, max_epochs + 1):
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Train on … samples" whatever verbose says
            model.fit(inputs(fit), fit.conversion, batch_size=1024, epochs=1, verbose=0)
        p = np.asarray(model.predict(inputs(validation), batch_size=8192)).reshape(-1)
        yield epoch, auc(validation.conversion, p)


def deepctr_reference(
    schema: Any, fit: Arrays, test_set: Arrays, variant: str, settings: TrainSettings
) -> dict[str, float]:
    """The external reference on the same features and rows; conversion labels (single task)."""
    model, inputs = _deepctr_model(schema, variant, settings.learning_rate, settings.seed)
    with contextlib.redirect_stdout(io.StringIO()):
        model.fit(inputs(fit), fit.conversion, batch_size=settings.batch_size, epochs=settings.epochs, verbose=0)
    p = np.asarray(model.predict(inputs(test_set), batch_size=8192)).reshape(-1)
    return task_metrics(test_set.conversion, p)


def _reliability(model: Any, calibration: Any, data: Arrays, bins: int = 10) -> list[tuple[float, float]]:
    p_conv, _ = predict(model, data)
    p = calibrated(p_conv.astype(np.float64), data.surface, calibration.conversion, model.schema.surfaces)
    order = np.argsort(p)
    return [(float(p[c].mean()), float(data.conversion[c].mean())) for c in np.array_split(order, bins) if len(c)]


def render(results: dict[str, Any], console: Console, plot: Path | None = None) -> None:
    rates = results["rates"]
    table = Table(
        title=f"Conversion funnel from MovieLens-100K: {int(rates['impressions']):,} impressions, click "
        f"rate {rates['click_rate']:.1%}, conversion rate {rates['conversion_rate']:.2%} (test = last 20% by time)"
    )
    for column in [
        "model",
        "selected (lr, epochs)",
        "conv AUC (± sd over seeds)",
        "conv logloss",
        "conv ECE",
        "click AUC",
        "click logloss",
        "click ECE",
    ]:
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, m in results["baselines"].items():
        c = m["conversion"]
        chosen = f"C={m['selected']['C']}" if "selected" in m else "—"
        table.add_row(name, chosen, f"{c['auc']:.4f}", f"{c['logloss']:.4f}", f"{c['ece']:.4f}", "—", "—", "—")
    for name, m in results["configs"].items():
        click = m.get("click")
        sel = results["selected"].get(name, {})
        table.add_row(
            name,
            f"{sel.get('learning_rate', '?')}, {sel.get('epochs', '?')}",
            f"{m['conversion']['auc']:.4f} ± {m['conversion'].get('auc_std', 0):.4f}",
            f"{m['conversion']['logloss']:.4f}",
            f"{m['conversion']['ece']:.4f}",
            *(f"{click[k]:.4f}" for k in ("auc", "logloss", "ece")) if click else ("—", "—", "—"),
        )
    console.print(table)
    for pair in results.get("paired", []):
        console.print(
            f"{pair['a']} − {pair['b']}: conv AUC {pair['mean']:+.4f} ± {pair['se']:.4f} (s.e.), ahead on "
            f"{pair['wins']}/{pair['seeds']} seeds; {verdict(pair)}"
        )
    if results.get("skipped"):
        console.print(f"deepctr-torch reference: skipped — {results['skipped']}")
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 5))
        for name, curve in results["reliability"].items():
            xs, ys = zip(*curve, strict=True)
            ax.plot(xs, ys, marker="o", label=name[:40])
        top = max(max(x for x, _ in c) for c in results["reliability"].values())
        ax.plot([0, top], [0, top], color="grey", linestyle="--")
        ax.set_xlabel("predicted p(conversion), calibrated")
        ax.set_ylabel("observed conversion rate")
        ax.legend(fontsize=6)
        fig.tight_layout()
        plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(plot, dpi=110)
        plt.close(fig)
        console.print(f"wrote {plot}")
