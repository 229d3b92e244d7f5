"""`bastion eval parity`, the harder suite: bugs on few rows, subtle ones, and realistic clean pairs.

The classic suite (`evaluation.py`) injects one bug per pair on every row it targets, each matching
one of our diagnosers; recall 1.0 there is built in. Here each bug kind runs at three strengths — on
0.1%, 1% and 10% of rows — and the kinds are the ones that hide: ×1.1 and ×1.01 scalings, an
off-by-one shift of an ordered category, late-arriving rows (the latest rows served without the
value), a bug in a feature that is also legitimately noisy (±0.5% recomputation noise, audited with
the 1% tolerance an operator would set for it), and two bugs at once. False alarms are counted on
20 clean pairs carrying realistic benign differences: floats recomputed in float32 or summed in
another order, rows reordered, a sampled 90% of keys, late updates inside the tolerance.

Three detectors on the same pairs: our audit (default tolerances, untuned), a keyed diff (pandas
merge-compare, `keyed_diff.py`) whose tolerance and mismatch-rate threshold are selected on
validation pairs (other rows, other seeds), and Evidently's data-drift preset.
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

from tools.parity.audit import audit
from tools.parity.evaluation import FEATURES, _evidently, _prepare, precision_recall_f1
from tools.parity.keyed_diff import RATES, RTOLS, KeyedDiff, join
from tools.parity.model import Tolerances
from tools.progress import bar

STRENGTHS = {"0.1%": 0.001, "1%": 0.01, "10%": 0.1}
COLUMNS = [*FEATURES, "repaid_share"]
SALARY = ("0 - 20K €", "20K - 40K €", "40K - 60K €", "60K+ €")
NOISY_RTOL = 0.01  # the tolerance an operator sets for a feature recomputed with ±0.5% noise
CLEAN_PAIRS, VALIDATION_CLEAN_PAIRS = 20, 10
TEST_SALT, VALIDATION_SALT = 0, 1


def _rows(rate: float, salt: int) -> str:
    """A pseudo-random `rate` share of rows, different per salt (test and validation rows differ)."""
    return f"(hash(id * 7919 + {salt}) % 100000) < {round(rate * 100000)}"


def _shift_salary(rows: str) -> str:
    cases = " ".join(f"WHEN '{a}' THEN '{b}'" for a, b in zip(SALARY, [*SALARY[1:], SALARY[-2]], strict=True))
    return f"CASE WHEN {rows} THEN (CASE salary_range {cases} ELSE salary_range END) ELSE salary_range END"


_NOISE = "(1 + ((hash(id * 13) % 1001)::DOUBLE - 500) / 100000)"  # ±0.5%, fixed per row


def bug_sql(kind: str, rate: float, salt: int) -> tuple[str, list[str], bool]:
    """(serving SELECT over `training`, the features the bug touches, audited as a noisy feature?)"""
    sel = _rows(rate, salt)
    if kind == "scale ×1000":
        return (
            f"SELECT * REPLACE (CASE WHEN {sel} THEN car_value * 1000 ELSE car_value END AS car_value) FROM training",
            ["car_value"],
            False,
        )
    if kind == "scale ×1.1":
        return (
            f"SELECT * REPLACE (CASE WHEN {sel} THEN car_value * 1.1 ELSE car_value END AS car_value) FROM training",
            ["car_value"],
            False,
        )
    if kind == "scale ×1.01":
        return (
            f"SELECT * REPLACE (CASE WHEN {sel} THEN debt_to_income_ratio * 1.01 ELSE debt_to_income_ratio END "
            "AS debt_to_income_ratio) FROM training",
            ["debt_to_income_ratio"],
            False,
        )
    if kind == "categorical off by one":
        return f"SELECT * REPLACE ({_shift_salary(sel)} AS salary_range) FROM training", ["salary_range"], False
    if kind == "late-arriving rows":
        # The latest rows (by time) were scored before their loan_length arrived: served as null.
        late = (
            f"timestamp >= (SELECT quantile_disc(timestamp, {1 - 2 * rate}) FROM training) "
            f"AND hash(id * 31 + {salt}) % 2 = 0"
        )
        return (
            f"SELECT * REPLACE (CASE WHEN {late} THEN NULL ELSE loan_length END AS loan_length) FROM training",
            ["loan_length"],
            False,
        )
    if kind == "noisy feature + ×1.1":
        return (
            f"SELECT * REPLACE (car_value * {_NOISE} * (CASE WHEN {sel} THEN 1.1 ELSE 1 END) AS car_value) "
            "FROM training",
            ["car_value"],
            True,
        )
    if kind == "two bugs (×1000 + off by one)":
        other = _rows(rate, salt + 100)
        return (
            f"SELECT * REPLACE (CASE WHEN {sel} THEN car_value * 1000 ELSE car_value END AS car_value, "
            f"{_shift_salary(other)} AS salary_range) FROM training",
            ["car_value", "salary_range"],
            False,
        )
    raise ValueError(kind)


KINDS = (
    "scale ×1000",
    "scale ×1.1",
    "scale ×1.01",
    "categorical off by one",
    "late-arriving rows",
    "noisy feature + ×1.1",
    "two bugs (×1000 + off by one)",
)


def clean_sql(seed: int) -> tuple[str, str]:
    """A clean pair: a few realistic benign differences chosen by `seed`. (SELECT, description)"""
    rng = np.random.default_rng(seed)
    replace: list[str] = []
    said: list[str] = []
    if rng.random() < 0.6:
        replace.append("CAST(CAST(car_value AS FLOAT) AS DOUBLE) AS car_value")
        said.append("car_value recomputed in float32")
    if rng.random() < 0.6:
        replace.append(
            f"debt_to_income_ratio * (1 + 1e-13 * ((hash(id + {seed}) % 3)::DOUBLE - 1)) AS debt_to_income_ratio"
        )
        said.append("debt_to_income_ratio summed in another order")
    elif rng.random() < 0.7:
        replace.append(
            f"CASE WHEN hash(id * 3 + {seed}) % 100 = 0 THEN debt_to_income_ratio * 1.0002 "
            "ELSE debt_to_income_ratio END AS debt_to_income_ratio"
        )
        said.append("1% of debt_to_income_ratio updated late, within tolerance")
    where = ""
    if rng.random() < 0.5:
        where = f" WHERE hash(id + {seed}) % 10 < 9"
        said.append("90% of keys sampled")
    order = f" ORDER BY hash(id * {seed + 7})"
    said.append("rows reordered")
    select = f"SELECT * REPLACE ({', '.join(replace)}) FROM training" if replace else "SELECT * FROM training"
    return select + where + order, "; ".join(said)


NOISY_CLEAN = "SELECT * REPLACE (car_value * " + _NOISE + " AS car_value) FROM training"


class Pair(BaseModel):
    name: str
    kind: str  # bug | clean
    strength: str | None = None
    noisy: bool = False
    truth: list[str]
    ours: list[str] = []
    ours_tuned: list[str] = []
    keyed_diff: list[str] = []
    evidently: list[str] | None = None
    seconds: float = 0.0


def _cases(salt: int, clean_seeds: range) -> list[tuple[Pair, str]]:
    cases: list[tuple[Pair, str]] = []
    for kind in KINDS:
        for label, rate in STRENGTHS.items():
            sql, truth, noisy = bug_sql(kind, rate, salt)
            cases.append((Pair(name=kind, kind="bug", strength=label, noisy=noisy, truth=truth), sql))
    for seed in clean_seeds:
        sql, said = clean_sql(seed)
        cases.append((Pair(name=f"clean {seed}: {said}", kind="clean", truth=[]), sql))
    for n in range(3):
        cases.append((Pair(name=f"noisy car_value, clean {n + 1}", kind="clean", noisy=True, truth=[]),
                      NOISY_CLEAN + f" ORDER BY hash(id * {n + 11})"))  # fmt: skip
    return cases


def _f1(pairs: list[Pair], flagged: list[list[str]]) -> tuple[float, int]:
    tp = fp = fn = 0
    for pair, found in zip(pairs, flagged, strict=True):
        tp += len(set(found) & set(pair.truth))
        fp += len(set(found) - set(pair.truth))
        fn += len(set(pair.truth) - set(found))
    return precision_recall_f1(tp, fp, fn)[2], fp


def _diff_for(pair: Pair, base: KeyedDiff) -> KeyedDiff:
    # The noisy feature's tolerance is known to the operator: both detectors get it.
    return base.model_copy(update={"rtol": max(base.rtol, NOISY_RTOL)}) if pair.noisy else base


def tune_on_validation(con: duckdb.DuckDBPyConnection, training: Any, engine: str | None = None) -> dict[str, Any]:
    """The keyed diff's (rtol, min_mismatch_rate) and our audit's min_mismatch_rate, selected on
    validation pairs: the same bug kinds and strengths on other rows (another salt) and clean pairs
    with other seeds. Each pair is joined once; every setting reads the same join."""
    cases = _cases(VALIDATION_SALT, range(100, 100 + VALIDATION_CLEAN_PAIRS))
    servings = [con.execute(sql).df() for _, sql in cases]
    pairs = [pair for pair, _ in cases]
    joined = [join(training, s, ["id"], COLUMNS) for s in servings]
    grid: list[dict[str, Any]] = []
    for rtol in RTOLS:
        rates = [
            _diff_for(p, KeyedDiff(rtol=rtol)).mismatch_rates(j, COLUMNS) for p, j in zip(pairs, joined, strict=True)
        ]
        for threshold in RATES:
            flagged = [KeyedDiff(min_mismatch_rate=threshold).over_threshold(r) for r in rates]
            f1, fp = _f1(pairs, flagged)
            grid.append({"rtol": rtol, "min_mismatch_rate": threshold, "f1": f1, "false_alarms": fp})
    best = _best(grid)
    ours_grid: list[dict[str, Any]] = []
    for rate in RATES:
        flagged = [_ours(training, s, _tolerances(p, rate), engine) for p, s in zip(pairs, servings, strict=True)]
        f1, fp = _f1(pairs, flagged)
        ours_grid.append({"rtol": 0.0, "min_mismatch_rate": rate, "f1": f1, "false_alarms": fp})
    return {"selected": best, "grid": grid, "validation_pairs": len(pairs),
            "ours_selected": _best(ours_grid), "ours_grid": ours_grid}  # fmt: skip


def _best(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Best validation F1; ties: fewer false alarms, then the most lenient setting (fewest alarms later)."""
    return max(grid, key=lambda g: (g["f1"], -g["false_alarms"], g["rtol"], g["min_mismatch_rate"]))


