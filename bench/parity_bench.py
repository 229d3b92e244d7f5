"""A full parity audit of 1,000,000 rows × 50 features, beside Evidently's data-drift preset on the same data.

Training and serving logs are Parquet files (40 numeric and 10 categorical features; the serving
copy carries a unit-scaling bug, a shuffled feature and fp16 rounding). Each method runs in its own
process, which reports its wall time and peak RSS, so neither pays for the other's memory.
Both sides are timed on the same two footings: from Parquet (the load is part of the time: ours
reads the files with DuckDB, Evidently's input is read with pandas.read_parquet, unsorted) and in
memory (both handed pandas DataFrames already loaded; the load is not timed). An earlier version
timed Evidently with a DuckDB load and an ORDER BY, and ours from the files.
Targets: ours ≤ 10 s and ≤ 2 GiB, at least 30× faster than Evidently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from rich.progress import Progress

from bench.common import ROOT, console, render, save

ROWS = int(os.environ.get("BASTION_BENCH_PARITY_ROWS", "1000000"))
EVIDENTLY_ROWS = int(os.environ.get("BASTION_BENCH_PARITY_EVIDENTLY_ROWS", str(ROWS)))
NUMERIC, CATEGORICAL = 40, 10

# argv: training, serving, footing ("parquet": paths in, load timed; "memory": DataFrames in, load untimed)
OURS = """
import json, sys, time
from bench.common import peak_rss_mb
import pandas as pd
from tools.parity import audit
began = time.perf_counter()
if sys.argv[3] == "memory":
    training, serving = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
    began = time.perf_counter()
else:
    training, serving = sys.argv[1], sys.argv[2]
report = audit(training, serving, ["id"])
peak_mb = peak_rss_mb()
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb, "flagged": report.flagged_features}))
"""
EVIDENTLY = """
import json, sys, time
from bench.common import peak_rss_mb
import pandas as pd
from tools.parity.evaluation import _evidently
began = time.perf_counter()
rows = int(sys.argv[4])
training = pd.read_parquet(sys.argv[1]).drop(columns=["id"]).head(rows)
serving = pd.read_parquet(sys.argv[2]).drop(columns=["id"]).head(rows)
if sys.argv[3] == "memory":
    began = time.perf_counter()
flagged = _evidently(training, serving, list(training.columns))
peak_mb = peak_rss_mb()
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb, "flagged": flagged}))
"""
FOOTINGS = {"parquet": "from Parquet (load timed)", "memory": "in memory (DataFrames given, load not timed)"}


def generate(directory: Path, rows: int = ROWS) -> tuple[Path, Path]:
    """Training and serving Parquet logs of `rows` rows (seed 0.42); the serving copy carries the bugs."""
    numeric = ", ".join(f"round(random() * {i + 1} * 10, 4) AS n{i}" for i in range(NUMERIC))
    categorical = ", ".join(
        f"['a', 'b', 'c', 'd', 'e'][1 + (hash(i * {j + 3}) % 5)::INT] AS c{j}" for j in range(CATEGORICAL)
    )
    training, serving = directory / "training.parquet", directory / "serving.parquet"
    # Closed at the end: the generator's tables (GBs at 10M rows) must not stay in the runner's memory while
    # the measured processes run.
    with duckdb.connect() as con:
        con.execute("SELECT setseed(0.42)")
        con.execute(f"CREATE TABLE t AS SELECT i AS id, {numeric}, {categorical} FROM range({rows}) r(i)")
        con.execute(f"COPY t TO '{training}' (FORMAT parquet)")
        con.execute(f"""COPY (SELECT t.* REPLACE (CASE WHEN id % 10 = 0 THEN n0 * 1000 ELSE n0 END AS n0,
                         x.n1 AS n1, CAST(CAST(n2 AS FLOAT) AS DOUBLE) AS n2)
                       FROM t JOIN (SELECT n1, row_number() OVER (ORDER BY hash(id)) - 1 AS k FROM t) x
                       ON x.k = t.id) TO '{serving}' (FORMAT parquet)""")
    return training, serving


def _run(code: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        check=False,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"no result from the benchmark process: {done.stdout[-500:]!r} {done.stderr[-500:]!r}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bastion-parity-bench-") as tmp,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task(f"generating {ROWS:,} rows × {NUMERIC + CATEGORICAL} features", total=None)
        training, serving = generate(Path(tmp))
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for footing in FOOTINGS:
            progress.update(task, description=f"bastion parity audit, {footing}")
            ours = _run(OURS, str(training), str(serving), footing)
            progress.update(
                task, description=f"Evidently DataDriftPreset, {EVIDENTLY_ROWS:,} rows, {footing} (minutes)"
            )
            theirs = _run(EVIDENTLY, str(training), str(serving), footing, str(EVIDENTLY_ROWS))
            results[footing] = {"ours": ours, "evidently": theirs}
    scale = ROWS / EVIDENTLY_ROWS
    rows: list[list[Any]] = []
    ratios: dict[str, float] = {}
    for footing, pair in results.items():
        ours, theirs = pair["ours"], pair["evidently"]
        ratios[footing] = float(theirs["seconds"]) * scale / float(ours["seconds"])
        for name, r, n in (("bastion audit", ours, ROWS), ("Evidently 0.7 DataDriftPreset", theirs, EVIDENTLY_ROWS)):
            rows.append([f"{name}, {FOOTINGS[footing]}", f"{n:,}", float(r["seconds"]), float(r["peak_mb"]),
                         ", ".join(r["flagged"])])  # fmt: skip
    render(
        f"Parity audit on {ROWS:,} rows × {NUMERIC + CATEGORICAL} features (bugs: n0 ×1000 on 10%, n1 shuffled; "
        "n2 fp16-rounded is benign)",
        ["case", "rows", "seconds", "peak RSS MB", "flagged"],
        rows,
        note="Evidently / ours (time, per row): "
        + ", ".join(f"{FOOTINGS[f]} {r:.1f}×" for f, r in ratios.items())
        + "; targets: ≤ 10 s, ≤ 2048 MB, ≥ 30× faster",
    )
    path = save("parity", {"rows": ROWS, "footings": results, "evidently_rows": EVIDENTLY_ROWS, "ratios": ratios})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
