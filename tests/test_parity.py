"""The parity audit: each bug named with its cause, benign differences left alone, bad input explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest
from mcp import Client

from tools.parity import ParityError, Tolerances, audit, compare_embeddings, funnel_alignment
from tools.parity.report import write_report
from tools.parity.server import ParityService, ParitySettings, build

ROWS = 20_000


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A training log and serving copies with one known difference each, as Parquet files."""
    root = tmp_path_factory.mktemp("parity")
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE training AS SELECT i AS id,
        TIMESTAMP '2026-01-01' + INTERVAL (i * 60) SECOND AS ts,
        round(random() * 100, 3) AS price, round(random() * 10, 4) AS tenure,
        CASE WHEN i % 25 = 0 THEN NULL ELSE round(random(), 4) END AS ratio,
        ['WEB', 'IOS', 'ANDROID'][1 + i % 3] AS platform, round(random() * 0.5 + 0.2, 4) AS score
        FROM range({ROWS}) t(i)""")
    serving = {
        "clean": "SELECT * FROM training ORDER BY hash(id)",
        "fp16": "SELECT * REPLACE (CAST(CAST(price AS FLOAT) AS DOUBLE) * (1 + 2e-4) AS price) FROM training",
        "scaled": "SELECT * REPLACE (CASE WHEN id % 5 = 0 THEN price * 1000 ELSE price END AS price) FROM training",
        "nulls": "SELECT * REPLACE (coalesce(ratio, 0) AS ratio) FROM training",
        "stale": "SELECT t.* REPLACE (p.tenure AS tenure) FROM training t ASOF LEFT JOIN training p "
        "ON p.ts <= t.ts - INTERVAL 1 DAY",
        "remap": "SELECT * REPLACE (CASE platform WHEN 'WEB' THEN 'web' ELSE platform END AS platform) FROM training",
        "shuffled": "SELECT t.* REPLACE (x.tenure AS tenure) FROM training t JOIN (SELECT tenure, "
        "row_number() OVER (ORDER BY hash(id)) - 1 AS n FROM training) x ON x.n = t.id",
        "dropped": "SELECT * EXCLUDE (ratio) FROM training",
        "swapped": "SELECT * REPLACE (tenure AS price, price AS tenure) FROM training",
        "partial": "SELECT * FROM training WHERE id % 10 <> 3 UNION ALL SELECT * FROM training WHERE id < 50",
        "typed": "SELECT * REPLACE (CAST(price AS VARCHAR) AS price) FROM training",
    }
    paths = {"training": str(root / "training.parquet")}
    con.execute(f"COPY training TO '{paths['training']}' (FORMAT parquet)")
    for name, sql in serving.items():
        paths[name] = str(root / f"{name}.parquet")
        con.execute(f"COPY ({sql}) TO '{paths[name]}' (FORMAT parquet)")
    paths["root"] = str(root)
    return paths


def findings(report: Any, feature: str) -> list[Any]:
    return [f for f in report.findings if f.feature == feature]


def test_clean_and_benign_copies_raise_nothing(logs: dict[str, str]) -> None:
    for name in ("clean", "fp16"):
        report = audit(logs["training"], logs[name], ["id"], time_column="ts")
        assert report.findings == [] and report.flagged_features == [], (name, report.findings)
        assert report.coverage.joined_rows == ROWS and not report.partial


@pytest.mark.parametrize(
    ("serving", "feature", "cause"),
    [
        ("scaled", "price", "unit scaling: serving values are ×1000"),
        ("nulls", "ratio", "nulls served as 0"),
        ("stale", "tenure", "stale values: serving holds the value from one day earlier"),
        ("remap", "platform", "categorical remap: 'WEB'→'web'"),
        ("shuffled", "tenure", "values belong to other keys"),
        ("swapped", "price", "feature order: serving's price holds training's tenure"),
    ],
)
def test_each_bug_is_flagged_with_its_cause(logs: dict[str, str], serving: str, feature: str, cause: str) -> None:
    report = audit(logs["training"], logs[serving], ["id"], time_column="ts")
    mismatch = next(f for f in findings(report, feature) if f.check == "value_mismatch")
    assert mismatch.likely_cause.startswith(cause), mismatch.likely_cause
    assert mismatch.examples and {"id", "training", "serving"} <= set(mismatch.examples[0])
    assert feature in report.flagged_features


def test_distribution_preserving_bugs_are_invisible_to_drift_but_caught(logs: dict[str, str]) -> None:
    report = audit(logs["training"], logs["shuffled"], ["id"])
    stats = next(s for s in report.features if s.feature == "tenure")
    assert stats.psi is not None and stats.psi < 0.01  # a drift monitor sees nothing
    assert stats.mismatch_rate > 0.9 and "tenure" in report.flagged_features


def test_dropped_feature_and_coverage_and_duplicates(logs: dict[str, str]) -> None:
    dropped = audit(logs["training"], logs["dropped"], ["id"])
    (missing,) = findings(dropped, "ratio")
    assert missing.check == "missing_feature" and missing.severity == "critical"
    partial = audit(logs["training"], logs["partial"], ["id"])
    assert partial.coverage.training_only_keys == ROWS // 10 - 5 and partial.coverage.serving_duplicate_keys == 45
    checks = {f.check for f in partial.findings}
    assert {"coverage", "duplicates"} <= checks and not partial.flagged_features  # no feature blamed


def test_version_stamps_are_compared_as_stamps(logs: dict[str, str], tmp_path: Path) -> None:
    con = duckdb.connect()
    for name, sql in (("t", "SELECT *, 'tower-v3' AS model_version FROM '{src}'"),
                      ("s", "SELECT *, CASE WHEN id % 4 = 0 THEN 'tower-v2' ELSE 'tower-v3' END AS model_version "
                            "FROM '{src}'")):  # fmt: skip
        con.execute(f"COPY ({sql.format(src=logs['training'])}) TO '{tmp_path / name}.parquet' (FORMAT parquet)")
    report = audit(str(tmp_path / "t.parquet"), str(tmp_path / "s.parquet"), ["id"], version_columns=["model_version"])
    (skew,) = report.findings
    assert skew.check == "version_skew" and skew.severity == "critical" and "tower-v3→tower-v2" in skew.summary
    assert [s.feature for s in report.features if s.feature == "model_version"] == []  # a stamp, not a feature


def test_type_conflict_is_a_finding(logs: dict[str, str]) -> None:
    report = audit(logs["training"], logs["typed"], ["id"])
    assert any(f.check == "type_conflict" for f in findings(report, "price"))


def test_precision_tolerance_is_configurable(logs: dict[str, str]) -> None:
    strict = audit(logs["training"], logs["fp16"], ["id"], tolerances=Tolerances(precision="fp64"))
    assert "price" in strict.flagged_features  # fp16-sized differences are bugs for an fp64 pipeline


def test_prediction_parity(logs: dict[str, str]) -> None:
    same = audit(logs["training"], logs["clean"], ["id"], prediction="score")
    assert not [f for f in same.findings if f.check == "prediction"]
    shuffled_scores = logs["root"] + "/scores.parquet"
    duckdb.execute(f"COPY (SELECT t.* REPLACE (x.score AS score) FROM '{logs['training']}' t JOIN (SELECT score, "
                   f"row_number() OVER (ORDER BY hash(id)) - 1 n FROM '{logs['training']}') x ON x.n = t.id) "
                   f"TO '{shuffled_scores}' (FORMAT parquet)")  # fmt: skip
    skewed = audit(logs["training"], shuffled_scores, ["id"], prediction="score")
    assert any(f.check == "prediction" for f in skewed.findings)


@pytest.mark.parametrize(
    ("training", "serving", "keys", "message"),
    [
        ("nope.parquet", "clean", ["id"], "training: the file nope.parquet does not exist"),
        ("training", "clean", ["user_id"], "training, column 'user_id': the join key is missing"),
        ("training", "notes.txt", ["id"], "serving: notes.txt: give a .parquet/.csv/.json file"),
        ("training", "broken.csv", ["id"], "serving, column 'id': the join key is missing"),
        ("training", "empty", ["id"], "serving: the input has no rows"),
        ("training", "sql:DELETE FROM training", ["id"], "serving: `sql:` takes exactly one read-only query"),
        ("training", "clean", [], "keys: give at least one join key"),
    ],
)
def test_bad_input_names_the_input_and_column(
    logs: dict[str, str], tmp_path: Path, training: str, serving: str, keys: list[str], message: str
) -> None:
    (tmp_path / "broken.csv").write_text('a,b\n1,"unterminated\n')
    duckdb.execute(
        f"COPY (SELECT * FROM '{logs['training']}' LIMIT 0) TO '{tmp_path / 'empty.parquet'}' (FORMAT parquet)"
    )
    resolve = {"training": logs["training"], "clean": logs["clean"], "broken.csv": str(tmp_path / "broken.csv"),
               "empty": str(tmp_path / "empty.parquet"), "notes.txt": "notes.txt"}  # fmt: skip
    with pytest.raises(ParityError) as error:
        audit(resolve.get(training, training), resolve.get(serving, serving), keys)
    assert str(error.value).startswith(message), str(error.value)


def _embeddings(tmp_path: Path) -> dict[str, str]:
    con = duckdb.connect()
    con.execute("CREATE TABLE e AS SELECT i AS id, [sin(i * k) FOR k IN range(1, 17)] AS v FROM range(3000) t(i)")
    paths = {name: str(tmp_path / f"{name}.parquet") for name in ("v1", "v2", "half")}
    con.execute(f"COPY (SELECT id, v, 'v1' AS version FROM e) TO '{paths['v1']}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT id, [cos(id * k * 1.7) FOR k IN range(1, 17)] AS v, 'v2' AS version FROM e) "
                f"TO '{paths['v2']}' (FORMAT parquet)")  # fmt: skip
    con.execute(f"COPY (SELECT id, [CAST(CAST(x AS FLOAT) AS DOUBLE) FOR x IN v] AS v, 'v1' AS version FROM e) "
                f"TO '{paths['half']}' (FORMAT parquet)")  # fmt: skip
    return paths


def test_embedding_version_skew_is_caught_and_rounding_is_not(tmp_path: Path) -> None:
    paths = _embeddings(tmp_path)
    swapped = compare_embeddings(paths["v1"], paths["v2"], "id", "v", version_column="version")
    assert {f.check for f in swapped.findings} == {"embedding_version", "embedding_values"}
    assert swapped.mean_cosine < 0.5 and (swapped.neighbour_overlap or 0) < 0.5
    rounded = compare_embeddings(paths["v1"], paths["half"], "id", "v", version_column="version")
    assert rounded.findings == [] and rounded.mean_cosine > 0.9999 and rounded.neighbour_overlap == 1.0


def test_funnel_alignment(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE ranking AS SELECT r AS request, i AS item, random() AS score FROM range(50) a(r), "
                "range(100) b(i)")  # fmt: skip
    aligned = str(tmp_path / "aligned.parquet")
    starved = str(tmp_path / "starved.parquet")
    ranked = str(tmp_path / "ranking.parquet")
    con.execute(f"COPY ranking TO '{ranked}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT request, item, score AS rscore FROM ranking) TO '{aligned}' (FORMAT parquet)")
    con.execute(f"COPY (SELECT request, item, -score AS rscore FROM ranking QUALIFY row_number() OVER "
                f"(PARTITION BY request ORDER BY score) <= 50) TO '{starved}' (FORMAT parquet)")  # fmt: skip
    good = funnel_alignment(aligned, ranked, "request", "item", "rscore", "score", k=10)
    assert good.requests == 50 and good.supply_rate == 1.0 and good.findings == []
    bad = funnel_alignment(starved, ranked, "request", "item", "rscore", "score", k=10)
    assert bad.supply_rate == 0.0 and bad.findings[0].check == "funnel_supply"


def test_report_has_findings_and_plots(logs: dict[str, str], tmp_path: Path) -> None:
    report = audit(logs["training"], logs["scaled"], ["id"])
    path = write_report(report, tmp_path / "report.md", logs["training"], logs["scaled"])
    text = path.read_text()
    assert "unit scaling" in text and "![price](parity_price.png)" in text
    assert (tmp_path / "parity_price.png").stat().st_size > 1000


def test_mcp_server_confines_files_and_reports_findings(logs: dict[str, str]) -> None:
    server = build(ParityService(ParitySettings(data_dir=Path(logs["root"]), engine=None)))

    async def scenario() -> dict[str, Any]:
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            found = await client.call_tool("audit_parity", {"training": "training.parquet",
                                                            "serving": "scaled.parquet", "keys": ["id"]})  # fmt: skip
            escape = await client.call_tool("audit_parity", {"training": "../../etc/passwd.csv",
                                                             "serving": "scaled.parquet", "keys": ["id"]})  # fmt: skip
            no_engine = await client.call_tool("audit_parity", {"training": "table:x", "serving": "scaled.parquet",
                                                                "keys": ["id"]})  # fmt: skip
            return {"tools": tools, "found": found, "escape": escape, "no_engine": no_engine}

    result = anyio.run(scenario)
    assert set(result["tools"]) == {"audit_parity", "compare_embeddings", "funnel_alignment"}
    assert all(t.annotations.read_only_hint for t in result["tools"].values())
    assert not result["found"].is_error and result["found"].structured_content["flagged_features"] == ["price"]
    assert result["escape"].is_error and "outside it" in result["escape"].content[0].text
    assert result["no_engine"].is_error and "need an engine" in result["no_engine"].content[0].text
