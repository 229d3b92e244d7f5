"""The parity evaluation's harder suite: its bugs touch what they claim, its clean pairs stay within
tolerance, and the keyed-diff baseline flags what a merge-compare would."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from tools.parity.hard_suite import KINDS, SALARY, STRENGTHS, Pair, bug_sql, clean_sql, summarise
from tools.parity.keyed_diff import KeyedDiff

ROWS = 40_000


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SELECT setseed(0.1)")
    con.execute(
        f"""CREATE TABLE training AS SELECT i AS id, 5000 + random() * 40000 AS car_value,
            ['{SALARY[0]}', '{SALARY[1]}', '{SALARY[2]}', '{SALARY[3]}'][1 + (i % 4)] AS salary_range,
            random() AS debt_to_income_ratio, (i % 20 + 1)::DOUBLE AS loan_length,
            i % 2 = 0 AS repaid_loan_on_prev_car, '10%' AS size_of_downpayment,
            CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 7)::DOUBLE END AS driver_tenure,
            TIMESTAMP '2018-01-01' + i * INTERVAL 1 MINUTE AS timestamp, 0.5 AS repaid_share
            FROM range({ROWS}) r(i)"""
    )
    return con


def _changed(con: duckdb.DuckDBPyConnection, sql: str, column: str) -> float:
    serving = con.execute(sql).df().set_index("id").sort_index()
    training = con.execute("SELECT * FROM training").df().set_index("id").sort_index()
    a, b = training[column], serving[column]
    same = (a == b) | (a.isna() & b.isna())
    return float((~same).mean())


@pytest.mark.parametrize("kind", KINDS)
def test_each_bug_touches_its_share_of_rows_and_only_its_features(con: duckdb.DuckDBPyConnection, kind: str) -> None:
    for label, rate in STRENGTHS.items():
        sql, truth, noisy = bug_sql(kind, rate, salt=0)
        columns = [c for c in con.execute("SELECT * FROM training LIMIT 0").df().columns if c != "id"]
        for column in columns:
            share = _changed(con, sql, column)
            if column in truth and not (noisy and column == "car_value"):
                # On `rate` of the rows (the ordered-category shift leaves nothing unchanged).
                assert rate * 0.5 <= share <= rate * 1.6, (kind, label, column, share)
            elif column not in truth:
                assert share == 0.0, (kind, label, column)
        if noisy:  # every row carries the benign noise; the bug is on top of it for `rate` of them
            serving = con.execute(sql).df().set_index("id").sort_index()
            training = con.execute("SELECT * FROM training").df().set_index("id").sort_index()
            ratio = (serving["car_value"] / training["car_value"]).to_numpy()
            assert np.abs(ratio - 1).max() > 0.05 and np.mean(np.abs(ratio - 1) > 0.05) <= rate * 1.6


def test_test_and_validation_pairs_differ_in_the_rows_they_touch(con: duckdb.DuckDBPyConnection) -> None:
    test, _, _ = bug_sql("scale ×1.1", 0.01, salt=0)
    validation, _, _ = bug_sql("scale ×1.1", 0.01, salt=1)
    rows = [
        set(con.execute(f"SELECT s.id FROM ({sql}) s JOIN training t USING (id) WHERE s.car_value <> t.car_value")
            .fetchnumpy()["id"].tolist())
        for sql in (test, validation)
    ]  # fmt: skip
    assert rows[0] and rows[1] and len(rows[0] & rows[1]) < 0.1 * len(rows[0])


@pytest.mark.parametrize("seed", range(20))
def test_clean_pairs_differ_only_within_the_default_tolerance(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    sql, said = clean_sql(seed)
    assert "rows reordered" in said
    serving = con.execute(sql).df().set_index("id")
    training = con.execute("SELECT * FROM training").df().set_index("id").loc[serving.index]
    for column in ("car_value", "debt_to_income_ratio"):
        assert np.allclose(serving[column], training[column], rtol=1e-3, atol=1e-9), (seed, column)
    assert (serving["salary_range"] == training["salary_range"]).all()
    assert len(serving) >= 0.85 * ROWS


def test_keyed_diff_flags_mismatches_above_its_rate_and_missing_columns() -> None:
    training = pd.DataFrame({"id": range(1000), "x": np.arange(1000.0), "c": ["a"] * 1000, "gone": 1.0})
    serving = training.drop(columns=["gone"]).sample(frac=1.0, random_state=0).reset_index(drop=True)
    serving.loc[serving["id"] < 5, "x"] *= 1.01  # 0.5% of rows, 1% off
    serving.loc[serving["id"] == 7, "c"] = None  # a null on one side only
    features = ["x", "c", "gone"]
    assert KeyedDiff().flagged(training, serving, ["id"], features) == ["c", "gone", "x"]
    assert KeyedDiff(rtol=0.02).flagged(training, serving, ["id"], features) == ["c", "gone"]
    assert KeyedDiff(min_mismatch_rate=0.01).flagged(training, serving, ["id"], features) == ["gone"]


def test_summary_counts_recall_per_kind_and_strength_and_false_alarms() -> None:
    pairs = [
        Pair(name="scale ×1.1", kind="bug", strength="1%", truth=["car_value"], ours=["car_value"],
             ours_tuned=["car_value"], keyed_diff=[], evidently=["car_value", "salary_range"]),
        Pair(name="clean 0", kind="clean", truth=[], ours=[], ours_tuned=["loan_length"], keyed_diff=[],
             evidently=None),
    ]  # fmt: skip
    summary = summarise(pairs)
    assert summary["recall"]["scale ×1.1"]["1%"] == {"ours": 1.0, "ours_tuned": 1.0, "keyed_diff": 0.0,
                                                    "evidently": 1.0}  # fmt: skip
    assert summary["clean"]["ours_tuned"]["pairs_with_a_false_alarm"] == 1
    assert summary["clean"]["evidently"]["pairs"] == 0  # not run there: not counted as clean
    assert summary["overall"]["evidently"]["wrong_features_in_bug_pairs"] == 1
