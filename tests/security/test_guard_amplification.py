"""A short query must not return (or compute) gigabytes: sizes that functions grow their output by are literals
within a bound, or the query is refused. This bounds each call, not their product (nested calls, a recursive CTE
doubling a string): that is still open (README, SQL guard).

Before: `SELECT lpad('a', 100000000, 'b') AS x FROM ads.campaigns LIMIT 5` passed the guard in every dialect and
took 3.7 GB of the serving process on DuckDB; a larger width or more rows ends the process (the `sql` builtin
runs inside the gateway).
"""

from __future__ import annotations

import pytest

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
}
DIALECT_ONLY = {
    "duckdb": {"range": "SELECT range(1, 10000000000) AS x FROM ads.campaigns",
               "format_nested_width": "SELECT format('{:>{}}', objective, 2000000000) AS x FROM ads.campaigns",
               "space": "SELECT space(2000000000) AS x FROM ads.campaigns"},
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
