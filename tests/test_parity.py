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


# -- governed inputs: table:/sql: pass the SQL guard, files are sandboxed, findings redact personal data ------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A DuckDB warehouse with a PII column, its catalog, and a parity data directory beside it."""
    from governance.catalog import Catalog, Column, Table
    from governance.classification import Classification

    root = tmp_path_factory.mktemp("parity-warehouse")
    path = root / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA users")
    con.execute("CREATE TABLE users.users AS SELECT i AS user_id, 'user' || i || '@mail.example' AS email, "
                "['FR', 'DE', 'US'][1 + i % 3] AS country, i % 7 AS risk FROM range(500) t(i)")  # fmt: skip
    con.close()
    columns = [Column(name="user_id", type="BIGINT"), Column(name="email", pii="email"), Column(name="country"),
               Column(name="risk", classification=Classification.CONFIDENTIAL)]  # fmt: skip
    catalog = Catalog(tables={"users.users": Table(name="users.users", columns=columns)})
    data = root / "parity"
    data.mkdir()
    files = duckdb.connect()
    files.execute(f"ATTACH '{path}' AS w (READ_ONLY)")
    files.execute(f"COPY (SELECT user_id, email, country FROM w.users.users) TO '{data / 'train.parquet'}'")
    files.execute(f"COPY (SELECT user_id, CASE WHEN user_id % 2 = 0 THEN upper(email) ELSE email END AS email, "
                  f"country FROM w.users.users) TO '{data / 'serve.parquet'}'")  # fmt: skip
    files.execute(f"COPY (SELECT user_id AS id, [1.0, 2.0] AS vec, email AS model FROM w.users.users) "
                  f"TO '{data / 'emb.parquet'}'")  # fmt: skip
    files.close()
    service = ParityService(ParitySettings(data_dir=data, engine=str(path)), catalog=lambda: catalog)
    return {"service": service, "path": str(path), "data": data}


def call(service: ParityService, tool: str, arguments: dict[str, Any], clearance: str = "internal") -> Any:
    from governance import Principal, current_principal
    from governance.classification import Classification

    server = build(service)

    async def scenario() -> Any:
        token = current_principal.set(Principal(subject="ann", groups=frozenset({"analysts"}),
                                                clearance=Classification(clearance)))  # fmt: skip
        try:
            async with Client(server) as client:
                return await client.call_tool(tool, arguments)
        finally:
            current_principal.reset(token)

    return anyio.run(scenario)


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize(
    "source",
    [
        "sql:SELECT content FROM read_text('/etc/passwd')",
        "sql:SELECT * FROM read_csv('/etc/passwd')",
        "sql:SELECT file AS user_id FROM glob('/etc/*')",
        "sql:SELECT * FROM '/etc/passwd'",
        "sql:SELECT user_id, email FROM users.users",
        "sql:SELECT u FROM users.users u",
        "sql:SELECT COLUMNS(*) FROM users.users",
        "sql:SELECT user_id, risk FROM users.users",
        "table:users.users",
    ],
)
def test_parity_sql_inputs_pass_the_guard_with_the_callers_clearance(warehouse: dict[str, Any], source: str) -> None:
    """Old code: read_text returned /etc/passwd in the findings' examples; table:users.users returned e-mails."""
    result = call(warehouse["service"], "audit_parity",
                  {"training": source, "serving": "train.parquet", "keys": ["user_id"],
                   **({"features": ["email"]} if source.startswith("table:") else {})})  # fmt: skip
    assert result.is_error, text_of(result)
    body = text_of(result)
    assert "root:" not in body and "@mail.example" not in body
    assert "guard refused" in body or "withheld" in body


def test_table_input_reads_only_the_columns_the_caller_may_see(warehouse: dict[str, Any]) -> None:
    result = call(warehouse["service"], "audit_parity",
                  {"training": "table:users.users", "serving": "table:users.users", "keys": ["user_id"]})  # fmt: skip
    assert not result.is_error, text_of(result)
    compared = {f["feature"] for f in result.structured_content["features"]}
    assert compared == {"country"}  # email (PII) and risk (confidential) are not even read
    cleared = call(warehouse["service"], "audit_parity",
                   {"training": "table:users.users", "serving": "table:users.users", "keys": ["user_id"]},
                   clearance="confidential")  # fmt: skip
    assert {f["feature"] for f in cleared.structured_content["features"]} == {"country", "risk"}


def test_findings_show_personal_data_as_digests(warehouse: dict[str, Any]) -> None:
    """A file input with an e-mail column: the mismatch is found, but no address appears in the result."""
    result = call(warehouse["service"], "audit_parity",
                  {"training": "train.parquet", "serving": "serve.parquet", "keys": ["user_id"]})  # fmt: skip
    assert not result.is_error, text_of(result)
    assert result.structured_content["flagged_features"] == ["email"]
    raw = result.model_dump_json()
    assert "@mail.example" not in raw and "@MAIL.EXAMPLE" not in raw
    (finding,) = [f for f in result.structured_content["findings"] if f["check"] == "value_mismatch"]
    assert finding["examples"] and all(str(e["training"]).startswith("redacted:") for e in finding["examples"])


def test_embedding_versions_are_bounded_and_redacted(warehouse: dict[str, Any]) -> None:
    """Old code: compare_embeddings(version_column=email) listed every address as a 'version'."""
    result = call(warehouse["service"], "compare_embeddings",
                  {"training": "emb.parquet", "serving": "emb.parquet", "key": "id", "column": "vec",
                   "version_column": "model"})  # fmt: skip
    assert not result.is_error, text_of(result)
    versions = result.structured_content["versions_training"]
    assert len(versions) <= 21 and versions[-1].startswith("… more than")
    leaked = call(warehouse["service"], "compare_embeddings",
                  {"training": "sql:SELECT user_id AS id, [1.0] AS vec, email AS model FROM users.users",
                   "serving": "emb.parquet", "key": "id", "column": "vec", "version_column": "model"})  # fmt: skip
    assert leaked.is_error and "@mail.example" not in text_of(leaked)


def test_the_audit_engine_cannot_read_files_whatever_the_sql(warehouse: dict[str, Any]) -> None:
    """Library callers bypass the MCP adapter: the DuckDB sandbox still refuses file access."""
    for sql in ("SELECT content AS v, 1 AS k FROM read_text('/etc/passwd')", "SELECT 1 AS k FROM glob('/*')"):
        with pytest.raises(ParityError, match=r"files or table functions|not allowed"):
            audit(f"sql:{sql}", f"sql:{sql}", ["k"], engine=warehouse["path"])
    from tools.parity.sources import connect

    con = connect(warehouse["path"], str(warehouse["data"] / "train.parquet"))
    assert con.execute(f"SELECT count(*) FROM '{warehouse['data'] / 'train.parquet'}'").fetchone() == (500,)
    with pytest.raises(duckdb.Error, match="disabled by configuration"):
        con.execute("SELECT * FROM read_text('/etc/passwd')")
    with pytest.raises(duckdb.Error, match="locked"):
        con.execute("SET enable_external_access = true")
    # The one place DuckDB may always write (where it spills) is a private directory, not ./.tmp.
    (spill,) = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'temp_directory'").fetchone()  # type: ignore[misc]
    assert "bastion-parity-" in spill and not spill.startswith(str(Path.cwd()))
    with pytest.raises(duckdb.Error):
        con.execute("COPY (SELECT 1) TO '.tmp/out.csv'")
