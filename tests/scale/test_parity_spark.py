"""The parity audit on Spark (Connect, local[2]): the same findings as on DuckDB for the bug-injection suites.

Counts and equality checks must agree exactly. Quantiles: below the audit's SAMPLE_ROWS both engines compute
exact quantiles of every row (PERCENTILE and quantile_cont interpolate alike), so distances agree to float
rounding (DISTANCE_TOLERANCE); quantiles over a whole join are approximate on Spark (rank error 1/10,000),
which leaves the findings unchanged (the unit-scaling ratio is compared to 1%).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
from mcp import Client

from tools.parity import AuditReport, ParityError, Tolerances, audit
from tools.parity.evaluation import BENIGN as CLASSIC_BENIGN
from tools.parity.evaluation import BUGS as CLASSIC_BUGS
from tools.parity.evaluation import _fp16
from tools.parity.hard_suite import KINDS, NOISY_CLEAN, NOISY_RTOL, SALARY, STRENGTHS, bug_sql, clean_sql
from tools.parity.server import ParityService, ParitySettings, build

ROWS = 20_000
DISTANCE_TOLERANCE = 1e-6
# Spark answers a query in ~0.3–1 s whatever its size, and an audit issues ~25: the classic suite runs whole,
# the harder suite each bug kind once (strengths taken in turn) and a few clean pairs. BASTION_TEST_SPARK_FULL=1
# runs every kind at every strength and more clean pairs (39 pairs, ~5 min on two busy cores).
FULL = os.environ.get("BASTION_TEST_SPARK_FULL") == "1"
CLEAN_PAIRS = 6 if FULL else 2


def _case_list() -> list[tuple[str, str, bool]]:
    """(name, serving SELECT over `training`, audited with the noisy feature's tolerance?)"""
    cases = [(f"classic {name}", sql, False) for name, (sql, _, _) in CLASSIC_BUGS.items()]
    for name, template in CLASSIC_BENIGN.items():
        sql = template.replace("{fp16:debt_to_income_ratio}", _fp16("debt_to_income_ratio"))
        cases.append((f"classic {name}", sql.replace("{fp16:driver_tenure}", _fp16("driver_tenure")), False))
    cases.append(("classic clean copy", "SELECT * FROM training WHERE hash(id) % 10 < 9", False))
    strengths = list(STRENGTHS.items())
    for i, kind in enumerate(KINDS):
        for label, rate in strengths if FULL else [strengths[i % len(strengths)]]:
            sql, _, noisy = bug_sql(kind, rate, 0)
            cases.append((f"{kind} @ {label}", sql, noisy))
    cases += [(f"clean {seed}", clean_sql(seed)[0], False) for seed in range(CLEAN_PAIRS)]
    cases.append(("noisy clean", NOISY_CLEAN, True))
    return cases


CASES = _case_list()


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The training log (the car-loan columns of the suites, synthetic) and each case's serving copy, as Parquet."""
    root = tmp_path_factory.mktemp("parity-spark")
    con = duckdb.connect()
    con.execute("SELECT setseed(0.1)")
    con.execute(
        f"""CREATE TABLE training AS SELECT i AS id, round(5000 + random() * 40000, 2) AS car_value,
            ['{SALARY[0]}', '{SALARY[1]}', '{SALARY[2]}', '{SALARY[3]}'][1 + (i % 4)] AS salary_range,
            round(random(), 6) AS debt_to_income_ratio, (i % 20 + 1)::DOUBLE AS loan_length,
            i % 2 = 0 AS repaid_loan_on_prev_car, ['10%', '20%', '30%'][1 + i % 3] AS size_of_downpayment,
            CASE WHEN i % 13 = 0 THEN NULL ELSE (i % 7)::DOUBLE END AS driver_tenure,
            TIMESTAMP '2018-01-01' + i * INTERVAL 7 MINUTE AS timestamp, round(random() * 0.5 + 0.1, 6) AS repaid_share
            FROM range({ROWS}) r(i)"""
    )
    paths = {"training": str(root / "training.parquet")}
    con.execute(f"COPY training TO '{paths['training']}' (FORMAT parquet)")
    for i, (name, sql, _) in enumerate(CASES):
        paths[name] = str(root / f"case{i}.parquet")
        con.execute(f"COPY ({sql}) TO '{paths[name]}' (FORMAT parquet)")
    con.close()
    paths["root"] = str(root)
    return paths


def _tolerances(noisy: bool) -> Tolerances:
    return Tolerances(rtol=NOISY_RTOL) if noisy else Tolerances()


def _findings(report: AuditReport) -> list[tuple[Any, ...]]:
    return sorted((f.check, f.severity, f.feature, f.likely_cause) for f in report.findings)


def assert_same(duck: AuditReport, spark: AuditReport, name: str) -> None:
    assert _findings(spark) == _findings(duck), name
    assert spark.flagged_features == duck.flagged_features, name
    assert spark.coverage == duck.coverage, name
    assert not spark.partial, (name, spark.problems)
    for d, s in zip(duck.features, spark.features, strict=True):
        exact = {"feature", "kind", "compared", "mismatches", "mismatch_rate", "null_rate_training",
                 "null_rate_serving", "default_rate_training", "default_rate_serving"}  # fmt: skip
        assert s.model_dump(include=exact) == d.model_dump(include=exact), (name, d.feature)
        for field in ("psi", "wasserstein", "js_divergence", "linf"):
            a, b = getattr(d, field), getattr(s, field)
            assert (a is None) == (b is None), (name, d.feature, field)
            if a is not None:
                assert abs(a - b) <= DISTANCE_TOLERANCE, (name, d.feature, field, a, b)
    for d, s in zip(sorted(duck.findings, key=_key), sorted(spark.findings, key=_key), strict=True):
        for field, value in d.evidence.items():
            other = s.evidence[field]
            if isinstance(value, float) and field == "ratio":  # a median over the join: approximate on Spark
                assert abs(other - value) <= 0.01 * abs(value), (name, field)
            elif isinstance(value, float):
                assert abs(other - value) <= DISTANCE_TOLERANCE, (name, field, value, other)
            else:
                assert other == value, (name, field)


def _key(f: Any) -> tuple[str, str]:
    return (f.check, f.feature or "")


def test_bug_injection_suites_give_the_same_findings_on_spark(suite: dict[str, str], spark_connect_url: str) -> None:
    began = time.perf_counter()
    duck = {name: audit(suite["training"], suite[name], ["id"], time_column="timestamp",
                        tolerances=_tolerances(noisy)) for name, _, noisy in CASES}  # fmt: skip
    duck_s = time.perf_counter() - began

    def on_spark(case: tuple[str, str, bool]) -> AuditReport:
        name, _, noisy = case
        return audit(suite["training"], suite[name], ["id"], time_column="timestamp", tolerances=_tolerances(noisy),
                     engine=spark_connect_url)  # fmt: skip

    began = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:  # two Connect sessions at once: local[2] has two cores
        spark = dict(zip([c[0] for c in CASES], pool.map(on_spark, CASES), strict=True))
    spark_s = time.perf_counter() - began
    print(f"\n{len(CASES)} pairs: DuckDB {duck_s:.1f} s, Spark {spark_s:.1f} s")
    for name, _, _ in CASES:
        assert_same(duck[name], spark[name], name)
    # The suites still find their bugs there (not merely the same nothing on both sides).
    flagged = {name: set(report.flagged_features) for name, report in spark.items()}
    assert "car_value" in flagged["classic unit_scaling"] and "debt_to_income_ratio" in flagged["classic stale_one_day"]
    assert "car_value" in flagged["scale ×1.1 @ 1%"] and not flagged["clean 0"]


def test_parquet_input_with_every_diagnosis_on_spark(suite: dict[str, str], spark_connect_url: str) -> None:
    stale = audit(suite["training"], suite["classic stale_one_day"], ["id"], time_column="timestamp",
                  engine=spark_connect_url)  # fmt: skip
    (mismatch,) = [f for f in stale.findings if f.check == "value_mismatch"]
    assert mismatch.likely_cause.startswith("stale values") and mismatch.examples
    dropped = audit(suite["training"], suite["classic dropped_feature"], ["id"], engine=spark_connect_url)
    assert [f.check for f in dropped.findings if f.feature == "size_of_downpayment"] == ["missing_feature"]


@pytest.fixture(scope="module")
def spark_tables(suite: dict[str, str], spark_connect_url: str) -> Iterator[dict[str, str]]:
    """Two tables of the Spark catalog (in the server's scratch warehouse)."""
    from pyspark.sql import SparkSession

    session = SparkSession.builder.remote(spark_connect_url).create()
    names = {"training": "parity_training", "serving": "parity_scaled"}
    session.read.parquet(suite["training"]).write.mode("overwrite").saveAsTable(names["training"])
    session.read.parquet(suite["classic unit_scaling"]).write.mode("overwrite").saveAsTable(names["serving"])
    try:
        yield names
    finally:
        for name in names.values():
            session.sql(f"DROP TABLE IF EXISTS {name}")
        session.stop()


def test_catalog_table_input_on_spark(suite: dict[str, str], spark_tables: dict[str, str],
                                      spark_connect_url: str) -> None:  # fmt: skip
    on_tables = audit(f"table:{spark_tables['training']}", f"table:{spark_tables['serving']}", ["id"],
                      engine=spark_connect_url)  # fmt: skip
    on_files = audit(suite["training"], suite["classic unit_scaling"], ["id"])
    assert_same(on_files, on_tables, "tables")
    (mismatch,) = [f for f in on_tables.findings if f.check == "value_mismatch"]
    assert mismatch.feature == "car_value" and mismatch.likely_cause.startswith("unit scaling")
    query = audit(f"sql:SELECT * FROM {spark_tables['training']} WHERE id < 5000",
                  f"table:{spark_tables['serving']}", ["id"], engine=spark_connect_url)  # fmt: skip
    assert query.coverage.training_rows == 5000 and query.coverage.serving_only_keys == ROWS - 5000


def test_sql_inputs_cannot_reach_files_or_the_jvm_on_spark(suite: dict[str, str], spark_connect_url: str) -> None:
    for sql in (f"SELECT * FROM parquet.`{suite['training']}`", "SELECT reflect('java.lang.System', 'exit', '0') k"):
        with pytest.raises(ParityError):
            audit(f"sql:{sql}", suite["training"], ["id"], engine=spark_connect_url)


def test_the_mcp_tool_runs_audits_on_the_configured_spark_engine(suite: dict[str, str],
                                                                  spark_connect_url: str) -> None:  # fmt: skip
    root = Path(suite["root"])
    server = build(ParityService(ParitySettings(data_dir=root, engine=spark_connect_url)))
    scaled = Path(suite["classic unit_scaling"]).name

    async def scenario() -> Any:
        async with Client(server) as client:
            found = await client.call_tool("audit_parity", {"training": "training.parquet", "serving": scaled,
                                                            "keys": ["id"]})  # fmt: skip
            unknown = await client.call_tool("audit_parity", {"training": "training.parquet", "serving": scaled,
                                                              "keys": ["no_such_key"]})  # fmt: skip
            return found, unknown

    found, unknown = anyio.run(scenario)
    assert not found.is_error and "car_value" in found.structured_content["flagged_features"]
    assert unknown.is_error and "the join key is missing" in unknown.content[0].text
    # The embedding and funnel checks stay on DuckDB: their table inputs need a DuckDB engine.
    with pytest.raises(ParityError, match="runs on DuckDB"):
        ParityService(ParitySettings(data_dir=root, engine=spark_connect_url)).engine_for("table:x")


def test_an_unreachable_spark_url_is_a_clear_error_not_a_hang(suite: dict[str, str]) -> None:
    """No server needed: refused at once, with what to do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    began = time.monotonic()
    with pytest.raises(ParityError, match=r"engine: cannot reach Spark Connect at 127\.0\.0\.1:\d+ .*start-connect"):
        audit(suite["training"], suite["training"], ["id"], engine=f"sc://127.0.0.1:{port}")
    assert time.monotonic() - began < 5
    with pytest.raises(ParityError, match="unknown engine URL"):
        audit(suite["training"], suite["training"], ["id"], engine="trino://host:8080")


def test_a_port_that_is_not_spark_connect_fails_within_the_timeout(suite: dict[str, str]) -> None:
    pytest.importorskip("pyspark", reason="the Spark Connect client comes with the spark extra")
    from tools.engines import EngineUnavailable
    from tools.engines.spark import SparkEngine

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def silent() -> None:  # accepts and never answers
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=silent, daemon=True)
    thread.start()
    try:
        began = time.monotonic()
        with pytest.raises(EngineUnavailable, match="does not answer"):
            SparkEngine.remote(f"sc://127.0.0.1:{listener.getsockname()[1]}", timeout=3)
        assert time.monotonic() - began < 10
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
