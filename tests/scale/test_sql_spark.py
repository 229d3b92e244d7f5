"""The `sql` tool and the knowledge index on Spark (Connect, local[2]).

A Spark database with a partitioned, commented table and a query-history table is indexed through the engine
layer (`bastion index`'s path: tools.engines.catalog); the `sql` service then validates in the spark dialect
and runs on Spark: EXPLAIN first, the row cap, a timeout that cancels the running job, the guard's refusals.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from embeddings.embedder import MiniLMEmbedder
from embeddings.index import IndexSummary, Snapshot, build_index
from embeddings.settings import IndexSettings, LLMSettings
from governance.catalog import Catalog
from tests.knowledge_fixtures import index_settings
from tools import engines
from tools.engines.catalog import EngineWarehouse, reader_for
from tools.sql.engine import Engine, EngineError
from tools.sql.service import SqlError, SqlService, SqlSettings

DB = "bastion_sql_test"
ORDERS = 3_000
DAYS = 5  # partitions dt = 2026-11-01 … 2026-11-05
NO_LLM = LLMSettings(base_url=None, model=None)


@pytest.fixture(scope="module")
def spark_db(spark_connect_url: str) -> Iterator[str]:
    """A Spark database: a partitioned table with comments, an unpartitioned one, and a query history table."""
    engine = engines.connect(spark_connect_url)
    session: Any = engine.session  # type: ignore[attr-defined]  # DDL of the test's own, in Spark SQL
    session.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")
    session.sql(f"CREATE DATABASE {DB}")
    session.sql(
        f"CREATE TABLE {DB}.orders (order_id BIGINT, platform STRING COMMENT 'Where the order was placed', "
        f"amount DOUBLE, dt DATE) USING parquet PARTITIONED BY (dt) COMMENT 'One row per order'"
    )
    session.sql(
        f"INSERT INTO {DB}.orders SELECT id, element_at(array('WEB', 'IOS', 'ANDROID'), CAST(id % 3 + 1 AS INT)), "
        f"id * 1.5, date_add(DATE '2026-11-01', CAST(id % {DAYS} AS INT)) FROM range({ORDERS})"
    )
    session.sql(f"CREATE TABLE {DB}.customers (customer_id BIGINT, country STRING) USING parquet")
    session.sql(f"INSERT INTO {DB}.customers SELECT id, IF(id % 2 = 0, 'DE', 'FR') FROM range(40)")
    session.sql(
        f"CREATE TABLE {DB}.query_log (query_id STRING, author STRING, executed_at TIMESTAMP, success BOOLEAN, "
        "sql STRING) USING parquet"
    )
    session.sql(
        f"INSERT INTO {DB}.query_log VALUES "  # the logged SQL in double-quoted Spark strings
        f"""('q1', 'ana', TIMESTAMP '2026-11-02 10:00:00', true, """
        f""""SELECT platform, sum(amount) FROM {DB}.orders WHERE dt >= DATE '2026-11-01' GROUP BY platform"), """
        f"""('q2', 'ben', TIMESTAMP '2026-11-03 11:00:00', true, """
        f""""SELECT country, count(*) FROM {DB}.customers GROUP BY country"), """
        f"""('q3', 'ana', TIMESTAMP '2026-11-04 09:30:00', true, """
        f""""SELECT platform, sum(amount) FROM {DB}.orders WHERE dt >= DATE '2026-11-03' GROUP BY platform"), """
        f"""('bad', NULL, TIMESTAMP '2026-11-04 09:31:00', true, 'SELECT 1')"""
    )
    try:
        yield spark_connect_url
    finally:
        session.sql(f"DROP DATABASE IF EXISTS {DB} CASCADE")
        engine.close()


@pytest.fixture(scope="module")
def spark_index(
    spark_db: str, embedder: MiniLMEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[IndexSettings, IndexSummary]:
    """The knowledge index built from the Spark warehouse, as `bastion index` builds it."""
    settings = index_settings(
        tmp_path_factory.mktemp("spark-index"), warehouse_url=spark_db + "/;user_id=bastion",
        query_log_table=f"{DB}.query_log",
    )  # fmt: skip
    reader = reader_for(settings.warehouse_url)
    assert reader is not None
    try:
        summary = build_index(settings, embedder, llm=NO_LLM, reader=reader)
    finally:
        reader.close()
    return settings, summary


@pytest.fixture(scope="module")
def service(
    spark_db: str, spark_index: tuple[IndexSettings, IndexSummary], embedder: MiniLMEmbedder
) -> Iterator[SqlService]:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("tools.sql.service.make_embedder", lambda settings: embedder)
    sql = SqlService(SqlSettings(url=spark_db, timeout=60, max_rows=50, partition_min_rows=1_000), spark_index[0])
    try:
        yield sql
    finally:
        sql.engine().close()
        monkeypatch.undo()


def catalog_of(settings: IndexSettings) -> Catalog:
    return Snapshot.read(Snapshot.directory(settings)).catalog


# -- the catalog and the query history, read from Spark -----------------------------------------------------


def test_the_index_holds_sparks_databases_tables_columns_and_partitions(
    spark_index: tuple[IndexSettings, IndexSummary],
) -> None:
    settings, summary = spark_index
    catalog = catalog_of(settings)
    mine = sorted(name for name in catalog.tables if name.startswith(f"{DB}."))
    assert mine == [f"{DB}.customers", f"{DB}.orders", f"{DB}.query_log"]
    orders = catalog.tables[f"{DB}.orders"]
    assert [(c.name, c.type) for c in orders.columns] == [
        ("order_id", "BIGINT"), ("platform", "STRING"), ("amount", "DOUBLE"), ("dt", "DATE")
    ]  # fmt: skip
    assert orders.partition_column == "dt"
    assert orders.last_updated == dt.date(2026, 11, DAYS)  # the latest partition
    assert orders.row_count == ORDERS
    assert orders.description == "One row per order"
    platform = orders.column("platform")
    assert platform is not None and platform.description == "Where the order was placed"
    assert platform.values == ["ANDROID", "IOS", "WEB"]  # profiled in Spark
    customers = catalog.tables[f"{DB}.customers"]
    assert customers.partition_column is None and customers.row_count == 40

    # The history table: three good rows (the one without an author reported), mined into usage.
    assert summary.queries == 3 and any("author" in p for p in summary.problems)
    assert orders.usage.queries == 2 and orders.usage.distinct_authors == 1
    # The summary names the warehouse without the Connect URL's parameters.
    assert summary.source == spark_db_address(settings) and ";" not in summary.source


def spark_db_address(settings: IndexSettings) -> str:
    assert settings.warehouse_url is not None
    return settings.warehouse_url.split("/;", 1)[0]


def test_an_unreachable_spark_warehouse_is_a_clear_error(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    from embeddings.connectors import SourceError, read_schema

    reader = EngineWarehouse("sc://127.0.0.1:1/;token=s3cret", timeout=2)
    with pytest.raises(SourceError) as down:
        reader.read_tables(profile=False, progress=None)
    assert "cannot reach Spark Connect at 127.0.0.1:1" in str(down.value) and "s3cret" not in str(down.value)
    # Without the engine layer's reader, a Spark warehouse is not mistaken for an SQLAlchemy URL.
    with pytest.raises(SourceError, match="read through the engine layer"):
        read_schema("sc://127.0.0.1:1")
    # A query history table needs a warehouse read through the engine layer; nothing is published.
    warehouse = tmp_path / "w.duckdb"
    duckdb.connect(str(warehouse)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    settings = index_settings(tmp_path, warehouse_url=str(warehouse), query_log_table="shop.query_log")
    with pytest.raises(SourceError, match="BASTION_QUERY_LOG_TABLE"):
        build_index(settings, embedder, llm=NO_LLM)
    assert not Snapshot.directory(settings).exists()


# -- the sql tool on Spark ------------------------------------------------------------------------------------


def test_run_sql_on_spark_validates_in_the_spark_dialect_explains_and_runs(service: SqlService) -> None:
    sql = (f"select platform, count(*) as n, sum(amount) as total from {DB}.orders "
           "where dt >= date '2026-11-04' group by platform order by platform")  # fmt: skip
    validation = service.validate(sql)
    assert validation.ok and validation.guard.dialect == "spark"
    assert validation.explain and "orders" in validation.explain  # Spark's own plan
    run = service.run(sql)
    assert run.dialect == "spark" and run.tables == [f"{DB}.orders"]
    assert run.result.columns == ["platform", "n", "total"]
    per_day = ORDERS // DAYS
    assert [r[0] for r in run.result.rows] == ["ANDROID", "IOS", "WEB"]
    assert sum(r[1] for r in run.result.rows) == 2 * per_day and not run.result.truncated
    # Spark functions pass the guard in the spark dialect; DuckDB's are transpiled from dialect="duckdb".
    spark_only = service.run(f"select date_format(dt, 'yyyy-MM') as month, count(*) as n from {DB}.orders "
                             "where dt >= date '2026-11-01' group by 1")  # fmt: skip
    assert spark_only.result.rows == [["2026-11", ORDERS]]
    moved = service.run(f"select strftime(dt, '%Y') as y from {DB}.orders where dt = date '2026-11-02' limit 1",
                        dialect="duckdb")  # fmt: skip
    assert moved.result.rows == [["2026"]]


def test_the_row_cap_on_spark(service: SqlService, spark_db: str) -> None:
    capped = service.run(f"select order_id from {DB}.orders where dt >= date '2026-11-01' limit 1000")
    assert capped.result.row_count == 50 and "LIMIT 50" in capped.sql  # the guard caps LIMIT at max_rows
    assert any("capped to 50" in w for w in capped.warnings)
    # The engine itself fetches at most the cap plus one row, and says the result was cut.
    engine = Engine(spark_db)
    try:
        rows = engine.run(f"SELECT order_id FROM {DB}.orders", max_rows=7, timeout=60)
        assert rows.row_count == 7 and len(rows.rows) == 7 and rows.truncated
        whole = engine.run(f"SELECT country FROM {DB}.customers LIMIT 7", max_rows=7, timeout=60)
        assert whole.row_count == 7 and not whole.truncated
    finally:
        engine.close()


def test_a_long_query_on_spark_is_cancelled_at_the_timeout(service: SqlService, spark_db: str) -> None:
    slow_service = SqlService(service.settings.model_copy(update={"timeout": 3.0}), service.index)
    huge = (f"select count(*) as n from {DB}.orders a cross join {DB}.orders b cross join {DB}.orders c "
            "where a.dt >= date '2026-11-01' and b.dt >= date '2026-11-01' and c.dt >= date '2026-11-01'")  # fmt: skip
    started = time.monotonic()
    with pytest.raises(SqlError) as slow:
        slow_service.run(huge)  # 27 billion rows: minutes on local[2]
    waited = time.monotonic() - started
    assert slow.value.code == "timeout" and "longer than 3s" in slow.value.message
    assert waited < 20, waited
    # The job was cancelled on the server, not left running: the next query answers at once.
    started = time.monotonic()
    quick = slow_service.run(f"select country, count(*) as n from {DB}.customers group by country order by 1")
    assert quick.result.rows == [["DE", 20], ["FR", 20]] and time.monotonic() - started < 15
    slow_service.engine().close()
    # The same code as on DuckDB, from the engine adapter directly.
    engine = Engine(spark_db)
    try:
        with pytest.raises(EngineError) as direct:
            engine.run("SELECT count(*) FROM range(1000000) a CROSS JOIN range(1000000) b", 1, timeout=1.5)
        assert direct.value.code == "timeout"
    finally:
        engine.close()


def test_the_guard_refuses_in_the_spark_dialect_and_nothing_reaches_spark(service: SqlService) -> None:
    refusals = {
        f"select reflect('java.lang.Runtime', 'getRuntime') as r from {DB}.customers": "forbidden_function",
        f"select java_method('java.lang.System', 'exit', 0) as r from {DB}.customers": "forbidden_function",
        f"select input_file_name() as f from {DB}.customers": "forbidden_function",
        f"select transform(country) using 'sh -c id' as (x) from {DB}.customers": "not_read_only",
        f"insert into {DB}.customers select customer_id + 100, country from {DB}.customers": "not_read_only",
        f"select count(*) as n from {DB}.orders": "missing_partition_filter",  # 3,000 rows, partitioned by dt
        "select * from parquet.`/etc/passwd`": "unknown_table",
    }
    for sql, code in refusals.items():
        with pytest.raises(SqlError) as refused:
            service.run(sql)
        assert refused.value.code == "refused", sql
        assert code in [i.code for i in refused.value.issues], (sql, refused.value.issues)
    assert service.run(f"select count(*) as n from {DB}.customers").result.rows == [[40]]  # nothing was written


def test_an_unplannable_query_is_an_explain_error_on_spark(service: SqlService, spark_db: str) -> None:
    # The catalog says a column exists that the engine does not have (the index is stale): EXPLAIN catches it.
    engine = Engine(spark_db)
    try:
        with pytest.raises(EngineError) as stale:
            engine.explain(f"SELECT no_such_column FROM {DB}.customers")
    finally:
        engine.close()
    assert stale.value.code == "explain_failed" and "no_such_column" in stale.value.message


def test_a_spark_connect_url_never_shows_its_token(tmp_path: Path) -> None:
    engine = Engine("sc://127.0.0.1:1/;token=s3cret;user_id=x")
    assert engine.dialect == "spark" and engine.describe() == "sc://127.0.0.1:1"
    with pytest.raises(EngineError) as down:
        engine.run("SELECT 1", 1, 1)
    assert down.value.code == "engine_down" and "s3cret" not in down.value.message


def test_a_connect_server_that_does_not_answer_never_shows_the_token() -> None:
    """A port that accepts connections but speaks no Spark Connect (a server starting, a wrong port): the
    error says so within the timeout, without the URL's credentials."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        with pytest.raises(engines.EngineUnavailable) as silent:
            engines.connect(f"sc://127.0.0.1:{port}/;token=s3cret;user_id=x", timeout=2)
    message = str(silent.value)
    assert f"sc://127.0.0.1:{port}" in message and "s3cret" not in message and "user_id" not in message, message


def test_spark_sessions_of_ours_substitute_no_variables(spark_db: str) -> None:
    """Spark replaces ${…} in SQL text before parsing it (a literal would read the server's environment; a
    comment could close early). Every engine session switches that off; the guard refuses the syntax too."""
    engine = engines.connect(spark_db)
    try:
        fetched = engine.fetch_native("SELECT '${system:file.separator}' AS x, '${env:HOME}' AS y", 1, 60)
    finally:
        engine.close()
    assert fetched.rows == [("${system:file.separator}", "${env:HOME}")]
