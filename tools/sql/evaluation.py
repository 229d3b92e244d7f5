"""`bastion eval sql`: the guard on BIRD mini-dev gold and mutated gold; the agent end to end on the demo.

Validator (no LLM): every gold query of the three dialects must pass (false rejections = 0); each
mutation kind must be caught (≥ 99%). Mutations are made on the parsed gold with sqlglot, so they are
real queries that differ in exactly one way. End to end: the demo's labelled questions with gold SQL,
compared by result set; with no LLM configured, the retrieval-only hit rate. The labelled questions are split in
two halves with a fixed seed (`SPLIT_SEED`): rules are developed looking at the dev half only, and both halves are
reported, the held-out one apart, so a figure tuned on what it is measured on shows.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import sqlglot
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table as RichTable
from sqlglot import exp

from embeddings.evaluation import Labelled, bird_catalog, bird_dir, demo_questions
from governance.catalog import Catalog
from governance.sqlguard import GuardPolicy, check
from tools.progress import bar

DIALECT_FILES = {"sqlite": "mini_dev_sqlite.json", "postgres": "mini_dev_postgresql.json",
                 "mysql": "mini_dev_mysql.json"}  # fmt: skip
# Where an unknown column is put: a random column of that clause is replaced, or the clause is added
# when the query has none (JOIN ON cannot be added: queries without a join skip it).
CLAUSES = ("select", "where", "group_by", "having", "order_by", "join_on", "window")
MUTATIONS = [
    *(f"sibling_column@{c}" for c in CLAUSES),  # a column of another table of the database, not read here
    *(f"typo@{c}" for c in CLAUSES),  # a near miss (edit distance 1–2) of a column the query can see
    "wrong_alias", "unknown_table", "deprecated_table", "dml_ddl", "two_statements",
    "pii_column", "pii_whole_row", "pii_columns_star", "garbage",
]  # fmt: skip


class ValidatorReport(BaseModel):
    dialect: str
    gold: int
    false_rejections: int
    rejected_examples: list[str]
    caught: dict[str, int]
    tried: dict[str, int]
    misses: dict[str, list[str]]
    crashes: list[str] = []
    crash_count: int = 0


def database_catalogs(directory: Path) -> dict[str, Catalog]:
    """One catalog per BIRD database, keyed by bare table names as the gold SQL writes them."""
    full = bird_catalog(directory)
    catalogs: dict[str, Catalog] = {}
    for name, table in full.tables.items():
        db, bare = name.split(".", 1)
        catalogs.setdefault(db, Catalog()).tables[bare] = table.model_copy(update={"name": bare, "join_keys": []})
    return catalogs


class Inapplicable(Exception):
    """This mutation does not apply to this query (e.g. JOIN ON in a query without a join)."""


def _tables(tree: exp.Expr, ctes: set[str]) -> list[exp.Table]:
    return [t for t in tree.find_all(exp.Table) if t.name.lower() not in ctes and isinstance(t.this, exp.Identifier)]


def _visible(tree: exp.Expr, catalog: Catalog, ctes: set[str]) -> set[str]:
    """Every name the query could resolve: its tables' columns, and every identifier it spells."""
    names = {i.name.lower() for i in tree.find_all(exp.Identifier)}
    for table in _tables(tree, ctes):
        known = catalog.table(table.name)
        names |= {c.name.lower() for c in known.columns} if known is not None else set()
    return names


def _sibling(tree: exp.Expr, catalog: Catalog, ctes: set[str], n: int) -> str:
    read = {t.name.lower() for t in _tables(tree, ctes)}
    visible = _visible(tree, catalog, ctes)
    candidates = sorted({c.name for key, t in catalog.tables.items() if key.lower() not in read for c in t.columns
                         if c.name.lower() not in visible and c.name.isidentifier()})  # fmt: skip
    if not candidates:
        raise Inapplicable("no sibling column")
    return candidates[n % len(candidates)]


