"""The engine layer without a cluster: the URL picks the engine, the DuckDB engine's answers to the places where
dialects differ, Spark's type names in DuckDB's vocabulary, and the audit's SQL as Spark will receive it."""

from __future__ import annotations

import socket
from pathlib import Path

import duckdb
import pytest

from tools.engines import EngineUnavailable, Histogram, connect, is_spark
from tools.engines.duckdb import DuckDBEngine
from tools.engines.spark import DENIED, duckdb_type, transpile


def test_the_url_picks_the_engine(tmp_path: Path) -> None:
    for url in (None, "", "duckdb:", "duckdb://"):
        engine = connect(url)
        assert isinstance(engine, DuckDBEngine) and engine.capabilities.name == "duckdb"
        engine.close()
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT 1 AS x").close()
    attached = connect(str(path))
    assert attached.one("SELECT x FROM t") == (1,)
    attached.close()
    with pytest.raises(EngineUnavailable, match="does not exist"):
        connect(str(tmp_path / "missing.duckdb"))
    with pytest.raises(EngineUnavailable, match="unknown engine URL"):
        connect("trino://host:8080")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the block ends
    with pytest.raises(EngineUnavailable, match=rf"cannot reach the Spark master at 127\.0\.0\.1:{port} .*master"):
        connect(f"spark://127.0.0.1:{port}", timeout=2)
    assert is_spark("sc://h:15002") and is_spark("spark://h:7077") and not is_spark(str(path)) and not is_spark(None)


def test_duckdb_engine_answers_where_dialects_differ() -> None:
    engine = DuckDBEngine.open()
    engine.execute("CREATE TABLE e AS SELECT i % 3 AS k, i AS ts, i * 10 AS v, ['a', 'b'][1 + i % 2] AS c "
                   "FROM range(12) t(i)")  # fmt: skip
    engine.first_per_key("one", "e", ["k"])
    assert engine.one("SELECT count(*), count(DISTINCT k) FROM one") == (3, 3)
    total, hist, q = engine.aggregate("e", ["count(*)", Histogram("c"), engine.quantiles("v", [0.5], exact=True)])
    assert total == 12 and hist == {"a": 6, "b": 6} and q == [55.0]
    # ASOF: the latest right row at or before each left row's time, same key; left rows without one dropped.
    left, right = "(SELECT k, ts::DOUBLE + 0.5 AS ts FROM e WHERE ts >= 3)", "(SELECT k, ts::DOUBLE AS ts, v FROM e)"
    joined = engine.asof_join(left, right, "ts", ["k"], ["v"])
    rows = engine.rows(f"SELECT k, ts, v FROM {joined} j ORDER BY ts")
    assert rows[0] == (0, 3.5, 30) and all(v == (ts - 0.5) * 10 for _, ts, v in rows)
    engine.sample("s", "e", ["v"], rows=6, total=12, seed=7)
    assert engine.columns("s") == [("v", "BIGINT")]
    engine.close()


def test_the_duckdb_engine_draws_no_progress_bar_on_stdout(tmp_path: Path) -> None:
    """DuckDB draws a progress bar on stdout for a query past two seconds; in an MCP server on stdio that would
    break the JSON-RPC stream, and in a benchmark it ran into the result line."""
    database = tmp_path / "w.duckdb"
    duckdb.connect(str(database)).close()
    for engine in (DuckDBEngine.open(), DuckDBEngine.open(str(database))):
        try:
            assert engine.one("SELECT current_setting('enable_progress_bar')") == (False,)
            # a caller's query runs on a cursor of its own: the setting holds there too
            assert engine.fetch_native("SELECT current_setting('enable_progress_bar') AS p", 1, 5).rows == [(False,)]
        finally:
            engine.close()


def test_spark_types_read_as_duckdb_types() -> None:
    spark = ("bigint", "int", "double", "string", "boolean", "timestamp_ntz", "decimal(10,2)", "array<double>",
             "varchar(20)")  # fmt: skip
    duck = ("BIGINT", "INTEGER", "DOUBLE", "VARCHAR", "BOOLEAN", "TIMESTAMP", "DECIMAL(10,2)", "DOUBLE[]", "VARCHAR")
    assert tuple(duckdb_type(t) for t in spark) == duck


