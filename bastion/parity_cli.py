"""`bastion eval parity` and `bastion parity audit`: the training/serving parity audit from a shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bastion.console import err, fail, out

parity_app = typer.Typer(no_args_is_help=True, help="Training/serving parity audits.")


@parity_app.command("audit")
def audit_command(
    training: Annotated[str, typer.Argument(help="Training log: file, table:NAME or sql:SELECT …")],
    serving: Annotated[str, typer.Argument(help="Serving log: file, table:NAME or sql:SELECT …")],
    key: Annotated[list[str], typer.Option("--key", help="Join key (repeatable)")],
    time_column: Annotated[str | None, typer.Option(help="Timestamp column (enables the staleness check)")] = None,
    report: Annotated[Path | None, typer.Option(help="Write a Markdown report (and plots) here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full result as JSON")] = False,
) -> None:
    """Audit a training log against a serving log joined on the keys."""
    from tools.parity import ParityError, audit
    from tools.parity.report import write_report

    try:
        result = audit(training, serving, key, time_column=time_column)
    except ParityError as exc:
        fail(str(exc))
    if as_json:
        out.print_json(result.model_dump_json())
    else:
        c = result.coverage
        partial = " — PARTIAL: " + "; ".join(result.problems) if result.partial else ""
        out.print(
            f"{c.joined_rows:,} keys joined ({c.training_rows:,} training rows, {c.serving_rows:,} serving "
            f"rows) in {result.elapsed_s:.2f}s{partial}"
        )
        for finding in result.findings:
            out.print(
                f"[{finding.severity}] {escape(finding.summary)}\n    likely cause: {escape(finding.likely_cause)}"
            )
    if report is not None:
        path = write_report(result, report, training, serving)
        out.print(f"wrote {path}")
    if any(f.severity in ("critical", "high") for f in result.findings):
        raise typer.Exit(3)


def eval_parity(
    evidently: Annotated[bool, typer.Option(help="Run Evidently's drift preset side by side")] = True,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON goes")] = Path("bench/results"),
    engine: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Where the audits run: sc://HOST:PORT or spark://HOST:PORT for Spark (default: BASTION_PARITY_ENGINE, "
            "else embedded DuckDB)",
        ),
    ] = None,
) -> None:
    """Bug-injection suites on NannyML's synthetic_car_loan: our audit beside a keyed diff and
    Evidently's drift preset — the harder suite (bugs on 0.1–10% of rows, subtle kinds, 20 clean
    pairs) first, then the classic one. With --engine (or BASTION_PARITY_ENGINE) the audits run on that
    engine: on Spark, expect minutes (each audit is a few dozen Spark queries)."""
    from embeddings.settings import IndexSettings
    from tools.parity.evaluation import car_loan, render, run_suite, score
    from tools.parity.hard_suite import render_hard, run_hard_suite
    from tools.parity.server import ParitySettings
    from tools.provenance import data_version, provenance

    engine = engine or ParitySettings().engine
    csv = car_loan(IndexSettings().datasets_dir)
    if engine:
        err.print(f"audits run on {engine}")
    hard = run_hard_suite(csv, with_evidently=evidently, console=err, engine=engine)
    render_hard(hard, out)
    out.print("Classic suite (one bug per pair on every row it targets; each kind matches one of our diagnosers):")
    suite = run_suite(csv, with_evidently=evidently, console=err, engine=engine)
    render(suite, out)
    results.mkdir(parents=True, exist_ok=True)
    from tools.engines import is_spark

    path = results / ("parity_eval_spark.json" if is_spark(engine) else "parity_eval.json")
    path.write_text(
        json.dumps(
            {
                "engine": "spark" if is_spark(engine) else "duckdb (embedded)",
                "harder": hard,
                "classic": {
                    "scenarios": [s.model_dump() for s in suite],
                    "ours": score(suite, "ours"),
                    "evidently": score(suite, "evidently"),
                },
                "provenance": provenance([0], {"synthetic_car_loan": data_version([csv])}, evidently=evidently),
            },
            indent=2,
        )
    )
    out.print(f"wrote {path}")