def _typo(tree: exp.Expr, catalog: Catalog, ctes: set[str], n: int) -> str:
    """A deterministic near miss of one of the query's visible columns: one or two edits."""
    visible = _visible(tree, catalog, ctes)
    sources = sorted(
        {c.name for t in _tables(tree, ctes) if (k := catalog.table(t.name)) for c in k.columns if len(c.name) >= 4}
    )
    if not sources:
        raise Inapplicable("no column to misspell")
    word = sources[n % len(sources)]
    i = 1 + (n // 7) % (len(word) - 2)
    edits = [
        word[:i] + word[i + 1 :],  # a letter dropped
        word[:i] + word[i + 1] + word[i] + word[i + 2 :],  # two letters swapped
        word[:i] + word[i] + word[i:],  # a letter doubled
        word[: i - 1] + word[i + 1 :],  # two letters dropped
    ]
    for step in range(len(edits)):
        candidate = edits[(n + step) % len(edits)]
        if candidate.lower() not in visible and candidate.isidentifier():
            return candidate
    raise Inapplicable("every near miss is a real column")


def _place(tree: exp.Expr, clause: str, name: str, n: int, dialect: str) -> None:
    """Put column `name` in `clause`: replace a random column there, or add the clause."""
    select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
    if select is None:
        raise Inapplicable("no SELECT")
    unknown = exp.column(name)
    holders: dict[str, list[exp.Expr]] = {
        "select": list(select.expressions),
        "where": [select.args["where"]] if select.args.get("where") else [],
        "group_by": [select.args["group"]] if select.args.get("group") else [],
        "having": [select.args["having"]] if select.args.get("having") else [],
        "order_by": [select.args["order"]] if select.args.get("order") else [],
        "join_on": [j.args["on"] for j in select.args.get("joins") or [] if j.args.get("on")],
        "window": list(select.find_all(exp.Window)),
    }
    columns = [c for holder in holders[clause] for c in holder.find_all(exp.Column) if c.name]
    if columns:
        columns[n % len(columns)].replace(unknown)
        return
    if clause == "select":
        select.select(unknown, copy=False)
    elif clause == "where":
        select.where(exp.Not(this=exp.Is(this=unknown, expression=exp.Null())), copy=False)
    elif clause == "group_by":
        select.group_by(unknown, copy=False)
    elif clause == "having":
        select.having(exp.GT(this=unknown, expression=exp.Literal.number(0)), copy=False)
    elif clause == "order_by":
        select.order_by(unknown, copy=False)
    elif clause == "window":
        window = sqlglot.parse_one(f"ROW_NUMBER() OVER (PARTITION BY {name})", read=dialect)
        select.select(exp.alias_(window, "mutation_rank"), copy=False)
    else:
        raise Inapplicable(f"no {clause}")


def _tag_pii(catalog: Catalog, table_name: str, column_name: str | None = None) -> Catalog:
    target = catalog.table(table_name)
    if target is None or not target.columns:
        raise Inapplicable("no catalog table")
    column_name = column_name or target.columns[-1].name
    tagged = [c.model_copy(update={"pii": "email"}) if c.name == column_name else c for c in target.columns]
    key = next(k for k, t in catalog.tables.items() if t is target)
    return catalog.model_copy(update={"tables": {**catalog.tables, key: target.model_copy(update={"columns": tagged})}})


def mutate(kind: str, sql: str, dialect: str, catalog: Catalog, columns: list[str], n: int) -> tuple[str, Catalog]:
    """One mutation of a gold query, at a position chosen by `n`; the catalog changes too where the
    mutation is catalog-side. Raises `Inapplicable` when the query offers no place for it."""
    tree = sqlglot.parse_one(sql, read=dialect)
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    tables = _tables(tree, ctes)
    table = tables[n % len(tables)] if tables else None
    name = table.name if table is not None else "t"
    if kind.startswith(("sibling_column@", "typo@")):
        family, clause = kind.split("@")
        unknown = (_sibling if family == "sibling_column" else _typo)(tree, catalog, ctes, n)
        _place(tree, clause, unknown, n, dialect)
        return tree.sql(dialect=dialect), catalog
    if kind == "wrong_alias":
        qualified = [c for c in tree.find_all(exp.Column) if c.table]
        if not qualified:
            raise Inapplicable("no qualified column")
        column = qualified[n % len(qualified)]
        aliases = {t.alias_or_name: t for t in tables}
        for alias, source in aliases.items():  # another table of the query that lacks the column
            known = catalog.table(source.name)
            if alias != column.table and known is not None and not known.column(column.name):
                column.set("table", exp.to_identifier(alias))
                return tree.sql(dialect=dialect), catalog
        column.set("table", exp.to_identifier("t_undefined"))  # else an alias the query never defines
        return tree.sql(dialect=dialect), catalog
    if table is None and kind in ("unknown_table", "deprecated_table", "pii_whole_row", "pii_columns_star"):
        raise Inapplicable("no table")
    if kind == "unknown_table":
        assert table is not None
        table.set("this", exp.to_identifier(f"{name}_archive" if n % 2 else f"{name}s"))
        return tree.sql(dialect=dialect), catalog
    if kind == "deprecated_table":
        real = catalog.table(name)
        assert real is not None and table is not None
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
        if not columns:
            raise Inapplicable("reads no column")
        table_name, column_name = columns[n % len(columns)].rsplit(".", 1)
        return sql, _tag_pii(catalog, table_name, column_name)
    if kind == "pii_whole_row":
        # A table holding a PII column, read whole: `t.*`, the row as a value, or the row as JSON.
        assert table is not None
        alias = table.alias_or_name
        select = tree if isinstance(tree, exp.Select) else tree.find(exp.Select)
        if select is None:
            raise Inapplicable("no SELECT")
        value = [f"{alias}.*", alias, f"to_json({alias})", f"row_to_json({alias})"][n % 4]
        select.set("expressions", [sqlglot.parse_one(value, read=dialect)])
        return tree.sql(dialect=dialect), _tag_pii(catalog, name)
    if kind == "pii_columns_star":
        assert table is not None
        return f"SELECT COLUMNS(*) FROM {name}", _tag_pii(catalog, name)
    garbage = ["hello world", "select", "SELECT * FROM (SELECT 1) AS t WHERE", f"{name}",
               "SELECT name FROM", "what is the average salary", "SELECT count(*) WHERE 1 = 1 AND",
               f"SELECT * FORM {name}", f"SELECT * FROM {name} WHERE (1 = 1"]  # fmt: skip
    return garbage[n % len(garbage)], catalog


def evaluate_validator(directory: Path | None = None, console: Console | None = None) -> list[ValidatorReport]:
    directory = directory or bird_dir()
    catalogs = database_catalogs(directory)
    policy = GuardPolicy(partition_filter_min_rows=None)
    reports: list[ValidatorReport] = []
    with bar(console) as progress:
        for dialect, file in DIALECT_FILES.items():
            items = json.loads((directory / file).read_text())
            task = progress.add_task(f"guard on BIRD {dialect}", total=len(items))
            rejected: list[str] = []
            caught: Counter[str] = Counter()
            tried: Counter[str] = Counter()
            misses: dict[str, list[str]] = {}
            crashes: list[str] = []
            for n, item in enumerate(items):
                catalog = catalogs[item["db_id"]]
                gold = check(item["SQL"], catalog, dialect, policy)
                if not gold.ok:
                    rejected.append(f"{item['question_id']}: {gold.errors[0]}")
                    progress.advance(task)
                    continue
                for kind in MUTATIONS:
                    try:
                        mutated, variant = mutate(kind, item["SQL"], dialect, catalog, gold.columns, n)
                    except Inapplicable:
                        continue
                    tried[kind] += 1
                    try:
                        refused = not check(mutated, variant, dialect, policy).ok
                    except Exception as exc:
                        crashes.append(f"{kind}: {type(exc).__name__}: {str(exc)[:120]} in {mutated[:120]}")
                        continue
                    if refused:
                        caught[kind] += 1
                    else:
                        misses.setdefault(kind, []).append(mutated[:200])
                progress.advance(task)
            reports.append(ValidatorReport(dialect=dialect, gold=len(items), false_rejections=len(rejected),
                                           rejected_examples=rejected[:10], caught=dict(caught), tried=dict(tried),
                                           misses={k: v[:5] for k, v in misses.items()},
                                           crashes=crashes[:20], crash_count=len(crashes)))  # fmt: skip
    return reports


# -- end to end on the demo warehouse ------------------------------------------------------------------


def _canonical(rows: list[list[Any]]) -> Counter[tuple[Any, ...]]:
    def cell(value: Any) -> Any:
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 4)
        return value

    return Counter(tuple(cell(v) for v in row) for row in rows)


