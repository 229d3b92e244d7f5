"""`bastion ask` and `bastion eval sql`: the Text-to-SQL agent and its evaluation from a shell."""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bastion.console import err, fail, out

if TYPE_CHECKING:
    from agents.text2sql.answer import Answer


def _agent() -> Any:
    from agents.text2sql import Text2SQLAgent
    from tools.sql.service import SqlService

    return Text2SQLAgent(SqlService())


def _answer(question: str, execute: bool, dialect: str | None) -> Any:
    """The running server's answer when one is up (its model is loaded), else the agent's in-process."""
    from agents.text2sql.answer import Answer
    from bastion.remote import ToolFailed, from_server
    from tools.sql.service import SqlError

    try:
        found = from_server("sql__ask", {"question": question, "execute": execute, "dialect": dialect})
    except ToolFailed as exc:
        raise SqlError(exc.code, exc.message) from None
    if found is not None:
        return Answer.model_validate(found)
    return _agent().ask(question, execute=execute, dialect=dialect)


_MIDNIGHT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]00:00:00")


def format_value(value: Any, column: str = "") -> str:
    """A cell as people read it: thousands separators, two decimals from 1 up, four significant digits below
    (a rate), ids and years as they are, dates in ISO."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    name = column.lower()
    plain = name == "id" or name.endswith(("_id", "_ids")) or name in ("year", "yr")
    if isinstance(value, int):
        return str(value) if plain else f"{value:,}"
    if isinstance(value, Decimal):
        value = float(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        if value == 0:
            return "0"
        if abs(value) >= 1:
            return f"{value:,.2f}"
        return f"{value:#.4g}"
    if isinstance(value, datetime) and value.time() == time() and value.tzinfo is None:
        return value.date().isoformat()  # date_trunc('week', …) and the like: a day, not an instant
    if isinstance(value, date | datetime):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, str) and _MIDNIGHT.fullmatch(value):
        return value[:10]  # the engine's rows carry dates as text
    return str(value)


def _numeric(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int | float | Decimal) and not isinstance(v, bool) for v in present)


def print_answer(answer: Answer, console: Console, max_shown: int = 100) -> None:
    """An answer for people: what to know about a reused or composed query first, then the SQL, warnings, rows."""
    reuse = answer.reuse
    first = reuse.message if reuse is not None and reuse.message else None
    if reuse is not None and first:
        label = "[yellow]note:[/]" if reuse.dates_differ or reuse.status == "unchanged" else "[cyan]note:[/]"
        console.print(f"{label} {escape(first)}")
    elif (answer.source == "composed" or answer.declined) and answer.notes:
        first = answer.notes[0]  # how the question was read, or why it is not answered: before anything else
        console.print(f"[yellow]note:[/] {escape(first)}")
    console.print(f"[bold]{answer.kind}[/] · mode: {answer.mode} · engine dialect: {answer.dialect}")
    for note in answer.notes:
        if note != first:
            console.print(f"[cyan]note:[/] {escape(note)}")
    for definition in answer.definitions:
        console.print(f"  definition: {escape(definition)}")
    if answer.kind in ("table_discovery", "docs_lookup", "text_to_sql"):
        for hit in answer.candidate_tables[:5]:
            console.print(
                f"  table {hit.rank}. {hit.table} (T{hit.tier or '?'}) — {escape(hit.description or '')[:90]}"
            )
    if answer.kind == "query_discovery":
        for query in answer.past_queries:
            status = "valid today" if query.valid_today else "NOT valid today"
            console.print(f"  query {query.hit.rank}. {escape(query.hit.summary)} ({status})")
    if answer.sql:
        console.print(f"\n[bold]SQL[/] ({answer.source}; tables: {', '.join(answer.tables)}):")
        console.print(escape(answer.sql_in_dialect or answer.sql), highlight=False)
    for warning in answer.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    for error in answer.errors:
        console.print(f"[red]error:[/] {escape(str(error))}")
    rows = answer.rows
    if rows is not None:
        truncated = rows.truncated or answer.truncated
        shown = rows.rows[:max_shown]
        caption = (
            f"{rows.row_count:,} rows"
            if len(shown) == rows.row_count
            else f"{len(shown):,} of {rows.row_count:,} rows shown"
        )
        table = Table(caption=caption + (" (truncated)" if truncated else ""))
        for i, column in enumerate(rows.columns):
            numeric = _numeric([row[i] for row in shown if i < len(row)])
            table.add_column(escape(column), justify="right" if numeric else "left")
        for row in shown:
            table.add_row(*[escape(format_value(v, c)) for v, c in zip(row, rows.columns, strict=False)])
        console.print(table)
        if truncated and not any("truncated" in w for w in answer.warnings):
            console.print(f"[yellow]warning:[/] the result was truncated at {rows.row_count:,} rows; there are more")


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
        answer = _answer(question, execute, dialect)
    except SqlError as exc:
        fail(f"{exc.code}: {exc.message}")
    if as_json:
        out.print_json(answer.model_dump_json())
        return
    print_answer(answer, out)
    if answer.errors:
        # A refused or failed request is a failure for scripts too (an explicit SQL the guard refuses above all).
        raise typer.Exit(2)


def eval_sql(
    skip_bird: Annotated[bool, typer.Option(help="Only the end-to-end run on the demo")] = False,
    results: Annotated[Path, typer.Option("--out", help="Where the JSON goes")] = Path("bench/results"),
    half: Annotated[
        Literal["all", "dev", "held_out"],
        typer.Option(help="The demo questions to run: all (both halves reported), or one half of the split"),
    ] = "all",
) -> None:
    """The SQL guard on BIRD mini-dev (gold and mutations) and the agent end to end on the demo questions."""
    from tools.sql.evaluation import SPLIT_SEED, evaluate_end_to_end, evaluate_validator, render, split

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
        lambda q: agent.ask(q, execute=True), lambda sql: engine.run(sql, max_rows=100_000, timeout=60).rows, mode, err,
        half=half,
    )  # fmt: skip
    render(validator, end_to_end, out)
    if mode == "retrieval_only":
        out.print(
            "No LLM configured: execution accuracy and first-shot validity of generated SQL were not measured; "
            "the end-to-end row is the retrieval-only hit rate: a verified past query that fits the question "
            "(re-parameterised with its dates, ids and values), else a query composed from the catalog's metrics, "
            "columns and joins, else the closest past query — with the gold result. Answers run as `ask --execute` "
            "does (LIMIT 100 added where a query has none): a truncated answer is not the gold result."
        )
    results.mkdir(parents=True, exist_ok=True)
    path = results / "sql_eval.json"
    from embeddings.evaluation import bird_dir, demo_questions
    from embeddings.settings import DEMO_DIR
    from tools.provenance import data_version, provenance
    from tools.sql.evaluation import DIALECT_FILES

    data = {"demo": data_version([DEMO_DIR / "questions.yaml", DEMO_DIR / "metadata.yaml"])}
    log = agent.service.index.query_log_file()
    if log is not None and log.exists():
        data["demo_query_log"] = data_version([log])  # the verified past queries reused (history seed 7)
    if validator:
        data["bird_minidev"] = data_version(bird_dir() / f for f in DIALECT_FILES.values())
    dev, held_out = split([q.id for q in demo_questions() if q.sql], SPLIT_SEED)
    stamp = provenance(
        [SPLIT_SEED], data, mode=mode, mutation_positions="the n-th gold query's mutation uses position n",
        split={"seed": SPLIT_SEED, "half_run": half, "dev": dev, "held_out": held_out},
        as_of=str(agent.service.catalog.as_of), default_limit=agent.service.settings.default_limit,
        max_rows=agent.service.settings.max_rows,
    )  # fmt: skip
    path.write_text(json.dumps({"validator": [r.model_dump() for r in validator],
                                "end_to_end": end_to_end.model_dump(), "provenance": stamp}, indent=2))  # fmt: skip
    out.print(f"wrote {path}")
