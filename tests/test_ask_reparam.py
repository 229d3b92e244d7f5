"""`ask` reusing a verified past query: re-parameterised with the question's literals (in the syntax tree, then
re-validated by the guard), or reused unchanged with the reason said first; truncation said; the eval's counts.

The agent runs for real here — graph, guard, EXPLAIN, DuckDB — over a small warehouse and a stub of the index
(the past queries it returns are given), so no embedding model is loaded.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from typer.testing import CliRunner

from agents.text2sql import Answer, Text2SQLAgent
from agents.text2sql.literals import read_question
from agents.text2sql.reparam import reparameterise
from embeddings.evaluation import Labelled
from embeddings.retrieval import QueryHit, TableFilters, TableHit
from embeddings.settings import IndexSettings, LLMSettings
from governance.catalog import Catalog, Column, Table
from governance.classification import Classification
from governance.sqlguard import GuardPolicy, check
from tools.sql.engine import Rows
from tools.sql.evaluation import evaluate_end_to_end
from tools.sql.service import ReusableQuery, SqlService, SqlSettings, Validation

AS_OF = date(2026, 10, 31)
CATALOG = Catalog(
    as_of=AS_OF,
    tables={
        "ads.spend": Table(
            name="ads.spend", partition_column="dt", row_count=276,
            columns=[Column(name="dt", type="DATE"), Column(name="advertiser_id", type="BIGINT"),
                     Column(name="country", type="VARCHAR", values=["DE", "GB", "US"]),
                     Column(name="spend_usd", type="DOUBLE")],
        ),
        "ads.budget_changes": Table(
            name="ads.budget_changes",
            columns=[Column(name="changed_at", type="TIMESTAMP"), Column(name="campaign_id", type="BIGINT"),
                     Column(name="new_budget_usd", type="DOUBLE")],
        ),
        "content.search_terms": Table(
            name="content.search_terms",
            columns=[Column(name="dt", type="DATE"), Column(name="search_term", type="VARCHAR"),
                     Column(name="searches", type="BIGINT")],
        ),
        "content.boards": Table(
            name="content.boards",
            columns=[Column(name="board_id", type="BIGINT"), Column(name="follower_count", type="BIGINT")],
        ),
    },
)  # fmt: skip
POLICY = GuardPolicy(partition_filter_min_rows=None)

SPEND_SEPTEMBER = (
    "SELECT country, sum(spend_usd) AS spend_usd FROM ads.spend "
    "WHERE dt BETWEEN DATE '2026-09-01' AND DATE '2026-09-30' AND country = 'GB' GROUP BY country"
)


def _literals(sql: str, dialect: str = "duckdb") -> list[str]:
    return [str(lit.this) for lit in sqlglot.parse_one(sql, read=dialect).find_all(exp.Literal)]


# -- the re-parameterisation, on its own --------------------------------------------------------------------------


def test_a_period_in_the_question_replaces_the_date_literals_and_the_result_passes_the_guard() -> None:
    rewrite = reparameterise("Spend in the UK last week", SPEND_SEPTEMBER, CATALOG, "duckdb")
    assert rewrite.changed and not rewrite.unresolved
    assert rewrite.before == "2026-09-01 – 2026-09-30" and rewrite.after == "2026-10-25 – 2026-10-31"
    tree = sqlglot.parse_one(rewrite.sql, read="duckdb")
    between = tree.find(exp.Between)
    assert between is not None and between.this.name == "dt"
    assert [str(between.args[k].this.this) for k in ("low", "high")] == ["2026-10-25", "2026-10-31"]
    assert "2026-09" not in rewrite.sql and "country = 'GB'" in rewrite.sql  # the rest of the query as it was
    assert check(rewrite.sql, CATALOG, "duckdb", POLICY).ok
    assert any("last week" in c and "2026-10-25" in c for c in rewrite.changes)


@pytest.mark.parametrize(
    ("question", "start", "end"),
    [
        ("spend in October", "2026-10-01", "2026-10-31"),
        ("spend in Q3", "2026-07-01", "2026-09-30"),
        ("spend for the last 2 weeks", "2026-10-18", "2026-10-31"),
        ("spend between 2026-08-03 and 2026-08-09", "2026-08-03", "2026-08-09"),
        ("spend from August to September", "2026-08-01", "2026-09-30"),
        ("spend yesterday", "2026-10-30", "2026-10-30"),
    ],
)
def test_periods_are_read_relative_to_the_datas_today(question: str, start: str, end: str) -> None:
    rewrite = reparameterise(question, SPEND_SEPTEMBER, CATALOG, "duckdb")
    assert rewrite.changed and rewrite.after == (start if start == end else f"{start} – {end}")
    assert start in rewrite.sql and end in rewrite.sql


def test_an_open_period_keeps_a_lower_bound_only_filter_and_timestamps_get_an_exclusive_end() -> None:
    past = ("SELECT campaign_id, count(*) AS changes FROM ads.budget_changes "
            "WHERE changed_at >= TIMESTAMP '2026-10-04 00:00:00' GROUP BY 1 ORDER BY 2 DESC LIMIT 25")  # fmt: skip
    since = reparameterise("budget changes since October 1", past, CATALOG, "duckdb")
    assert since.changed and since.after == "from 2026-10-01 on"
    assert _literals(since.sql).count("2026-10-01 00:00:00") == 1 and "<" not in since.sql
    assert "its LIMIT 25" in since.kept  # the question names no count: said, not silently changed
    quarter = reparameterise("top 5 campaigns by budget changes in Q3", past, CATALOG, "duckdb")
    tree = sqlglot.parse_one(quarter.sql, read="duckdb")
    assert [str(n.expression.this.this) for n in tree.find_all(exp.GTE)] == ["2026-07-01 00:00:00"]
    assert [str(n.expression.this.this) for n in tree.find_all(exp.LT)] == ["2026-10-01 00:00:00"]  # Sept 30 whole
    limit = tree.args["limit"].expression
    assert limit.this == "5" and "LIMIT 25 → 5" in quarter.changes


def test_an_id_in_the_question_replaces_the_id_literal() -> None:
    past = ("SELECT dt, sum(spend_usd) AS spend_usd FROM ads.spend "
            "WHERE advertiser_id = 7 AND dt >= DATE '2026-09-01' GROUP BY dt")  # fmt: skip
    rewrite = reparameterise("Daily spend for advertiser 42 since October 10", past, CATALOG, "duckdb")
    assert rewrite.changed and "advertiser_id 7 → 42" in rewrite.changes
    eq = next(
        n for n in sqlglot.parse_one(rewrite.sql, read="duckdb").find_all(exp.EQ) if n.this.name == "advertiser_id"
    )
    assert isinstance(eq.expression, exp.Literal) and not eq.expression.is_string and eq.expression.this == "42"
    assert "2026-10-10" in rewrite.sql and check(rewrite.sql, CATALOG, "duckdb", POLICY).ok
    # The same query for a question that names no advertiser: its id is kept, and that is said.
    kept = reparameterise("Daily spend since October 10", past, CATALOG, "duckdb")
    assert kept.changed and any("advertiser_id = 7" in k for k in kept.kept)


def test_every_filter_of_the_one_date_role_moves_together_and_ids_repeated_in_ctes_too() -> None:
    past = ("WITH a AS (SELECT advertiser_id, sum(spend_usd) AS s FROM ads.spend WHERE dt >= DATE '2026-09-01' "
            "AND dt <= DATE '2026-09-30' AND advertiser_id = 7 GROUP BY 1), b AS (SELECT advertiser_id, count(*) AS n "
            "FROM ads.spend WHERE dt BETWEEN DATE '2026-09-01' AND DATE '2026-09-30' AND advertiser_id = 7 GROUP BY 1) "
            "SELECT a.advertiser_id, a.s / b.n AS r FROM a JOIN b ON a.advertiser_id = b.advertiser_id")  # fmt: skip
    rewrite = reparameterise("spend per day for advertiser 9 in August", past, CATALOG, "duckdb")
    assert rewrite.changed and "advertiser_id 7 → 9" in rewrite.changes
    tree = sqlglot.parse_one(rewrite.sql, read="duckdb")
    days = sorted({str(c.this.this) for c in tree.find_all(exp.Cast)})
    assert days == ["2026-08-01", "2026-08-31"] and len(list(tree.find_all(exp.Between))) == 2
    ids = [str(e.expression.this) for e in tree.find_all(exp.EQ) if isinstance(e.expression, exp.Literal)]
    assert ids == ["9", "9"]
    assert check(rewrite.sql, CATALOG, "duckdb", POLICY).ok


def test_a_profiled_value_and_a_threshold_are_replaced_by_role() -> None:
    rewrite = reparameterise("Spend in the US in October", SPEND_SEPTEMBER, CATALOG, "duckdb")
    assert "country 'GB' → 'US'" in rewrite.changes and "country = 'US'" in rewrite.sql
    boards = reparameterise("Boards with more than 10000 followers", "SELECT board_id FROM content.boards "
                            "WHERE follower_count > 500", CATALOG, "duckdb")  # fmt: skip
    assert boards.changed and "follower_count > 10000" in boards.sql


@pytest.mark.parametrize(
    ("question", "past", "reason"),
    [
        ("Spend in October", "SELECT country, sum(spend_usd) AS s FROM ads.spend GROUP BY 1", "no date filter"),
        ("Spend for advertiser 42 last week", SPEND_SEPTEMBER, "no advertiser filter"),
        ("Spend in October versus September", SPEND_SEPTEMBER, "more than one period"),
        ("Spend last week", "SELECT sum(spend_usd) AS s FROM ads.spend WHERE dt >= DATE '2026-09-01' OR country = "
         "'DE'", "not a plain AND condition"),
        ("Spend in DE last week", "SELECT sum(spend_usd) AS s FROM ads.spend WHERE dt >= DATE '2026-09-01'",
         "does not filter or group by country"),
    ],
)  # fmt: skip
def test_what_cannot_be_placed_leaves_the_query_unchanged_and_says_why(question: str, past: str, reason: str) -> None:
    rewrite = reparameterise(question, past, CATALOG, "duckdb")
    assert not rewrite.changed and rewrite.sql == past and rewrite.changes == []
    assert any(reason in u for u in rewrite.unresolved), rewrite.unresolved


INJECTIONS = [
    "x' OR 1=1 --",
    "x'; DROP TABLE content.search_terms; --",
    "a'') UNION SELECT email FROM users.users --",
]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_an_injection_in_a_quoted_literal_stays_a_quoted_literal(payload: str) -> None:
    past = "SELECT dt, searches FROM content.search_terms WHERE search_term = 'halloween costume'"
    rewrite = reparameterise(f'Daily searches for "{payload}"', past, CATALOG, "duckdb")
    assert rewrite.changed
    [statement] = sqlglot.parse(rewrite.sql, read="duckdb")
    assert isinstance(statement, exp.Select) and statement.find(exp.Or, exp.Union, exp.Drop) is None
    [eq] = list(statement.find_all(exp.EQ))
    assert isinstance(eq.expression, exp.Literal) and eq.expression.is_string and eq.expression.this == payload
    result = check(rewrite.sql, CATALOG, "duckdb", POLICY)
    assert result.ok and result.tables == ["content.search_terms"]


def test_question_numbers_that_are_dates_are_not_read_as_counts_or_ids() -> None:
    named = read_question("Top 10 campaigns for campaign 3 since October 1 2026", AS_OF, {"campaign"})
    assert named.count == 10 and [(i.entity, i.value) for i in named.ids] == [("campaign", 3)]
    assert [(p.start, p.end) for p in named.periods] == [(date(2026, 10, 1), AS_OF)]
    assert read_question("Trailing 7 day saves per user", AS_OF).periods == []  # an adjective, not a period


# -- the agent: re-validated, fail closed, said first; truncation; the CLI --------------------------------------------


class StubIndex(SqlService):
    """The real service (guard, EXPLAIN, DuckDB) with the knowledge index replaced by given past queries."""

    def __init__(self, warehouse: Path, past: list[str], refuse: str | None = None) -> None:
        index = IndexSettings.model_validate({"data_dir": warehouse.parent, "query_dialect": "duckdb"})
        super().__init__(SqlSettings(url=str(warehouse), timeout=10), index)
        self.past = past
        self.refuse = refuse
        self.validated: list[str] = []

    @property
    def catalog(self) -> Catalog:
        return CATALOG

    def search_tables(self, question: str, k: int = 5, filters: TableFilters | None = None) -> list[TableHit]:
        return []

    def search_queries(
        self, question: str, k: int = 5, clearance: Classification = Classification.INTERNAL
    ) -> list[ReusableQuery]:
        hits = [QueryHit(id=f"intent-{i}", rank=i + 1, score=0.9, summary="a past query", questions=["?"], sql=sql,
                         tables=["ads.spend"], runs=5, success_rate=1.0, authors=2, last_run="2026-10-20T10:00:00",
                         reasons=[]) for i, sql in enumerate(self.past)]  # fmt: skip
        return [self.revalidate(h, clearance) for h in hits]

    def validate(self, sql: str, dialect: str | None = None, clearance: Classification = Classification.INTERNAL,
                 limit: int | None = None, explain: bool = True) -> Validation:  # fmt: skip
        self.validated.append(sql)
        validation = super().validate(sql, dialect, clearance, limit, explain)
        if self.refuse and self.refuse in sql:  # a refusal the guard would give, to see the agent fall back
            validation.explain_error = f"refused for the test: {self.refuse}"
        return validation


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reparam") / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA ads; CREATE SCHEMA content")
    con.execute("CREATE TABLE ads.spend AS SELECT (DATE '2026-08-01' + (i // 3)::INTEGER)::DATE AS dt, i % 3 + 1 AS "
                "advertiser_id, ['DE', 'GB', 'US'][i % 3 + 1] AS country, (i % 7) * 1000.5 AS spend_usd "
                "FROM range(276) t(i)")  # fmt: skip
    con.execute("CREATE TABLE ads.budget_changes (changed_at TIMESTAMP, campaign_id BIGINT, new_budget_usd DOUBLE)")
    con.execute("CREATE TABLE content.search_terms AS SELECT DATE '2026-10-01' AS dt, 'halloween costume' AS "
                "search_term, 12345 AS searches")  # fmt: skip
    con.execute("CREATE TABLE content.boards (board_id BIGINT, follower_count BIGINT)")
    con.close()
    return path


def _agent(warehouse: Path, *past: str, refuse: str | None = None) -> Text2SQLAgent:
    return Text2SQLAgent(StubIndex(warehouse, list(past), refuse), LLMSettings(base_url=None, model=None))


def test_the_agent_reparameterises_revalidates_and_says_so_first(warehouse: Path) -> None:
    agent = _agent(warehouse, SPEND_SEPTEMBER)
    answer = agent.ask("Spend in the US in October", execute=True)
    assert answer.source == "reused" and answer.reuse is not None and answer.reuse.status == "reparameterised"
    assert answer.sql is not None and "2026-10-01" in answer.sql and "'US'" in answer.sql and "'GB'" not in answer.sql
    service = agent.service
    assert isinstance(service, StubIndex) and any("2026-10-01" in s for s in service.validated)  # re-validated
    assert answer.notes[0].startswith("Re-parameterised a verified past query") and "2026-10-01" in answer.notes[0]
    expected = sum((i % 7) * 1000.5 for i in range(276) if i % 3 == 2 and 61 <= i // 3 <= 91)  # US, October
    assert answer.rows is not None and answer.rows.rows == [["US", pytest.approx(expected)]]


def test_a_rewrite_the_guard_refuses_falls_back_to_the_validated_past_query(warehouse: Path) -> None:
    agent = _agent(warehouse, SPEND_SEPTEMBER, refuse="2026-10-25")
    answer = agent.ask("Spend in the UK last week", execute=True)
    assert answer.reuse is not None and answer.reuse.status == "unchanged" and answer.reuse.dates_differ
    assert answer.sql is not None and "2026-09-01" in answer.sql and "2026-10-25" not in answer.sql
    assert answer.notes[0].startswith("Reused a verified past query UNCHANGED") and "did not pass" in answer.notes[0]
    assert "2026-09-01 – 2026-09-30" in answer.notes[0]  # its own dates, said up front


def test_an_unresolvable_question_reuses_the_query_unchanged_with_a_clear_note(warehouse: Path) -> None:
    past = "SELECT country, sum(spend_usd) AS spend_usd FROM ads.spend WHERE dt >= DATE '2026-10-01' GROUP BY 1"
    # Words the catalog's vocabulary cannot place ("finance deck"): not composed either (test_ask_compose.py).
    answer = _agent(warehouse, past).ask("Spend by country for advertiser 2 last week for the finance deck")
    assert answer.reuse is not None and answer.reuse.status == "unchanged"
    assert answer.sql is not None and "2026-10-01" in answer.sql and "advertiser_id" not in answer.sql
    assert "no advertiser filter" in answer.notes[0] and "UNCHANGED" in answer.notes[0]
    assert any(n.startswith("Not composed from the catalog") and "“finance”, “deck”" in n for n in answer.notes)


def test_a_question_without_a_period_says_the_dates_are_the_past_querys(warehouse: Path) -> None:
    answer = _agent(warehouse, SPEND_SEPTEMBER).ask("Spend in the UK")
    assert answer.reuse is not None and answer.reuse.status == "as_is" and answer.reuse.dates_differ
    assert answer.notes[0].startswith("Reused a verified past query as it was: its dates (2026-09-01 – 2026-09-30)")


def test_a_truncated_result_says_so(warehouse: Path) -> None:
    past = "SELECT dt, advertiser_id, sum(spend_usd) AS spend_usd FROM ads.spend GROUP BY 1, 2"
    answer = _agent(warehouse, past).ask("Daily spend per advertiser", execute=True)
    assert answer.rows is not None and answer.rows.row_count == 100 and answer.truncated
    assert answer.warnings[0].startswith("the result was truncated") and "LIMIT 100" in answer.warnings[0]
    ranked = ("SELECT advertiser_id, sum(spend_usd) AS spend_usd FROM ads.spend WHERE dt >= DATE '2026-10-01' "
              "GROUP BY 1 ORDER BY 2 DESC LIMIT 2")  # fmt: skip
    top = _agent(warehouse, ranked).ask("Top 2 advertisers by spend since October 1", execute=True)
    assert top.rows is not None and top.rows.row_count == 2 and not top.truncated  # its own top N: complete


def test_the_cli_prints_the_dates_note_first_formats_numbers_and_reports_truncation(
    warehouse: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from bastion import sql_cli
    from bastion.cli import app

    monkeypatch.setenv("BASTION_DATA_DIR", str(tmp_path))  # no server of this directory: the agent in-process
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    past = ("SELECT dt, advertiser_id, sum(spend_usd) AS spend_usd FROM ads.spend WHERE dt >= DATE '2026-08-01' "
            "GROUP BY 1, 2")  # fmt: skip
    monkeypatch.setattr(sql_cli, "_agent", lambda: _agent(warehouse, past))
    # "for the board deck": words the catalog cannot place, so the past query is reused (not composed).
    result = CliRunner().invoke(app, ["ask", "Daily spend per advertiser for the board deck", "--execute"])
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())  # whatever the terminal width
    assert printed.startswith(
        "note: Reused a verified past query as it was: its dates (from 2026-08-01 on) are its own"
    )
    assert re.search(r"warning: the result was truncated: it stops at the LIMIT 100", printed)
    assert "100 rows (truncated)" in printed
    assert "3,001.50" in printed  # (3 % 7) * 1000.5 with a thousands separator and two decimals

    reparameterised = CliRunner().invoke(app, ["ask", "Daily spend per advertiser last week", "--execute"])
    printed = " ".join(reparameterised.stdout.split())
    assert printed.startswith("note: Re-parameterised a verified past query") and "2026-10-25" in printed[:300]
    assert "(truncated)" not in printed and "21 rows" in printed  # 7 days × 3 advertisers: all of them

    # No period named, and the past query's dates are its own: composed from the catalog over the last full month.
    composed = CliRunner().invoke(app, ["ask", "Daily spend per advertiser", "--execute"])
    printed = " ".join(composed.stdout.split())
    assert printed.startswith("note: Composed from the catalog"), printed[:300]
    assert "warning: your question names no period: the last full month of data, 2026-10-01 – 2026-10-31" in printed
    assert "93 rows" in printed and "truncated" not in printed  # 31 days × 3 advertisers


def test_numbers_are_formatted_for_people() -> None:
    from bastion.sql_cli import format_value

    assert format_value(1234567, "impressions") == "1,234,567" and format_value(1234567, "advertiser_id") == "1234567"
    assert format_value(12345.678) == "12,345.68" and format_value(0.023345) == "0.02335"
    assert format_value(0.0) == "0" and format_value(None) == "NULL" and format_value(True) == "true"
    assert format_value("2026-09-28 00:00:00") == "2026-09-28"


# -- the evaluation counts ------------------------------------------------------------------------------------------


def _answer(
    rows: list[list[Any]] | None,
    *,
    truncated: bool = False,
    status: str | None = None,
    sql: str = "SELECT 1",
    source: str | None = None,
) -> Answer:
    answer = Answer.model_validate({"question": "q", "kind": "text_to_sql", "mode": "retrieval_only",
                                    "dialect": "duckdb", "sql": None if rows is None else sql,
                                    "truncated": truncated, "source": source})  # fmt: skip
    if rows is not None:
        answer.rows = Rows(columns=["a"], rows=rows, row_count=len(rows), truncated=False, elapsed_ms=1.0)
    if status is not None:
        from agents.text2sql.answer import Reuse

        answer.reuse = Reuse.model_validate({"query_id": "intent-1", "status": status})
    return answer


def test_the_eval_counts_per_half_of_the_fixed_split() -> None:
    from tools.sql.evaluation import split

    questions = [Labelled(id=f"x{i:02d}", question=f"question {i}", tables=["t"], sql=f"gold {i}") for i in range(10)]
    questions.append(Labelled(id="nogold", question="no gold", tables=["t"]))  # not scored
    gold: dict[str, list[list[Any]]] = {f"gold {i}": [[i], [i + 0.000001]] for i in range(10)}
    gold["SELECT a FROM t"] = [[2], [2]]  # question 2's SQL without the LIMIT the guard added: the whole result
    answers = {
        "question 0": _answer([[0], [0.0]], status="reparameterised"),  # same multiset (floats to 4 places)
        "question 1": _answer([[1.000001], [1]]),  # order does not matter
        "question 2": _answer([[2]], truncated=True, sql="SELECT a FROM t LIMIT 1"),  # truncated: not the gold result
        "question 3": _answer(None),  # no SQL
        "question 4": _answer([[4], [4], [4]], source="composed"),  # duplicates count
        "question 5": _answer([[5], [6]], status="unchanged"),  # a wrong row
        "question 6": _answer([[6], [6.000001]], status="reparameterised"),
        "question 7": _answer([[7], [7]], source="composed"),
    }
    right = {"x00", "x01", "x06", "x07"}
    report = evaluate_end_to_end(lambda q: answers.get(q, _answer([[-1]])), lambda sql: gold[sql], "retrieval_only",
                                 questions=questions, seed=3)  # fmt: skip
    dev, held_out = split([f"x{i:02d}" for i in range(10)], 3)
    assert len(dev) == len(held_out) == 5 and not set(dev) & set(held_out)
    assert split([f"x{i:02d}" for i in range(10)], 3) == (dev, held_out)  # fixed by the seed
    assert report.questions == 10 and report.correct == 4 and report.answered == 9 and report.refused_or_failed == 1
    assert report.composed == 2 and report.composed_correct == 1  # composed answers counted apart, right or not
    assert report.dev.correct == len(right & set(dev)) and report.held_out.correct == len(right & set(held_out))
    assert report.dev.questions == 5 and report.held_out.questions == 5
    assert report.truncated == 1 and report.reparameterised == 2 and report.split_seed == 3
    assert report.correct_uncapped == 5 and [o.id for o in report.outcomes if o.correct_uncapped and not o.correct] == [
        "x02"
    ]  # a diagnostic apart: right once the guard's LIMIT is off, never counted as correct
    assert {o.id for o in report.outcomes if o.correct} == right
    only_dev = evaluate_end_to_end(lambda q: answers.get(q, _answer([[-1]])), lambda sql: gold[sql],
                                   "retrieval_only", questions=questions, seed=3, half="dev")  # fmt: skip
    assert only_dev.questions == 5 and {o.id for o in only_dev.outcomes} == set(dev)
    assert only_dev.correct == report.dev.correct and only_dev.held_out.questions == 0
