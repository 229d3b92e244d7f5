"""A short query must not return (or compute) gigabytes: sizes that functions grow their output by are literals
within a bound, or the query is refused, and so is a value grown by one size function and copied by `repeat` or
`replace` beyond a bounded product. What the guard cannot count (a recursive CTE doubling a string) fails in the
engine's own bounded process (tests/security/test_sql_memory.py).

Before: `SELECT lpad('a', 100000000, 'b') AS x FROM ads.campaigns LIMIT 5` passed the guard in every dialect and
took 3.7 GB of the serving process on DuckDB; a larger width or more rows ends the process (the `sql` builtin
runs inside the gateway).
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from governance.catalog import Catalog, Column, Table
from governance.sqlguard import check

CATALOG = Catalog(
    tables={
        "ads.campaigns": Table(name="ads.campaigns", columns=[
            Column(name="campaign_id", type="BIGINT"), Column(name="objective"), Column(name="budget", type="DOUBLE"),
            Column(name="dt", type="DATE")]),
    }
)  # fmt: skip

REFUSED = {
    "lpad": "SELECT lpad(objective, 2000000000, 'y') AS x FROM ads.campaigns",
    "rpad": "SELECT rpad(objective, 100000000, 'y') AS x FROM ads.campaigns",
    "pad_computed": "SELECT lpad(objective, CAST(budget AS INT), 'y') AS x FROM ads.campaigns",
    "pad_arithmetic": "SELECT lpad(objective, 100000 * 100000, 'y') AS x FROM ads.campaigns",
    "repeat": "SELECT repeat(objective, 1000000) AS x FROM ads.campaigns",
    "repeat_computed": "SELECT repeat(objective, campaign_id) AS x FROM ads.campaigns",
    "series": "SELECT generate_series(1, 10000000000) AS x FROM ads.campaigns",
    "series_computed": "SELECT generate_series(1, campaign_id) AS x FROM ads.campaigns",
    "series_dates": "SELECT generate_series(DATE '1900-01-01', DATE '2100-01-01', INTERVAL 1 DAY) AS x "
    "FROM ads.campaigns",
    "series_zero_step": "SELECT generate_series(1, 5, 0) AS x FROM ads.campaigns",
    "printf_width": "SELECT printf('%2000000000d', campaign_id) AS x FROM ads.campaigns",
    "printf_star": "SELECT printf('%*d', campaign_id, campaign_id) AS x FROM ads.campaigns",
    "format_width": "SELECT format('{:>2000000000}', objective) AS x FROM ads.campaigns",
    "format_computed": "SELECT format(objective, objective) AS x FROM ads.campaigns",
    # Found by review of the first version of the rule:
    "series_offsets": "SELECT generate_series(CAST('2000-01-01 00:00:00+14:00' AS TIMESTAMPTZ), "
    "CAST('2000-01-01 00:00:00-12:00' AS TIMESTAMPTZ), INTERVAL '1' SECOND) AS x FROM ads.campaigns",
    "printf_positional": "SELECT printf('%1$900000000s', objective) AS x FROM ads.campaigns",
    "printf_positional_precision": "SELECT printf('%1$.1000000f', budget) AS x FROM ads.campaigns",
    "printf_sqlite_flags": "SELECT printf('%,900000000d', campaign_id) AS x FROM ads.campaigns",
    # Found by review of the second version (each call within its bound, their product not): 10^9 copies.
    "nested_repeat": "SELECT repeat(repeat(repeat(objective, 1000), 1000), 1000) AS x FROM ads.campaigns",
    "repeat_of_pad": "SELECT repeat(lpad(objective, 10000, 'y'), 1000) AS x FROM ads.campaigns",
    "repeat_of_printf": "SELECT repeat(printf('%10000d', campaign_id), 1000) AS x FROM ads.campaigns",
    "replace_with_pad": "SELECT replace(repeat(objective, 1000), 'a', rpad('x', 10000, 'y')) AS x FROM ads.campaigns",
    "repeat_in_subquery": "SELECT repeat(x, 1000) AS y FROM (SELECT repeat(objective, 1000) AS x FROM ads.campaigns) t",
    "repeat_through_ctes": "WITH a AS (SELECT repeat(objective, 1000) AS x FROM ads.campaigns), b AS (SELECT x AS z "
    "FROM a) SELECT repeat(z, 1000) AS y FROM b",
    "repeat_through_cte_columns": "WITH a(z) AS (SELECT lpad(objective, 10000, 'y') FROM ads.campaigns) "
    "SELECT repeat(z, 1000) AS y FROM a",
    # Found by review of the third version (the product through names the second one did not follow):
    "repeat_through_subquery_columns": "SELECT repeat(z, 1000) AS y FROM (SELECT repeat(objective, 1000) "
    "FROM ads.campaigns) t(z)",
    "regexp_replace_with_repeat": "SELECT regexp_replace(repeat(objective, 1000), '(.)', repeat('\\1', 1000), 'g') "
    "AS y FROM ads.campaigns",
    "repeat_through_a_union_branch": "WITH a AS (SELECT objective AS z FROM ads.campaigns UNION ALL "
    "SELECT repeat(objective, 1000) FROM ads.campaigns) SELECT repeat(z, 1000) AS y FROM a",
    "recursive_repeat": "WITH RECURSIVE r(s, n) AS (SELECT objective, 0 FROM ads.campaigns UNION ALL "
    "SELECT repeat(s, 2), n + 1 FROM r WHERE n < 30) SELECT length(s) AS l FROM r",
}
DIALECT_ONLY = {
    "duckdb": {"range": "SELECT range(1, 10000000000) AS x FROM ads.campaigns",
               "format_nested_width": "SELECT format('{:>{}}', objective, 2000000000) AS x FROM ads.campaigns",
               "space": "SELECT space(2000000000) AS x FROM ads.campaigns",
               "repeat_of_a_struct_field": "SELECT repeat(q.x.v, 1000) AS y FROM (SELECT {'v': repeat(objective, "
               "1000)} AS x FROM ads.campaigns) q",
               "repeat_of_a_lambda_parameter": "SELECT list_transform([repeat(objective, 1000)], lambda z: "
               "repeat(z, 1000)) AS y FROM ads.campaigns"},
    "sqlite": {"zeroblob": "SELECT zeroblob(900000000) AS x FROM ads.campaigns"},
    "spark": {"sequence": "SELECT sequence(1, 10000000000) AS x FROM ads.campaigns",
              "format_string": "SELECT format_string('%900000000s', objective) AS x FROM ads.campaigns",
              "space": "SELECT space(2000000000) AS x FROM ads.campaigns"},
}  # fmt: skip
ALLOWED = {
    "pad": "SELECT lpad(objective, 12, '0') AS x FROM ads.campaigns",
    "repeat": "SELECT repeat('-', 40) AS x FROM ads.campaigns",
    "series": "SELECT generate_series(1, 100, 2) AS x FROM ads.campaigns",
    "date_spine": "SELECT generate_series(DATE '2026-01-01', DATE '2026-12-31', INTERVAL 1 DAY) AS x "
    "FROM ads.campaigns",
    "printf": "SELECT printf('%08d-%s %%', campaign_id, objective) AS x FROM ads.campaigns",
    "literal_digits": "SELECT printf('ID-123456789 %s', objective) AS x FROM ads.campaigns",
    "replace": "SELECT replace(objective, '_', ' ') AS x FROM ads.campaigns",
    "repeat_of_replace": "SELECT repeat(replace(objective, '_', ' '), 2) AS x FROM ads.campaigns",
    "pad_of_repeat": "SELECT lpad(repeat('*', 5), 10, ' ') AS x FROM ads.campaigns",
    "repeat_of_a_plain_derived_column": "SELECT repeat(x, 3) AS y FROM (SELECT upper(objective) AS x "
    "FROM ads.campaigns) t",
    # Refused by the second version (any nesting), found by review: small products pass.
    "repeat_of_a_short_pad": "SELECT repeat(lpad(CAST(campaign_id AS VARCHAR), 2, '0'), 3) AS y FROM ads.campaigns",
    "repeat_of_a_repeat": "SELECT repeat(repeat('-', 10) || '+', 4) AS y FROM ads.campaigns",
    "repeat_of_printf": "SELECT repeat(printf('%3d|', campaign_id), 2) AS y FROM ads.campaigns",
    "replace_from_a_date_spine": "WITH d AS (SELECT unnest(generate_series(DATE '2026-01-01', DATE '2026-01-31', "
    "INTERVAL 1 DAY)) AS dt) SELECT replace(objective, '{d}', CAST(d.dt AS VARCHAR)) AS y FROM ads.campaigns, d",
    "replace_with_a_short_repeat": "SELECT replace(objective, '_', repeat(' ', 3)) AS y FROM ads.campaigns",
}


@pytest.mark.parametrize("dialect", ["duckdb", "spark", "postgres"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_output_amplifiers_are_refused(dialect: str, case: str) -> None:
    result = check(REFUSED[case], CATALOG, dialect)
    assert "unbounded_output" in {e.code for e in result.errors}, result.errors


@pytest.mark.parametrize(("dialect", "case"), [(d, c) for d, cases in DIALECT_ONLY.items() for c in cases])
def test_dialect_amplifiers_are_refused(dialect: str, case: str) -> None:
    result = check(DIALECT_ONLY[dialect][case], CATALOG, dialect)
    assert [e.code for e in result.errors] == ["unbounded_output"], result.errors
    assert "at most" in result.errors[0].message or "written in the query" in result.errors[0].message


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_bounded_sizes_pass(case: str) -> None:
    result = check(ALLOWED[case], CATALOG, "duckdb")
    assert result.ok, result.errors


def test_the_rule_costs_each_node_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review of the third version: derived names were re-evaluated round after round, so a 58 KB query
    (1,000 CTEs written in reverse order, one wide alias) kept the guard busy for 11 s."""
    from governance.sqlguard.rules import amplification

    calls = 0
    inner = amplification._Growth._of

    def counted(self: amplification._Growth, node: Any, scope: Any) -> Any:
        nonlocal calls
        calls += 1
        return inner(self, node, scope)

    monkeypatch.setattr(amplification._Growth, "_of", counted)
    n = 300
    ctes = [f"c{i} AS (SELECT x{i - 1} AS x{i} FROM c{i - 1})" for i in range(n, 0, -1)]
    ctes.append(f"c0 AS (SELECT repeat(objective, 2) AS x0, concat({', '.join(['objective'] * 2000)}) AS w "
                "FROM ads.campaigns)")  # fmt: skip
    sql = "WITH " + ", ".join(ctes) + f" SELECT repeat(x{n}, 2) AS y FROM c{n}"
    check(sql, CATALOG, "duckdb")
    nodes = sum(1 for _ in sqlglot.parse_one(sql, read="duckdb").walk())
    assert 0 < calls <= 2 * nodes, (calls, nodes)
