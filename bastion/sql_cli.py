"""`bastion ask` and `bastion eval sql`: the Text-to-SQL agent and its evaluation from a shell."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from bastion.console import err, fail, out


def _agent() -> Any:
    from agents.text2sql import Text2SQLAgent
    from tools.sql.service import SqlService

    return Text2SQLAgent(SqlService())


def ask(
    question: str,
    execute: Annotated[bool, typer.Option("--execute", help="Run the query (LIMIT 100 by default)")] = False,
    dialect: Annotated[str | None, typer.Option(help="Also show the SQL in this dialect, e.g. trino")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full answer as JSON")] = False,
) -> None:
    """Question in words → validated SQL (verified past queries first), optionally executed."""
    from governance.sqlguard import SUPPORTED_DIALECTS
    from tools.sql.service import SqlError

    if dialect is not None and dialect not in SUPPORTED_DIALECTS:
        fail(f"--dialect {dialect!r} is not supported; use one of {', '.join(SUPPORTED_DIALECTS)}")
    try:
        answer = _agent().ask(question, execute=execute, dialect=dialect)
    except SqlError as exc:
        fail(f"{exc.code}: {exc.message}")
    if as_json:
        out.print_json(answer.model_dump_json())
        return
    out.print(f"[bold]{answer.kind}[/] · mode: {answer.mode} · engine dialect: {answer.dialect}")
    for note in answer.notes:
        out.print(f"[cyan]note:[/] {escape(note)}")
    for definition in answer.definitions:
        out.print(f"  definition: {escape(definition)}")
    if answer.kind in ("table_discovery", "docs_lookup", "text_to_sql"):
        for hit in answer.candidate_tables[:5]:
            out.print(f"  table {hit.rank}. {hit.table} (T{hit.tier or '?'}) — {escape(hit.description or '')[:90]}")
    if answer.kind == "query_discovery":
        for query in answer.past_queries:
            status = "valid today" if query.valid_today else "NOT valid today"
            out.print(f"  query {query.hit.rank}. {escape(query.hit.summary)} ({status})")
    if answer.sql:
        out.print(f"\n[bold]SQL[/] ({answer.source}; tables: {', '.join(answer.tables)}):")
        out.print(escape(answer.sql_in_dialect or answer.sql), highlight=False)
    for warning in answer.warnings:
        out.print(f"[yellow]warning:[/] {escape(warning)}")
    for error in answer.errors:
        out.print(f"[red]error:[/] {escape(str(error))}")
    if answer.rows is not None:
        table = Table(*answer.rows.columns, caption=f"{answer.rows.row_count} rows"
                      + (" (truncated)" if answer.rows.truncated else ""))  # fmt: skip
        for row in answer.rows.rows[:100]:
            table.add_row(*[escape(str(v)) for v in row])
        out.print(table)
    if answer.errors:
        # A refused or failed request is a failure for scripts too (an explicit SQL the guard refuses above all).
        raise typer.Exit(2)


def eval_sql(
    skip_bird: Annotated[bool, typer.Option(help="Only the end-to-end run on the demo")] = False,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON goes")] = Path("bench/results"),
) -> None:
    """The SQL guard on BIRD mini-dev (gold and mutations) and the agent end to end on the demo questions."""
    from tools.sql.evaluation import evaluate_end_to_end, evaluate_validator, render

    validator = []
    if not skip_bird:
        try:
            validator = evaluate_validator(console=err)
        except FileNotFoundError as exc:
            err.print(f"[yellow]BIRD skipped:[/] {escape(str(exc))}")
    agent = _agent()
    mode = "llm" if agent.llm.configured else "retrieval_only"
    engine = agent.service.engine()
    end_to_end = evaluate_end_to_end(
        lambda q: agent.ask(q, execute=True), lambda sql: engine.run(sql, max_rows=100_000, timeout=60).rows, mode, err
    )
    render(validator, end_to_end, out)
    if mode == "retrieval_only":
        out.print(
            "No LLM configured: execution accuracy and first-shot validity of generated SQL were not measured; "
            "the end-to-end row is the retrieval-only hit rate (a verified past query with the gold result)."
        )
    results.mkdir(parents=True, exist_ok=True)
    path = results / "sql_eval.json"
    from embeddings.evaluation import bird_dir
    from embeddings.settings import DEMO_DIR
    from tools.provenance import data_version, provenance
    from tools.sql.evaluation import DIALECT_FILES

    data = {"demo": data_version([DEMO_DIR / "questions.yaml", DEMO_DIR / "metadata.yaml"])}
    if validator:
        data["bird_minidev"] = data_version(bird_dir() / f for f in DIALECT_FILES.values())
    stamp = provenance([], data, mode=mode, mutation_positions="the n-th gold query's mutation uses position n")
    path.write_text(json.dumps({"validator": [r.model_dump() for r in validator],
                                "end_to_end": end_to_end.model_dump(), "provenance": stamp}, indent=2))  # fmt: skip
    out.print(f"wrote {path}")
