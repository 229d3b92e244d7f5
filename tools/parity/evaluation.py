"""`bastion eval parity`: a bug-injection suite on NannyML's `synthetic_car_loan` reference data.

The training log is the reference data (50,000 rows keyed by `id`, with 8% of `driver_tenure`
missing so that "nulls served as 0" has something to hide). Each serving copy carries one known bug
on known features — or a benign difference that must not be flagged, or nothing at all. The same
pairs go through Evidently's data-drift preset, side by side. Scored per bug kind on features:
precision and recall of the flagged set against the features the bug touched.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from tools.datasets import from_wheel
from tools.parity.audit import audit
from tools.parity.vectors import compare_embeddings
from tools.progress import bar

NANNYML = "nannyml==0.13.1"
DATA_MEMBER = "nannyml/datasets/data/synthetic_car_loan_reference.csv"
FEATURES = [
    "car_value",
    "salary_range",
    "debt_to_income_ratio",
    "loan_length",
    "repaid_loan_on_prev_car",
    "size_of_downpayment",
    "driver_tenure",
]
ALL = ", ".join(FEATURES)

# kind → (serving SELECT over `training`, features the bug touches, distribution-preserving?)
BUGS: dict[str, tuple[str, list[str], bool]] = {
    "unit_scaling": (
        "SELECT * REPLACE (CASE WHEN id % 10 < 3 THEN car_value * 1000 ELSE car_value END AS car_value) FROM training",
        ["car_value"],
        False,
    ),
    "nulls_as_zero": (
        "SELECT * REPLACE (coalesce(driver_tenure, 0) AS driver_tenure) FROM training",
        ["driver_tenure"],
        False,
    ),
    "stale_one_day": (
        "SELECT t.* REPLACE (p.debt_to_income_ratio AS debt_to_income_ratio) FROM training t "
        "ASOF LEFT JOIN training p ON p.timestamp <= t.timestamp - INTERVAL 1 DAY",
        ["debt_to_income_ratio"],
        True,
    ),
    "categorical_remap": (
        "SELECT * REPLACE (CASE salary_range WHEN '40K - 60K €' THEN '60K - 80K €' "
        "WHEN '60K - 80K €' THEN '40K - 60K €' ELSE salary_range END AS salary_range) FROM training",
        ["salary_range"],
        False,
    ),
    "shuffled_across_keys": (
        "SELECT t.* REPLACE (x.loan_length AS loan_length) FROM training t JOIN "
        "(SELECT loan_length, row_number() OVER (ORDER BY hash(id)) n FROM training) x "
        "ON x.n = t.id + 1",
        ["loan_length"],
        True,
    ),
    "dropped_feature": ("SELECT * EXCLUDE (size_of_downpayment) FROM training", ["size_of_downpayment"], False),
    "wrong_feature_order": (
        "SELECT * REPLACE (debt_to_income_ratio AS repaid_share, repaid_share AS debt_to_income_ratio) FROM training",
        [],
        True,
    ),
}
BENIGN: dict[str, str] = {
    "fp16_rounding": "SELECT * REPLACE (CAST(CAST(car_value AS FLOAT) AS DOUBLE) AS car_value, "
    "{fp16:debt_to_income_ratio}, {fp16:driver_tenure}) FROM training",
    "float_noise": "SELECT * REPLACE (car_value * (1 + 1e-12) AS car_value, debt_to_income_ratio + 1e-12 AS "
    "debt_to_income_ratio) FROM training",
    "row_order": "SELECT * FROM training ORDER BY hash(id * 7919)",
}
CLEAN_COPIES = 5


class Scenario(BaseModel):
    name: str
    kind: str  # bug | benign | clean | embedding
    truth: list[str]
    ours: list[str]
    evidently: list[str] | None
    distribution_preserving: bool = False
    seconds: float = 0.0
    evidently_seconds: float | None = None


def car_loan(cache: Path) -> Path:
    """The reference CSV from the nannyml wheel (downloaded once into `cache`, never committed)."""
    target = cache / "synthetic_car_loan_reference.csv"
    from_wheel(cache, NANNYML, {DATA_MEMBER: target})
    return target


def _fp16(column: str) -> str:
    # DuckDB has no half type: round the mantissa to 11 bits, as a float16 store would.
    return (
        f"CASE WHEN {column} = 0 OR {column} IS NULL THEN {column} ELSE round({column} / pow(2, floor(log2(abs("
        f"{column}))) - 10)) * pow(2, floor(log2(abs({column}))) - 10) END AS {column}"
    )


def _prepare(con: duckdb.DuckDBPyConnection, csv: Path) -> None:
    con.execute(
        f"CREATE TABLE training AS SELECT id, {ALL}, timestamp, "
        f"round(debt_to_income_ratio * 0.5 + 0.1, 6) AS repaid_share FROM read_csv_auto('{csv}')"
    )
    # 8% of driver_tenure missing in the training log.
    con.execute("UPDATE training SET driver_tenure = NULL WHERE hash(id * 31) % 100 < 8")


def _evidently(training: Any, serving: Any, columns: list[str]) -> list[str]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    shared = [c for c in columns if c in serving.columns]
    snapshot = Report([DataDriftPreset()]).run(current_data=serving[shared], reference_data=training[shared])
    drifted = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            method = str(config.get("method", "")).lower()
            value, threshold = float(metric["value"]), float(config["threshold"])
            is_pvalue = "p_value" in method or "test" in method
            if (value < threshold) if is_pvalue else (value >= threshold):
                drifted.append(config["column"])
    return sorted(drifted + [c for c in columns if c not in serving.columns])


def run_suite(
    csv: Path, with_evidently: bool = True, console: Console | None = None, engine: str | None = None
) -> list[Scenario]:
    """The classic suite; each pair audited on `engine` (embedded DuckDB by default). The embedding cases
    (`compare_embeddings`) run on DuckDB whatever the engine."""
    con = duckdb.connect()
    _prepare(con, csv)
    columns = [*FEATURES, "repaid_share"]
    training_df = con.execute(f"SELECT {', '.join(columns)} FROM training").df() if with_evidently else None
    cases: list[tuple[str, str, str, list[str], bool]] = []
    for name, (sql, touched, preserving) in BUGS.items():
        truth = ["debt_to_income_ratio", "repaid_share"] if name == "wrong_feature_order" else touched
        cases.append((name, "bug", sql, truth, preserving))
    for name, template in BENIGN.items():
        sql = template.replace("{fp16:debt_to_income_ratio}", _fp16("debt_to_income_ratio"))
        cases.append((name, "benign", sql.replace("{fp16:driver_tenure}", _fp16("driver_tenure")), [], False))
    for n in range(CLEAN_COPIES):
        cases.append(
            (f"clean copy {n + 1}", "clean", f"SELECT * FROM training WHERE hash(id + {n}) % 10 < 9", [], False)
        )
    results: list[Scenario] = []
    training = con.execute("SELECT * FROM training").df()
    with bar(console) as progress:
        task = progress.add_task("parity suite", total=len(cases) + 2)
        for name, kind, sql, truth, preserving in cases:
            serving = con.execute(sql).df()
            began = time.perf_counter()
            report = audit(training, serving, ["id"], time_column="timestamp", engine=engine)
            seconds = time.perf_counter() - began
            ours = sorted(set(report.flagged_features) & {*columns})
            theirs, their_seconds = None, None
            if with_evidently and training_df is not None:
                began = time.perf_counter()
                theirs = _evidently(training_df, serving, columns)
                their_seconds = time.perf_counter() - began
            results.append(
                Scenario(
                    name=name,
                    kind=kind,
                    truth=truth,
                    ours=ours,
                    evidently=theirs,
                    distribution_preserving=preserving,
                    seconds=round(seconds, 3),
                    evidently_seconds=None if their_seconds is None else round(their_seconds, 3),
                )
            )
            progress.advance(task)
        results.extend(_embedding_cases(con))
        progress.advance(task, 2)
    return results


def _embedding_cases(con: duckdb.DuckDBPyConnection) -> list[Scenario]:
    """Embeddings of each row by a 'v1' model; serving from 'v2' (another projection), or v1 in fp16."""
    rng = np.random.default_rng(7)
    raw = con.execute(
        "SELECT id, car_value / 50000, debt_to_income_ratio, loan_length / 20, "
        "coalesce(driver_tenure, 0) / 5 FROM training ORDER BY id LIMIT 20000"
    ).fetchnumpy()
    ids = raw["id"]
    x = np.stack([raw[k] for k in list(raw)[1:]], axis=1).astype(np.float64)
    v1, v2 = rng.normal(size=(x.shape[1], 32)), rng.normal(size=(x.shape[1], 32))
    e1 = np.tanh(x @ v1)
    e2 = np.tanh(x @ v2)
    out = []
    for name, serving_vectors, version, truth in (
        ("embedding_version_swap", e2, "v2", ["embedding"]),
        ("embedding_fp16 (benign)", e1.astype(np.float16).astype(np.float64), "v1", []),
    ):
        import pandas as pd

        training = pd.DataFrame({"id": ids, "embedding": list(e1), "model_version": "v1"})
        serving = pd.DataFrame({"id": ids, "embedding": list(serving_vectors), "model_version": version})
        began = time.perf_counter()
        report = compare_embeddings(training, serving, "id", "embedding", version_column="model_version")
        flagged = sorted({f.feature for f in report.findings if f.feature})
        out.append(
            Scenario(
                name=name,
                kind="embedding" if truth else "benign",
                truth=truth,
                ours=flagged,
                evidently=None,
                distribution_preserving=True,
                seconds=round(time.perf_counter() - began, 3),
            )
        )
    return out


def score(results: list[Scenario], which: str) -> dict[str, float]:
    tp = fp = fn = 0
    alarms = checks = 0
    for r in results:
        flagged = set(r.ours if which == "ours" else (r.evidently or []))
        if which == "evidently" and r.evidently is None:
            continue
        truth = set(r.truth)
        tp += len(flagged & truth)
        fp += len(flagged - truth)
        fn += len(truth - flagged)
        if r.kind in ("clean", "benign"):
            alarms += len(flagged)
            checks += len(FEATURES) + 1
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {"precision": precision, "recall": recall, "f1": f1, "false_alarm_rate": alarms / checks if checks else 0}


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    """Nothing flagged and nothing to find counts as perfect precision and recall."""
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, (2 * precision * recall / (precision + recall) if precision + recall else 0.0)


def render(results: list[Scenario], console: Console) -> None:
    table = Table(title="Parity audit vs Evidently DataDriftPreset on synthetic_car_loan (50,000 rows)")
    for column in ["scenario", "kind", "bug touches", "ours flagged", "Evidently flagged", "ours s", "Evidently s"]:
        table.add_column(column)
    for r in results:
        table.add_row(
            r.name + (" *" if r.distribution_preserving else ""),
            r.kind,
            ", ".join(r.truth) or "—",
            ", ".join(r.ours) or "—",
            "n/a" if r.evidently is None else (", ".join(r.evidently) or "—"),
            f"{r.seconds:.2f}",
            "—" if r.evidently_seconds is None else f"{r.evidently_seconds:.2f}",
        )
    console.print(table)
    summary = Table(title="Detection on features (all scenarios)")
    for column in ["method", "precision", "recall", "F1", "false alarms on clean/benign"]:
        summary.add_column(column, justify="right")
    for which in ("ours", "evidently"):
        s = score(results, which)
        summary.add_row(
            which, f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f1']:.3f}", f"{s['false_alarm_rate']:.1%}"
        )
    console.print(summary)
    preserved = [r for r in results if r.distribution_preserving and r.truth]
    caught = [r.name for r in preserved if set(r.truth) <= set(r.ours)]
    console.print(
        f"* distribution-preserving bugs caught: ours {len(caught)}/{len(preserved)}; Evidently "
        f"{sum(1 for r in preserved if r.evidently is not None and set(r.truth) <= set(r.evidently))}/"
        f"{sum(1 for r in preserved if r.evidently is not None)} (embedding cases are ours only)"
    )
