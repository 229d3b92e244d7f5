"""`bastion eval sql`: the guard on BIRD mini-dev gold and mutated gold; the agent end to end on the demo.

Validator (no LLM): every gold query of the three dialects must pass (false rejections = 0); each
mutation kind must be caught (≥ 99%). Mutations are made on the parsed gold with sqlglot, so they are
real queries that differ in exactly one way. End to end: the demo's labelled questions with gold SQL,
compared by result set; with no LLM configured, the retrieval-only hit rate.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlglot
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress
from rich.table import Table as RichTable
from sqlglot import exp

from embeddings.evaluation import bird_catalog, bird_dir, demo_questions
from governance.catalog import Catalog
from governance.sqlguard import GuardPolicy, check

DIALECT_FILES = {"sqlite": "mini_dev_sqlite.json", "postgres": "mini_dev_postgresql.json",
                 "mysql": "mini_dev_mysql.json"}  # fmt: skip
MUTATIONS = ["unknown_column", "unknown_table", "deprecated_table", "dml_ddl", "two_statements", "pii_column",
             "garbage"]  # fmt: skip


class ValidatorReport(BaseModel):
    dialect: str
    gold: int
    false_rejections: int
    rejected_examples: list[str]
    caught: dict[str, int]
    tried: dict[str, int]
    misses: dict[str, list[str]]


def database_catalogs(directory: Path) -> dict[str, Catalog]:
    """One catalog per BIRD database, keyed by bare table names as the gold SQL writes them."""
    full = bird_catalog(directory)
    catalogs: dict[str, Catalog] = {}
    for name, table in full.tables.items():
        db, bare = name.split(".", 1)
        catalogs.setdefault(db, Catalog()).tables[bare] = table.model_copy(update={"name": bare, "join_keys": []})
    return catalogs


def _first(tree: exp.Expr, kind: type[exp.Expr], ctes: set[str]) -> Any:
    for node in tree.find_all(kind):
        if isinstance(node, exp.Table) and (node.name.lower() in ctes or not isinstance(node.this, exp.Identifier)):
            continue
        return node
    return None


def mutate(kind: str, sql: str, dialect: str, catalog: Catalog, columns: list[str], n: int) -> tuple[str, Catalog]:
    """One mutation of a gold query; the catalog changes too where the mutation is catalog-side."""
    tree = sqlglot.parse_one(sql, read=dialect)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    table = _first(tree, exp.Table, ctes)
    name = table.name if table is not None else "t"
    if kind == "unknown_column":
        column = _first(tree, exp.Column, ctes)
        column.set("this", exp.to_identifier(f"{column.name}_zz"))
        return tree.sql(dialect=dialect), catalog
    if kind == "unknown_table":
        table.set("this", exp.to_identifier(f"{name}_archive"))
        return tree.sql(dialect=dialect), catalog
    if kind == "deprecated_table":
        real = catalog.table(name)
        assert real is not None
        old = real.model_copy(update={"name": f"{real.name}_v1", "deprecated": True, "successor": real.name})
        changed = catalog.model_copy(update={"tables": {**catalog.tables, old.name: old}})
        table.set("this", exp.to_identifier(old.name))
        return tree.sql(dialect=dialect), changed
    if kind == "dml_ddl":
        statements = [f"DELETE FROM {name}", f"DROP TABLE {name}", f"UPDATE {name} SET x = 1",
                      f"INSERT INTO {name} {sql}", f"CREATE TABLE copy_{name} AS {sql}", f"TRUNCATE TABLE {name}",
                      f"ALTER TABLE {name} ADD COLUMN y INT"]  # fmt: skip
        return statements[n % len(statements)], catalog
    if kind == "two_statements":
        tails = [f"DROP TABLE {name}", "SELECT 1", f"DELETE FROM {name}"]
        return f"{sql}; {tails[n % len(tails)]}", catalog
    if kind == "pii_column":
        # The same gold query once a column it reads is tagged PII in the catalog.
        table_name, column_name = columns[n % len(columns)].rsplit(".", 1)
        target = catalog.tables[table_name]
        tagged = [c.model_copy(update={"pii": "email"}) if c.name == column_name else c for c in target.columns]
        changed = catalog.model_copy(
            update={"tables": {**catalog.tables, table_name: target.model_copy(update={"columns": tagged})}}
        )
        return sql, changed
    garbage = ["hello world", "select", "SELECT 1", "SELECT * FROM (SELECT 1) AS t", f"{name}",
               "SELECT name FROM", "what is the average salary", "SELECT count(*) WHERE 1 = 1"]  # fmt: skip
    return garbage[n % len(garbage)], catalog


def evaluate_validator(directory: Path | None = None, console: Console | None = None) -> list[ValidatorReport]:
    directory = directory or bird_dir()
    catalogs = database_catalogs(directory)
    policy = GuardPolicy(partition_filter_min_rows=None)
    reports: list[ValidatorReport] = []
    with Progress(console=console or Console(), transient=True) as progress:
        for dialect, file in DIALECT_FILES.items():
            items = json.loads((directory / file).read_text())
            task = progress.add_task(f"guard on BIRD {dialect}", total=len(items))
            rejected: list[str] = []
            caught: Counter[str] = Counter()
            tried: Counter[str] = Counter()
            misses: dict[str, list[str]] = {}
            for n, item in enumerate(items):
                catalog = catalogs[item["db_id"]]
                gold = check(item["SQL"], catalog, dialect, policy)
                if not gold.ok:
                    rejected.append(f"{item['question_id']}: {gold.errors[0]}")
                    progress.advance(task)
                    continue
                for kind in MUTATIONS:
                    if kind == "pii_column" and not gold.columns:
                        continue
                    mutated, variant = mutate(kind, item["SQL"], dialect, catalog, gold.columns, n)
                    tried[kind] += 1
                    if not check(mutated, variant, dialect, policy).ok:
                        caught[kind] += 1
                    else:
                        misses.setdefault(kind, []).append(mutated[:200])
                progress.advance(task)
            reports.append(ValidatorReport(dialect=dialect, gold=len(items), false_rejections=len(rejected),
                                           rejected_examples=rejected[:10], caught=dict(caught), tried=dict(tried),
                                           misses={k: v[:5] for k, v in misses.items()}))  # fmt: skip
    return reports


# -- end to end on the demo warehouse ------------------------------------------------------------------


def _canonical(rows: list[list[Any]]) -> Counter[tuple[Any, ...]]:
    def cell(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 4)
        return value

    return Counter(tuple(cell(v) for v in row) for row in rows)


class EndToEnd(BaseModel):
    mode: str
    questions: int
    answered: int = 0
    correct: int = 0
    first_shot_valid: int = 0
    refused_or_failed: int = 0
    overhead_ms: list[float] = []


def evaluate_end_to_end(ask: Callable[[str], Any], run_gold: Callable[[str], list[list[Any]]], mode: str,
                        console: Console | None = None) -> EndToEnd:  # fmt: skip
    labelled = [q for q in demo_questions() if q.sql]
    report = EndToEnd(mode=mode, questions=len(labelled))
    with Progress(console=console or Console(), transient=True) as progress:
        task = progress.add_task(f"demo questions ({mode})", total=len(labelled))
        for question in labelled:
            assert question.sql is not None
            answer = ask(question.question)
            llm_ms = answer.timings_ms.get("llm", 0.0)
            report.overhead_ms.append(sum(answer.timings_ms.values()) - llm_ms)
            if answer.sql is not None:
                report.answered += 1
                report.first_shot_valid += int(answer.attempts <= 1)
                if answer.rows is not None:
                    gold = run_gold(question.sql)
                    report.correct += int(_canonical(answer.rows.rows) == _canonical(gold))
            else:
                report.refused_or_failed += 1
            progress.advance(task)
    return report


def render(validator: list[ValidatorReport], end_to_end: EndToEnd | None, console: Console) -> None:
    table = RichTable(title="SQL guard on BIRD mini-dev gold and mutated gold")
    for column in ["dialect", "gold", "false rejections", *MUTATIONS]:
        table.add_column(column, justify="right")
    for report in validator:
        cells = [f"{report.caught.get(k, 0) / report.tried[k]:.1%} ({report.tried[k]})" if report.tried.get(k)
                 else "—" for k in MUTATIONS]  # fmt: skip
        table.add_row(report.dialect, str(report.gold), str(report.false_rejections), *cells)
    console.print(table)
    if end_to_end is not None:
        e2e = RichTable(title=f"Text-to-SQL on the demo warehouse's labelled questions ({end_to_end.mode})")
        for column in ["questions with gold SQL", "answered", "same result as gold", "first-shot valid", "no SQL"]:
            e2e.add_column(column, justify="right")
        n = end_to_end.questions
        e2e.add_row(str(n), f"{end_to_end.answered} ({end_to_end.answered / n:.0%})",
                    f"{end_to_end.correct} ({end_to_end.correct / n:.0%})",
                    f"{end_to_end.first_shot_valid}", str(end_to_end.refused_or_failed))  # fmt: skip
        console.print(e2e)
