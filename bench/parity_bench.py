"""A full parity audit of 1,000,000 rows × 50 features, beside Evidently's data-drift preset on the same data.

Training and serving logs are Parquet files (40 numeric and 10 categorical features; the serving
copy carries a unit-scaling bug, a shuffled feature and fp16 rounding). Each method runs in its own
process, which reports its wall time and peak RSS, so neither pays for the other's memory.
Targets: ours ≤ 10 s and ≤ 2 GiB, at least 30× faster than Evidently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
from rich.progress import Progress

from bench.common import ROOT, console, render, save

ROWS = int(os.environ.get("BASTION_BENCH_PARITY_ROWS", "1000000"))
EVIDENTLY_ROWS = int(os.environ.get("BASTION_BENCH_PARITY_EVIDENTLY_ROWS", str(ROWS)))
NUMERIC, CATEGORICAL = 40, 10

OURS = """
import json, resource, sys, time
from tools.parity import audit
began = time.perf_counter()
report = audit(sys.argv[1], sys.argv[2], ["id"])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb, "flagged": report.flagged_features}))
"""
EVIDENTLY = """
import json, resource, sys, time
import duckdb
from tools.parity.evaluation import _evidently
began = time.perf_counter()
rows = int(sys.argv[3])
training = duckdb.execute(f"SELECT * EXCLUDE (id) FROM '{sys.argv[1]}' ORDER BY id LIMIT {rows}").df()
serving = duckdb.execute(f"SELECT * EXCLUDE (id) FROM '{sys.argv[2]}' ORDER BY id LIMIT {rows}").df()
flagged = _evidently(training, serving, list(training.columns))
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb, "flagged": flagged}))
"""


def generate(directory: Path) -> tuple[Path, Path]:
    numeric = ", ".join(f"round(random() * {i + 1} * 10, 4) AS n{i}" for i in range(NUMERIC))
    categorical = ", ".join(
        f"['a', 'b', 'c', 'd', 'e'][1 + (hash(i * {j + 3}) % 5)::INT] AS c{j}" for j in range(CATEGORICAL)
    )
    training, serving = directory / "training.parquet", directory / "serving.parquet"
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    con.execute(f"CREATE TABLE t AS SELECT i AS id, {numeric}, {categorical} FROM range({ROWS}) r(i)")
    con.execute(f"COPY t TO '{training}' (FORMAT parquet)")
    con.execute(f"""COPY (SELECT t.* REPLACE (CASE WHEN id % 10 = 0 THEN n0 * 1000 ELSE n0 END AS n0,
                     x.n1 AS n1, CAST(CAST(n2 AS FLOAT) AS DOUBLE) AS n2)
                   FROM t JOIN (SELECT n1, row_number() OVER (ORDER BY hash(id)) - 1 AS k FROM t) x ON x.k = t.id)
                   TO '{serving}' (FORMAT parquet)""")
    return training, serving


def _run(code: str, *args: str) -> dict[str, object]:
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
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bastion-parity-bench-") as tmp,
        Progress(console=console, transient=True) as progress,
    ):
        task = progress.add_task(f"generating {ROWS:,} rows × {NUMERIC + CATEGORICAL} features", total=None)
        training, serving = generate(Path(tmp))
        progress.update(task, description="bastion parity audit")
        ours = _run(OURS, str(training), str(serving))
        progress.update(task, description=f"Evidently DataDriftPreset on {EVIDENTLY_ROWS:,} rows (minutes)")
        theirs = _run(EVIDENTLY, str(training), str(serving), str(EVIDENTLY_ROWS))
    scale = ROWS / EVIDENTLY_ROWS
    ratio = float(theirs["seconds"]) * scale / float(ours["seconds"])  # type: ignore[arg-type]
    rows = [
        [
            "bastion audit (equality + coverage + distributions + diagnosis)",
            f"{ROWS:,}",
            float(ours["seconds"]),  # type: ignore[arg-type]
            float(ours["peak_mb"]),
            ", ".join(ours["flagged"]),
        ],  # type: ignore[arg-type]
        [
            "Evidently 0.7 DataDriftPreset",
            f"{EVIDENTLY_ROWS:,}",
            float(theirs["seconds"]),  # type: ignore[arg-type]
            float(theirs["peak_mb"]),
            ", ".join(theirs["flagged"]),
        ],  # type: ignore[arg-type]
    ]
    render(
        f"Parity audit on {ROWS:,} rows × {NUMERIC + CATEGORICAL} features (bugs: n0 ×1000 on 10%, n1 shuffled; "
        "n2 fp16-rounded is benign)",
        ["case", "rows", "seconds", "peak RSS MB", "flagged"],
        rows,
        note=f"Evidently / ours = {ratio:.1f}× (time, per row); targets: ≤ 10 s, ≤ 2048 MB, ≥ 30× faster",
    )
    path = save(
        "parity", {"rows": ROWS, "ours": ours, "evidently": theirs, "evidently_rows": EVIDENTLY_ROWS, "ratio": ratio}
    )
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