def _ours(training: Any, serving: Any, tolerances: Tolerances, engine: str | None = None) -> list[str]:
    report = audit(training, serving, ["id"], time_column="timestamp", tolerances=tolerances, engine=engine)
    return sorted(set(report.flagged_features) & set(COLUMNS))


def _tolerances(pair: Pair, min_mismatch_rate: float | None = None) -> Tolerances:
    base = Tolerances() if min_mismatch_rate is None else Tolerances(min_mismatch_rate=min_mismatch_rate)
    return base.model_copy(update={"rtol": NOISY_RTOL}) if pair.noisy else base


def run_hard_suite(
    csv: Path, with_evidently: bool = True, console: Console | None = None, engine: str | None = None
) -> dict[str, Any]:
    """Every pair audited on `engine` (BASTION_PARITY_ENGINE's URLs; embedded DuckDB by default); the
    serving copies are made, and the keyed diff and Evidently run, in process as always."""
    con = duckdb.connect()
    _prepare(con, csv)
    training = con.execute("SELECT * FROM training").df()
    training_features = training[COLUMNS] if with_evidently else None
    tuned = tune_on_validation(con, training, engine)
    chosen = KeyedDiff(rtol=tuned["selected"]["rtol"], min_mismatch_rate=tuned["selected"]["min_mismatch_rate"])
    tuned_rate = tuned["ours_selected"]["min_mismatch_rate"]
    cases = _cases(TEST_SALT, range(CLEAN_PAIRS))
    pairs: list[Pair] = []
    with bar(console) as progress:
        task = progress.add_task("parity: harder suite", total=len(cases))
        for pair, sql in cases:
            serving = con.execute(sql).df()
            began = time.perf_counter()
            pair.ours = _ours(training, serving, _tolerances(pair), engine)
            pair.seconds = round(time.perf_counter() - began, 3)
            pair.ours_tuned = _ours(training, serving, _tolerances(pair, tuned_rate), engine)
            pair.keyed_diff = _diff_for(pair, chosen).flagged(training, serving, ["id"], COLUMNS)
            if training_features is not None:
                pair.evidently = _evidently(training_features, serving, COLUMNS)
            pairs.append(pair)
            progress.advance(task)
    return {"pairs": [p.model_dump() for p in pairs], "keyed_diff_tuning": tuned, "summary": summarise(pairs)}