def test_the_audits_sql_as_spark_receives_it() -> None:
    assert transpile('SELECT CAST("x" AS VARCHAR) IS DISTINCT FROM s."y" FROM t') == (
        "SELECT CAST(`x` AS STRING) IS DISTINCT FROM s.`y` FROM t"
    )
    assert transpile("SELECT percentile(CAST(x AS DOUBLE), [0.05, 0.5]) FROM t") == (
        "SELECT PERCENTILE(CAST(x AS DOUBLE), ARRAY(0.05, 0.5)) FROM t"
    )
    assert "INTERVAL '1' DAY" in transpile("SELECT ts - INTERVAL 1 DAY FROM t")
    assert {"reflect", "java_method"} <= DENIED


def test_a_duckdb_warehouse_read_through_the_engine_layer(tmp_path: Path) -> None:
    """The catalog reader and a caller's query on the layer's DuckDB (tests/scale/test_sql_spark.py: on Spark)."""
    from datetime import datetime

    from tools.engines.catalog import EngineWarehouse

    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA shop")
    con.execute(
        "CREATE TABLE shop.orders AS SELECT i AS order_id, ['WEB', 'IOS'][1 + i % 2] AS platform FROM range(10) r(i)"
    )
    con.execute("COMMENT ON TABLE shop.orders IS 'One row per order'")
    con.execute("CREATE TABLE shop.log AS SELECT 'q1' AS query_id, 'ana' AS author, "
                "TIMESTAMP '2026-11-01 10:00:00' AS executed_at, 'SELECT 1' AS sql")  # fmt: skip
    con.close()
    reader = EngineWarehouse(str(path))
    tables = {t.name: t for t in reader.read_tables(profile=True, progress=None)}
    assert sorted(tables) == ["shop.log", "shop.orders"]
    orders = tables["shop.orders"]
    assert [(c.name, c.type) for c in orders.columns] == [("order_id", "BIGINT"), ("platform", "VARCHAR")]
    assert orders.row_count == 10 and orders.description == "One row per order" and orders.partition_column is None
    platform = orders.column("platform")
    assert platform is not None and platform.values == ["IOS", "WEB"]
    rows = reader.read_rows("shop.log", ["query_id", "author", "executed_at", "success", "sql"], "executed_at", 5)
    assert rows == [{"query_id": "q1", "author": "ana", "executed_at": datetime(2026, 11, 1, 10), "sql": "SELECT 1"}]

    engine = reader.engine()
    capped = engine.fetch_native("SELECT order_id FROM shop.orders ORDER BY order_id", max_rows=3, timeout=10)
    assert capped.columns == ["order_id"] and capped.rows == [(0,), (1,), (2,), (3,)]  # the cap plus one

    def refuse(columns: list[str]) -> None:
        raise LookupError(columns)

    with pytest.raises(LookupError):
        engine.fetch_native("SELECT platform FROM shop.orders", max_rows=3, timeout=10, check=refuse)
    assert "orders" in engine.plan_native("SELECT * FROM shop.orders", timeout=10).lower()
    reader.close()


def test_confine_sets_the_engines_memory_limit(tmp_path: Path) -> None:
    """The `sql` tool's BASTION_SQL_MEMORY_LIMIT reaches its own DuckDB instance (and no other engine's)."""
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    bounded, other = DuckDBEngine.open(str(path)), DuckDBEngine.open(str(path))
    bounded.confine([], memory="64MB")
    other.confine([])
    limit = str(bounded.one("SELECT current_setting('memory_limit')")[0])
    assert limit.endswith("MiB") and float(limit.split(maxsplit=1)[0]) < 100, limit
    assert str(other.one("SELECT current_setting('memory_limit')")[0]) != limit
    bounded.close()
    other.close()
