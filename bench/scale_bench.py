"""The parity audit on embedded DuckDB and on Spark (local[2] through Spark Connect), side by side, as rows grow.

The same command — `tools.parity.audit(training, serving, ["id"], engine=URL)` — on the same Parquet logs
(`bench.parity_bench.generate`: 40 numeric and 10 categorical features, seed 0.42; the serving copy has a
unit-scaling bug on 10% of n0, a shuffled n1 and fp16-rounded n2), at each size of
BASTION_BENCH_SCALE_ROWS (default 1M and 10M rows). Each audit runs in its own process (wall time, and the
peak RSS of that process: for DuckDB the whole engine, for Spark only the client — the engine is the
server's JVM, whose heap is capped by its driver memory). A run that fails or passes
BASTION_BENCH_SCALE_TIMEOUT seconds is reported as such: the size at which this machine's DuckDB (or Spark)
runs out of memory or time. No target: the point is that the same command works on both engines, that
both find the same bugs, and where the crossover lies on this machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import Progress

from bench.common import ROOT, console, render, save
from bench.parity_bench import CATEGORICAL, NUMERIC, generate

SIZES = [int(s) for s in os.environ.get("BASTION_BENCH_SCALE_ROWS", "1000000,10000000").split(",") if s.strip()]
TIMEOUT_S = float(os.environ.get("BASTION_BENCH_SCALE_TIMEOUT", "1800"))
SPARK_DRIVER_MEMORY = os.environ.get("BASTION_BENCH_SPARK_DRIVER_MEMORY", "8g")
RESULT = re.compile(r'\{"seconds".*\}')
DATA_VERSION = "bench.parity_bench.generate (seed 0.42; bugs: n0 ×1000 on 10%, n1 shuffled, n2 fp16)"

# argv: training, serving, engine URL ("" for embedded DuckDB)
AUDIT = """
import json, sys, time
from bench.common import peak_rss_mb
from tools.parity import audit
began = time.perf_counter()
report = audit(sys.argv[1], sys.argv[2], ["id"], engine=sys.argv[3] or None)
peak_mb = peak_rss_mb()
print(json.dumps({"seconds": time.perf_counter() - began, "peak_mb": peak_mb, "flagged": report.flagged_features}))
"""


def _audit(training: Path, serving: Path, engine: str) -> dict[str, Any]:
    """One audit in its own process: its result, or why there is none (timed out, failed: the last line)."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", AUDIT, str(training), str(serving), engine],
            capture_output=True, check=False, text=True, cwd=ROOT, timeout=TIMEOUT_S,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"outcome": f"timed out after {TIMEOUT_S:g} s"}
    # The result is the last JSON object printed (whatever else shares its line: a library's progress output).
    found = RESULT.findall(done.stdout)
    if done.returncode != 0 or not found:
        last = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["(no output)"])[-1]
        killed = " (killed: out of memory?)" if done.returncode < 0 else ""
        return {"outcome": f"failed, status {done.returncode}{killed}: {last[:300]}"}
    result: dict[str, Any] = json.loads(found[-1])
    result["outcome"] = "ok"
    return result


def _plot(results: dict[str, dict[int, dict[str, Any]]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.common import RESULTS

    fig, ax = plt.subplots(figsize=(7, 4))
    for engine, by_rows in results.items():
        points = [(n, r["seconds"]) for n, r in sorted(by_rows.items()) if r["outcome"] == "ok"]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=engine)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"rows (× {NUMERIC + CATEGORICAL} features)")
    ax.set_ylabel("audit wall time (s)")
    ax.set_title("Parity audit: embedded DuckDB vs Spark local[2]")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "scale_parity.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    from tools.engines.connect_server import connect_server

    results: dict[str, dict[int, dict[str, Any]]] = {"duckdb": {}, "spark local[2]": {}}
    with (
        tempfile.TemporaryDirectory(prefix="bastion-scale-bench-") as tmp,
        Progress(console=console) as progress,
    ):
        task = progress.add_task("starting Spark Connect (local[2])", total=len(SIZES) * 3 + 1)
        spark = connect_server(
            Path(tmp) / "spark",
            driver_memory=SPARK_DRIVER_MEMORY,
            confs={"spark.sql.shuffle.partitions": "8"},  # two local cores: a few partitions, not 200
        )
        with spark as url:
            progress.advance(task)
            for rows in SIZES:
                data = Path(tmp) / f"rows-{rows}"
                data.mkdir()
                progress.update(task, description=f"generating {rows:,} rows × {NUMERIC + CATEGORICAL} features")
                training, serving = generate(data, rows)
                progress.advance(task)
                for engine, target in (("duckdb", ""), ("spark local[2]", url)):
                    progress.update(task, description=f"parity audit of {rows:,} rows on {engine}")
                    results[engine][rows] = _audit(training, serving, target)
                    progress.advance(task)
                for path in (training, serving):
                    path.unlink()

    table: list[list[Any]] = []
    growth: dict[str, float] = {}
    for engine, by_rows in results.items():
        ok = {n: r for n, r in sorted(by_rows.items()) if r["outcome"] == "ok"}
        if len(ok) >= 2:
            (n0, r0), (n1, r1) = next(iter(ok.items())), list(ok.items())[-1]
            growth[engine] = (r1["seconds"] / r0["seconds"]) / (n1 / n0)
        for n, r in sorted(by_rows.items()):
            if r["outcome"] != "ok":
                table.append([engine, f"{n:,}", "—", "—", "—", r["outcome"]])
                continue
            table.append([engine, f"{n:,}", float(r["seconds"]), f"{n / r['seconds']:,.0f}", float(r["peak_mb"]),
                          ", ".join(r["flagged"])])  # fmt: skip
    agree = all(
        results["duckdb"][n].get("flagged") == results["spark local[2]"][n].get("flagged")
        for n in SIZES
        if results["duckdb"][n]["outcome"] == results["spark local[2]"][n]["outcome"] == "ok"
    )
    render(
        f"Parity audit, {NUMERIC + CATEGORICAL} features: embedded DuckDB vs Spark local[2] (engine by URL)",
        ["case", "rows", "seconds", "rows/s", "peak RSS MB (process)", "flagged"],
        table,
        note=(
            "cost growth (time ratio ÷ rows ratio, smallest → largest size; 1.0 = linear): "
            + ", ".join(f"{e} {g:.2f}" for e, g in growth.items())
            + f"\nsame features flagged on both engines: {'yes' if agree else 'NO'}; "
            f"Spark's peak RSS is the client's (the server's heap is capped at {SPARK_DRIVER_MEMORY})"
        ),
    )
    payload = {
        "sizes": SIZES, "features": NUMERIC + CATEGORICAL, "timeout_s": TIMEOUT_S, "data_version": DATA_VERSION,
        "seeds": {"data": 0.42}, "spark_driver_memory": SPARK_DRIVER_MEMORY,
        "results": {e: {str(n): r for n, r in by_rows.items()} for e, by_rows in results.items()},
        "cost_growth": growth, "same_findings": agree,
    }  # fmt: skip
    console.print(f"results: {save('scale_parity', payload)}  plot: {_plot(results)}")


if __name__ == "__main__":
    main()