METHODS = ("ours", "ours_tuned", "keyed_diff", "evidently")
NAMES = ("ours (defaults)", "ours (tuned)", "keyed diff (tuned)", "Evidently")


def summarise(pairs: list[Pair]) -> dict[str, Any]:
    recall: dict[str, dict[str, dict[str, float | None]]] = {}
    for p in pairs:
        if p.kind != "bug":
            continue
        row = recall.setdefault(p.name, {})
        assert p.strength is not None
        row[p.strength] = {m: _recall(p, m) for m in METHODS}
    clean = [p for p in pairs if p.kind == "clean"]
    alarms = {
        m: {
            "pairs_with_a_false_alarm": sum(1 for p in clean if _found(p, m)),
            "false_alarm_features": sum(len(_found(p, m) or []) for p in clean),
            "pairs": len([p for p in clean if _found(p, m) is not None or m != "evidently"]),
        }
        for m in METHODS
    }
    bugs = [p for p in pairs if p.kind == "bug"]
    overall = {}
    for m in METHODS:
        usable = [p for p in bugs if _found(p, m) is not None]
        hits = sum(len(set(_found(p, m) or []) & set(p.truth)) for p in usable)
        total = sum(len(p.truth) for p in usable)
        extra = sum(len(set(_found(p, m) or []) - set(p.truth)) for p in usable)
        overall[m] = {"recall": hits / total if total else None, "wrong_features_in_bug_pairs": extra}
    return {"recall": recall, "clean": alarms, "overall": overall, "clean_pairs": len(clean)}


