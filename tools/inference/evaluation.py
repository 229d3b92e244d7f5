"""`bastion eval inference`: multi-task vs single-task, parallel vs stacked, on the MovieLens funnel.

Same split (by time) and seed for every configuration. Per task: AUC, log loss, expected
calibration error (after per-surface Platt calibration). `deepctr-torch`'s DCN and DCN-Mix run as
the external reference on the same features (conversion labels: their models are single-task and
uncalibrated). It is in the `eval` extra; torch stays the pinned CPU build (it asks for torch>=2.4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tools.datasets import movielens_100k
from tools.inference.data import movielens_funnel
from tools.inference.registry import ModelConfig
from tools.inference.training import (
    Arrays,
    TrainSettings,
    auc,
    calibrated,
    evaluate,
    predict,
    split_by_time,
    train,
)

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


def run(folder: Path, seeds: tuple[int, ...] = (0,), epochs: int = 3, console: Console | None = None) -> dict[str, Any]:
    """Every configuration on the same data (split by time) for each seed; metrics averaged over seeds."""
    schema, train_set, test_set, rates = movielens_funnel(folder, 0)
    results: dict[str, Any] = {"rates": rates, "train_rows": len(train_set), "test_rows": len(test_set),
                               "seeds": list(seeds), "configs": {}, "per_seed": {}}  # fmt: skip
    curves: dict[str, Any] = {}
    with Progress(console=console or Console(), transient=True) as progress:
        for seed in seeds:
            for name, config in CONFIGS.items():
                task = progress.add_task(f"seed {seed}: {name}", total=epochs)
                model, calibration = train(
                    schema,
                    config,
                    train_set,
                    TrainSettings(epochs=epochs, seed=seed),
                    progress=lambda e, s, n, t=task: progress.update(t, completed=e + (s + 1) / n),
                )
                results["per_seed"].setdefault(name, []).append(evaluate(model, calibration, test_set))
                if seed == seeds[0]:
                    curves[name] = _reliability(model, calibration, test_set)
                progress.remove_task(task)
            for name, variant in (
                ("deepctr-torch DCN (matrix), conversion only", "dcn"),
                ("deepctr-torch DCN-Mix, conversion only", "dcnmix"),
            ):
                task = progress.add_task(f"seed {seed}: {name}", total=None)
                try:
                    metrics = deepctr_reference(schema, train_set, test_set, variant, epochs, seed)
                    results["per_seed"].setdefault(name, []).append({"conversion": metrics})
                except ImportError:
                    results["skipped"] = "deepctr-torch is not installed (`pip install deepctr-torch==0.3.0`)"
                progress.remove_task(task)
    for name, runs in results["per_seed"].items():
        results["configs"][name] = {
            task: {k: float(np.mean([r[task][k] for r in runs])) for k in runs[0][task]}
            | {"auc_std": float(np.std([r[task]["auc"] for r in runs]))}
            for task in runs[0]
        }
    results["reliability"] = curves
    return results


# Equal-budget tuning for the structure comparison: the same grid for both, one selection seed.
STRUCTURE_GRID: tuple[tuple[int, tuple[int, ...]], ...] = tuple(
    (layers, mlp) for layers in (1, 2, 3) for mlp in ((128, 64), (256, 128))
)


def tune_structures(
    folder: Path, seeds: tuple[int, ...] = (0, 1, 2), epochs: int = 3, console: Console | None = None
) -> dict[str, Any]:
    """Parallel vs stacked, each tuned the same way: every grid point is trained once (seed 0) and
    scored on conversion AUC over the latest `calibration_share` of the training slice (validation,
    never the test split); the best point is then trained with every seed and scored on the test."""
    schema, train_set, test_set, _ = movielens_funnel(folder, 0)
    settings = TrainSettings(epochs=epochs)
    _, validation = split_by_time(train_set, settings.calibration_share)  # the slice train() calibrates on
    results: dict[str, Any] = {}
    with Progress(console=console or Console(), transient=True) as progress:
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
    return results


def paired_difference(a: list[float], b: list[float]) -> dict[str, Any]:
    """a − b run by run (the same seeds), with the mean and its standard error."""
    deltas = np.subtract(a, b)
    se = float(np.std(deltas, ddof=1) / np.sqrt(len(deltas))) if len(deltas) > 1 else float("nan")
    return {"per_seed": deltas.tolist(), "mean": float(deltas.mean()), "se": se}


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
        f"per seed {', '.join(f'{d:+.4f}' for d in delta['per_seed'])}"
    )


def deepctr_reference(
    schema: Any, train_set: Arrays, test_set: Arrays, variant: str, epochs: int, seed: int
) -> dict[str, float]:
    """The external reference on the same features, split and seed; conversion labels (single task)."""
    import torch
    from deepctr_torch.inputs import DenseFeat, SparseFeat, VarLenSparseFeat
    from deepctr_torch.models import DCN, DCNMix

    from tools.inference.training import task_metrics

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
    model.compile("adam", "binary_crossentropy")
    model.fit(inputs(train_set), train_set.conversion, batch_size=1024, epochs=epochs, verbose=0)
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
        "conv AUC (± sd over seeds)",
        "conv logloss",
        "conv ECE",
        "click AUC",
        "click logloss",
        "click ECE",
    ]:
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, m in results["configs"].items():
        click = m.get("click")
        table.add_row(
            name,
            f"{m['conversion']['auc']:.4f} ± {m['conversion'].get('auc_std', 0):.4f}",
            f"{m['conversion']['logloss']:.4f}",
            f"{m['conversion']['ece']:.4f}",
            *(f"{click[k]:.4f}" for k in ("auc", "logloss", "ece")) if click else ("—", "—", "—"),
        )
    console.print(table)
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
