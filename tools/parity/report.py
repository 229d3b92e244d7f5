"""A readable parity report: Markdown with the findings, and a plot per flagged feature."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tools.parity.model import AuditReport
from tools.parity.sources import connect, register


def write_report(report: AuditReport, path: Path, training: Any = None, serving: Any = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    c = report.coverage
    lines = [
        "# Training/serving parity report",
        "",
        f"Keys: `{', '.join(report.keys)}` · training {c.training_rows:,} rows · serving {c.serving_rows:,} rows · "
        f"joined {c.joined_rows:,} · {report.elapsed_s:.2f}s",
        "",
    ]
    if report.partial:
        lines += ["**PARTIAL RESULT** — these checks did not run:", *[f"- {p}" for p in report.problems], ""]
    lines += ["## Findings", "", "| severity | check | feature | what | likely cause |", "|---|---|---|---|---|"]
    for f in report.findings:
        lines.append(f"| {f.severity} | {f.check} | {f.feature or ''} | {f.summary} | {f.likely_cause} |")
    if not report.findings:
        lines.append("| — | — | — | no differences beyond tolerance | — |")
    lines += [
        "",
        "## Features",
        "",
        "| feature | mismatch rate | nulls t → s | PSI | Wasserstein/IQR | JS |",
        "|---|---|---|---|---|---|",
    ]
    for s in report.features:
        lines.append(
            f"| {s.feature} | {s.mismatch_rate:.4%} | {s.null_rate_training:.2%} → {s.null_rate_serving:.2%} "
            f"| {s.psi if s.psi is not None else ''} | {s.wasserstein if s.wasserstein is not None else ''} "
            f"| {s.js_divergence if s.js_divergence is not None else ''} |"
        )
    plots = _plots(report, path.parent, training, serving) if training is not None and serving is not None else []
    if plots:
        lines += ["", "## Flagged features", ""] + [f"![{name}]({file.name})" for name, file in plots]
    for f in report.findings:
        if f.examples:
            lines += ["", f"### Examples: {f.feature}", "", "```", *[str(e) for e in f.examples], "```"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _plots(report: AuditReport, directory: Path, training: Any, serving: Any) -> list[tuple[str, Path]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    con = connect(None, training, serving)
    register(con, "training", training)
    register(con, "serving", serving)
    kinds = {s.feature: s.kind for s in report.features}
    out = []
    for feature in report.flagged_features:
        if kinds.get(feature) != "numeric":
            continue
        q = '"' + feature.replace('"', '""') + '"'
        t = con.execute(f"SELECT CAST({q} AS DOUBLE) FROM training USING SAMPLE 20000 ROWS").fetchnumpy()
        s = con.execute(f"SELECT CAST({q} AS DOUBLE) FROM serving USING SAMPLE 20000 ROWS").fetchnumpy()
        fig, ax = plt.subplots(figsize=(6, 3))
        for label, values in (("training", next(iter(t.values()))), ("serving", next(iter(s.values())))):
            ax.hist(values[~_isnan(values)], bins=50, alpha=0.5, label=label)
        ax.set_title(feature, fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        file = directory / f"parity_{feature}.png"
        fig.savefig(file, dpi=100)
        plt.close(fig)
        out.append((feature, file))
    con.close()
    return out


def _isnan(values: Any) -> Any:
    import numpy as np

    return np.isnan(np.asarray(values, dtype=float))