def _without_limit(sql: str, dialect: str) -> str | None:
    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError:
        return None
    if not isinstance(tree, exp.Query) or tree.args.get("limit") is None:
        return None
    tree.set("limit", None)
    return tree.sql(dialect=dialect)


SPLIT_SEED = 17  # the dev / held-out split of the demo's labelled questions
Half = Literal["dev", "held_out"]


def split(ids: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(dev, held-out): the ids shuffled with `seed`, the first half to develop on, the rest held out."""
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    half = len(ordered) // 2
    return sorted(ordered[:half]), sorted(ordered[half:])


class Outcome(BaseModel):
    id: str
    half: Half
    answered: bool
    correct: bool
    truncated: bool = False
    correct_uncapped: bool = False  # the same SQL without the LIMIT the guard added gives the gold result
    reuse: str | None = None  # reparameterised / unchanged / as_is
    source: str | None = None  # reused / composed / generated


class HalfScore(BaseModel):
    questions: int = 0
    correct: int = 0
    correct_uncapped: int = 0


class EndToEnd(BaseModel):
    mode: str
    questions: int
    answered: int = 0
    correct: int = 0
    first_shot_valid: int = 0
    refused_or_failed: int = 0
    truncated: int = 0
    correct_uncapped: int = 0  # diagnostic: correct, or right once the LIMIT the guard added is taken off
    reparameterised: int = 0
    composed: int = 0  # answered by a query composed from the catalog (retrieval-only mode)
    composed_correct: int = 0
    overhead_ms: list[float] = []
    split_seed: int = SPLIT_SEED
    dev: HalfScore = HalfScore()
    held_out: HalfScore = HalfScore()
    outcomes: list[Outcome] = []


def evaluate_end_to_end(
    ask: Callable[[str], Any],
    run_gold: Callable[[str], list[list[Any]]],
    mode: str,
    console: Console | None = None,
    *,
    seed: int = SPLIT_SEED,
    half: Literal["all", "dev", "held_out"] = "all",
    questions: list[Labelled] | None = None,
    dialect: str = "duckdb",
) -> EndToEnd:
    """Each labelled question asked, its rows compared with the gold query's (as multisets, floats to 4 places);
    scored per half of the `seed` split. `half` runs one half only (developing on "dev").

    A truncated answer is not the gold result. As a diagnostic apart (`correct_uncapped`), a truncated answer's
    SQL is also run without its outer LIMIT (the one the guard added), with `run_gold`'s row cap: how many
    answers are right but cut for display."""
    labelled = [q for q in (questions if questions is not None else demo_questions()) if q.sql]
    dev, _ = split([q.id for q in labelled], seed)
    halves: dict[str, Half] = {q.id: "dev" if q.id in dev else "held_out" for q in labelled}
    if half != "all":
        labelled = [q for q in labelled if halves[q.id] == half]
    report = EndToEnd(mode=mode, questions=len(labelled), split_seed=seed)
    with bar(console) as progress:
        task = progress.add_task(f"demo questions ({mode})", total=len(labelled))
        for question in labelled:
            assert question.sql is not None
            answer = ask(question.question)
            llm_ms = answer.timings_ms.get("llm", 0.0)
            report.overhead_ms.append(sum(answer.timings_ms.values()) - llm_ms)
            correct = uncapped = False
            reuse = answer.reuse.status if getattr(answer, "reuse", None) is not None else None
            truncated = bool(getattr(answer, "truncated", False))
            if answer.sql is not None:
                report.answered += 1
                report.first_shot_valid += int(answer.attempts <= 1)
                if answer.rows is not None:
                    gold = _canonical(run_gold(question.sql))
                    correct = uncapped = _canonical(answer.rows.rows) == gold
                    if truncated and not correct and (whole := _without_limit(answer.sql, dialect)) is not None:
                        uncapped = _canonical(run_gold(whole)) == gold
            else:
                report.refused_or_failed += 1
            source = getattr(answer, "source", None)
            outcome = Outcome(id=question.id, half=halves[question.id], answered=answer.sql is not None,
                              correct=correct, truncated=truncated, correct_uncapped=uncapped, reuse=reuse,
                              source=source)  # fmt: skip
            report.outcomes.append(outcome)
            report.correct += int(correct)
            report.correct_uncapped += int(uncapped)
            report.truncated += int(truncated)
            report.reparameterised += int(reuse == "reparameterised")
            report.composed += int(source == "composed")
            report.composed_correct += int(source == "composed" and correct)
            score = report.dev if outcome.half == "dev" else report.held_out
            score.questions += 1
            score.correct += int(correct)
            score.correct_uncapped += int(uncapped)
            progress.advance(task)
    return report


def render(validator: list[ValidatorReport], end_to_end: EndToEnd | None, console: Console) -> None:
    if validator:
        gold = RichTable(title="SQL guard on BIRD mini-dev gold: every gold query must pass")
        for column in ("dialect", "gold", "false rejections", "guard crashes on mutations"):
            gold.add_column(column, justify="right")
        for report in validator:
            gold.add_row(report.dialect, str(report.gold), str(report.false_rejections), str(report.crash_count))
        console.print(gold)
        table = RichTable(title="Mutated gold caught, per mutation × clause × dialect (caught / tried)")
        table.add_column("mutation")
        table.add_column("clause")
        for report in validator:
            table.add_column(report.dialect, justify="right")
        for kind in MUTATIONS:
            family, _, clause = kind.partition("@")
            cells = [f"{r.caught.get(kind, 0) / r.tried[kind]:.1%} ({r.tried[kind]})" if r.tried.get(kind) else "—"
                     for r in validator]  # fmt: skip
            table.add_row(family, clause.replace("_", " ") or "—", *cells)
        console.print(table)
        for report in validator:
            for kind, examples in report.misses.items():
                console.print(f"  missed ({report.dialect}, {kind}): {examples[0][:160]}", markup=False)
    if end_to_end is not None:
        e2e = RichTable(title=f"Text-to-SQL on the demo warehouse's labelled questions ({end_to_end.mode})")
        for column in ["questions with gold SQL", "answered", "same result as gold", "first-shot valid", "no SQL",
                       "re-parameterised", "composed (right)", "truncated"]:  # fmt: skip
            e2e.add_column(column, justify="right")
        n = max(end_to_end.questions, 1)
        e2e.add_row(str(end_to_end.questions), f"{end_to_end.answered} ({end_to_end.answered / n:.0%})",
                    f"{end_to_end.correct} ({end_to_end.correct / n:.0%})",
                    f"{end_to_end.first_shot_valid}", str(end_to_end.refused_or_failed),
                    str(end_to_end.reparameterised), f"{end_to_end.composed} ({end_to_end.composed_correct})",
                    str(end_to_end.truncated))  # fmt: skip
        console.print(e2e)
        halves = RichTable(title=f"Same result as gold, per half of the split (seed {end_to_end.split_seed})",
                           caption="rules developed on dev-half failures only; held-out for reporting")  # fmt: skip
        for column in ("dev", "held-out", "total"):
            halves.add_column(column, justify="right")

        def cell(score: HalfScore) -> str:
            return f"{score.correct}/{score.questions}" if score.questions else "—"

        total = HalfScore(questions=end_to_end.dev.questions + end_to_end.held_out.questions,
                          correct=end_to_end.dev.correct + end_to_end.held_out.correct)  # fmt: skip
        halves.add_row(cell(end_to_end.dev), cell(end_to_end.held_out), cell(total))
        console.print(halves)
        if end_to_end.correct_uncapped > end_to_end.correct:
            dev, held = end_to_end.dev.correct_uncapped, end_to_end.held_out.correct_uncapped
            cut = end_to_end.correct_uncapped - end_to_end.correct
            console.print(f"Diagnostic, not the score: {end_to_end.correct_uncapped} answers (dev {dev}, held-out "
                          f"{held}) give the gold result when their SQL runs without the LIMIT the guard adds — "
                          f"{cut} right but truncated for display.")  # fmt: skip