def _found(p: Pair, method: str) -> list[str] | None:
    return {"ours": p.ours, "ours_tuned": p.ours_tuned, "keyed_diff": p.keyed_diff, "evidently": p.evidently}[method]


def _recall(p: Pair, method: str) -> float | None:
    found = _found(p, method)
    return None if found is None else len(set(found) & set(p.truth)) / len(p.truth)


def render_hard(result: dict[str, Any], console: Console) -> None:
    summary = result["summary"]
    table = Table(title="Harder suite: recall per bug kind × share of rows (features found / features touched)")
    table.add_column("bug kind")
    for label in STRENGTHS:
        for m in ("ours", "ours tuned", "keyed diff", "Evidently"):
            table.add_column(f"{label}\n{m}", justify="right")
    for kind, row in summary["recall"].items():
        cells = []
        for label in STRENGTHS:
            for m in METHODS:
                value = row[label][m]
                cells.append("n/a" if value is None else f"{value:.2f}")
        table.add_row(kind, *cells)
    console.print(table)
    clean = Table(title=f"False alarms on {summary['clean_pairs']} clean pairs with realistic benign differences")
    for column in ("method", "pairs with a false alarm", "features falsely flagged", "recall over all bugs",
                   "wrong features flagged in bug pairs"):  # fmt: skip
        clean.add_column(column, justify="right")
    for m, name in zip(METHODS, NAMES, strict=True):
        c, o = summary["clean"][m], summary["overall"][m]
        clean.add_row(
            name,
            f"{c['pairs_with_a_false_alarm']}/{c['pairs']}",
            str(c["false_alarm_features"]),
            "n/a" if o["recall"] is None else f"{o['recall']:.3f}",
            str(o["wrong_features_in_bug_pairs"]),
        )
    console.print(clean)
    chosen = result["keyed_diff_tuning"]["selected"]
    ours = result["keyed_diff_tuning"]["ours_selected"]
    console.print(
        f"Tuned on {result['keyed_diff_tuning']['validation_pairs']} validation pairs (the same kinds on other rows, "
        f"clean pairs with other seeds): keyed diff rtol {chosen['rtol']:g}, flag above "
        f"{chosen['min_mismatch_rate']:.2%} mismatched rows (validation F1 {chosen['f1']:.3f}, "
        f"{len(RTOLS) * len(RATES)} settings); ours: flag above {ours['min_mismatch_rate']:.2%} "
        f"(validation F1 {ours['f1']:.3f}, {len(RATES)} settings; tolerances stay precision-aware). "
        "'ours (defaults)' flags above 0.10%."
    )
