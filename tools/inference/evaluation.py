"""`bastion eval inference`: multi-task vs single-task, parallel vs stacked, on the MovieLens funnel.

Same split (by time) and seed for every configuration. Per task: AUC, log loss, expected
calibration error (after per-surface Platt calibration). `deepctr-torch` is the external reference
the issue names; it is installed only on request (it must not pull another torch), and skipped with
that reason otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tools.inference.data import movielens_funnel
from tools.inference.model import ModelConfig
from tools.inference.training import Arrays, TrainSettings, calibrated, evaluate, predict, train

USER_FILES = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
CONFIGS: dict[str, ModelConfig] = {
    "multi-task ESMM, parallel DCN v2 + MLP (ours)": ModelConfig(),
    "multi-task shared head, parallel": ModelConfig(heads="shared"),
    "single-task conversion, parallel": ModelConfig(heads="single"),
    "multi-task ESMM, stacked DCN v2 → MLP": ModelConfig(structure="stacked"),
    "multi-task ESMM, parallel, mixture of 3 low-rank experts": ModelConfig(experts=3),
}


def fetch(cache: Path) -> Path:
    from tools.rerank.evaluation import fetch_movielens  # the same recbole-wheel copy the rerank eval uses

    return fetch_movielens(cache, USER_FILES)


def run(folder: Path, seed: int = 0, epochs: int = 3, console: Console | None = None) -> dict[str, Any]:
    schema, train_set, test_set, rates = movielens_funnel(folder, seed)
    results: dict[str, Any] = {"rates": rates, "train_rows": len(train_set), "test_rows": len(test_set), "configs": {}}
    curves: dict[str, Any] = {}
    with Progress(console=console or Console(), transient=True) as progress:
        for name, config in CONFIGS.items():
            task = progress.add_task(name, total=epochs)
            model, calibration = train(
                schema,
                config,
                train_set,
                TrainSettings(epochs=epochs, seed=seed),
                progress=lambda e, s, n, t=task: progress.update(t, completed=e + (s + 1) / n),
            )
            results["configs"][name] = evaluate(model, calibration, test_set)
            curves[name] = _reliability(model, calibration, test_set)
    results["reliability"] = curves
    return results


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
    for column in ["model", "conv AUC", "conv logloss", "conv ECE", "click AUC", "click logloss", "click ECE"]:
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, m in results["configs"].items():
        click = m.get("click")
        table.add_row(
            name,
            f"{m['conversion']['auc']:.4f}",
            f"{m['conversion']['logloss']:.4f}",
            f"{m['conversion']['ece']:.4f}",
            *(f"{click[k]:.4f}" for k in ("auc", "logloss", "ece")) if click else ("—", "—", "—"),
        )
    console.print(table)
    console.print(
        "deepctr-torch DCN/DCN-Mix reference: skipped — not installed (installing it beside the pinned "
        "CPU torch risks pulling another torch build)."
    )
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
