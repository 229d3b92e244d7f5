"""Apache Spark: Spark Connect (`sc://host:port`) or an in-process session on a master (`spark://host:port`).

Tools write DuckDB SQL; each statement is transpiled with sqlglot (read="duckdb", write="spark"). What
sqlglot cannot bridge is done here, with the DataFrame API where Spark SQL has no equivalent:

- temporary tables: a cached temporary view (unpersisted on close);
- sampling: DataFrame.sample (Bernoulli, seeded: the same rows for the same partitioning);
- one row per key: DataFrame.dropDuplicates (no window, no sort);
- quantiles: exact `percentile` on bounded inputs (samples), `percentile_approx` with accuracy
  QUANTILE_ACCURACY on whole relations (rank error at most 1/QUANTILE_ACCURACY of the rows);
- per-value histograms: one GROUPING SETS query (Spark has no `histogram` aggregate);
- ASOF joins: a window over the union of both sides (the last right row at or before each left row),
  partitioned by the `by` columns (without them, one partition: fine for a sample, slow at scale);
- functions over Arrow batches (`map_batches`, `with_columns`): Arrow UDFs (DataFrame.mapInArrow) over the rows
  dealt to spark.sql.shuffle.partitions tasks, run by the cluster's Python workers — which need bastion
  installed (the function's module must import there);
- files: the DataFrame reader; afterwards `spark.sql.runSQLOnFiles` is off, so SQL cannot name a file.

A caller's query (the `sql` tool's, already checked by the guard in the spark dialect) runs as written:
`fetch_native` tags the call's operations and interrupts the tag on the server at the timeout (the job is
cancelled), and fetches at most the cap plus one row. `tables` reads the catalog: databases, tables, columns
(Spark's types and comments), partition columns and the latest partition, row counts.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlglot

from governance.sqlguard.functions import DENIED_IN_DIALECT
from tools.engines.base import (
    BATCH_TYPES,
    Aggregate,
    BatchFunction,
    Capabilities,
    ColumnInfo,
    EngineError,
    EngineTimeout,
    EngineUnavailable,
    Fetched,
    Histogram,
    TableInfo,
    arrow_schema,
    conform,
    display_url,
)

QUANTILE_ACCURACY = 10_000
CONNECT_TIMEOUT_S = 10.0
READERS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
# Calls that reach the JVM or the file system from SQL: never run for a caller (the SQL guard refuses them in
# the spark dialect; one list, the guard's).
DENIED = DENIED_IN_DIALECT["spark"]
INTERRUPT_RETRY_S = 0.5  # after a timeout, interrupt again this often until the call returns
_ROWS_STATISTIC = re.compile(r"(\d+) rows")

CAPABILITIES = Capabilities(
    name="spark",
    dialect="spark",
    distributed=True,
    native_asof_join=False,
    temp_tables=False,
    seeded_sampling=True,
    exact_quantiles=False,
    quantile_rank_error=1 / QUANTILE_ACCURACY,
    file_formats=tuple(sorted(READERS)),
)

_SIMPLE_TYPES = {
    "tinyint": "TINYINT", "byte": "TINYINT", "smallint": "SMALLINT", "short": "SMALLINT", "int": "INTEGER",
    "integer": "INTEGER", "bigint": "BIGINT", "long": "BIGINT", "float": "FLOAT", "real": "FLOAT",
    "double": "DOUBLE", "string": "VARCHAR", "boolean": "BOOLEAN", "date": "DATE",
    "timestamp": "TIMESTAMP WITH TIME ZONE", "timestamp_ntz": "TIMESTAMP", "binary": "BLOB", "void": "NULL",
}  # fmt: skip


def duckdb_type(spark_type: str) -> str:
    """A Spark type (simpleString) in DuckDB's vocabulary, so that tools classify columns one way."""
    lowered = spark_type.strip().lower()
    if lowered in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[lowered]
    if lowered.startswith("array<") and lowered.endswith(">"):
        return duckdb_type(spark_type.strip()[6:-1]) + "[]"
    if lowered.startswith(("varchar", "char")):
        return "VARCHAR"
    if lowered.startswith("decimal"):
        return lowered.upper()
    if lowered.startswith("struct<"):
        return "STRUCT" + spark_type.strip()[6:]
    if lowered.startswith("map<"):
        return "MAP" + spark_type.strip()[3:]
    return spark_type.upper()


def transpile(sql: str) -> str:
    try:
        return ";\n".join(sqlglot.transpile(sql, read="duckdb", write="spark"))
    except sqlglot.errors.SqlglotError as exc:
        raise EngineError(f"the query cannot be written for Spark: {exc}") from None


def _probe(url: str, timeout: float) -> None:
    """Fail fast (a refused or silent port) instead of the client's minutes of retries."""
    parts = urlsplit(url)
    connect = parts.scheme == "sc"
    host, port = parts.hostname or "localhost", parts.port or (15002 if connect else 7077)
    what, start = (
        ("Spark Connect", "$SPARK_HOME/sbin/start-connect-server.sh")
        if connect
        else ("the Spark master", "$SPARK_HOME/sbin/start-master.sh and a worker")
    )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise EngineUnavailable(
            f"cannot reach {what} at {host}:{port} within {timeout:g} s ({exc.__class__.__name__}: {exc}); "
            f"start it with {start} or fix the URL"
        ) from None


def _spark_error(exc: Exception, url: str | None = None) -> EngineError:
    """The first line of Spark's message (bounded by EngineError), without the URL's credentials."""
    text = str(exc)
    if url is not None:
        text = text.replace(url, display_url(url))
    # Spark's messages put the error class first, then an explanation; the JVM trace never reaches callers.
    return EngineError(text.split("\n\nJVM stacktrace", 1)[0])


class SparkEngine:
    capabilities = CAPABILITIES

    def __init__(self, session: Any, owned: bool) -> None:
        self.session = session
        self._owned = owned  # a Connect session of our own: stopped on close
        self._cached: list[Any] = []
        self._views: list[str] = []
        self._schemas: dict[str, Any] = {}
        self._names = itertools.count()
        try:
            # Naive timestamps mean the same instant on both engines.
            session.conf.set("spark.sql.session.timeZone", "UTC")
            # Spark replaces `${name}`, `${env:NAME}` and `${system:name}` in SQL text before parsing it: in a
            # string a caller's query would read the server's environment and settings, in a comment turn into
            # SQL the guard never saw. Nothing here substitutes variables, so no session of ours does.
            session.conf.set("spark.sql.variable.substitute", "false")
            substitutes = str(session.conf.get("spark.sql.variable.substitute")).lower()
        except Exception as exc:
            raise _spark_error(exc) from None
        if substitutes != "false":
            raise EngineUnavailable("this Spark session keeps substituting ${…} variables in SQL; refusing to use it")

    @classmethod
    def remote(cls, url: str, timeout: float = CONNECT_TIMEOUT_S) -> SparkEngine:
        """A new Spark Connect session (its own temporary views and settings) on the server at `url`."""
        _probe(url, timeout)
        session_type = _pyspark().SparkSession
        try:
            session = session_type.builder.remote(url).create()  # a channel: no call yet
        except Exception as exc:
            raise EngineUnavailable(f"Spark Connect at {display_url(url)}: {_spark_error(exc, url)}") from None
        outcome: dict[str, Any] = {}

        def first_call() -> None:
            try:
                outcome["version"] = session.version  # the first RPC: is this a Spark Connect server?
            except Exception as exc:
                outcome["error"] = exc

        # The client retries for minutes against a port that answers but is not Spark Connect: bounded here,
        # and the channel closed, which cancels the call (nothing keeps retrying, nothing holds up the exit).
        caller = threading.Thread(target=first_call, name="spark-connect-probe", daemon=True)
        caller.start()
        caller.join(timeout)
        if "version" not in outcome:
            with contextlib.suppress(Exception):
                session.client.close()
            caller.join(5)
            why = _spark_error(outcome["error"], url) if "error" in outcome else f"no answer within {timeout:g} s"
            raise EngineUnavailable(f"Spark Connect at {display_url(url)} does not answer: {why}")
        return cls(session, owned=True)

    @classmethod
    def in_process(cls, master: str, timeout: float = CONNECT_TIMEOUT_S) -> SparkEngine:
        """A session of an in-process SparkContext on the master `spark://host:port` (shared by the process;
        each engine gets a new session, so temporary views do not collide)."""
        _probe(master, timeout)
        session_type = _pyspark().SparkSession
        try:
            root = session_type.builder.master(master).appName("bastion").getOrCreate()
        except Exception as exc:
            raise EngineUnavailable(f"Spark master {master}: {_spark_error(exc)}") from None
        return cls(root.newSession(), owned=False)

    # -- running SQL ----------------------------------------------------------------------------------

    def _df(self, sql: str) -> Any:
        try:
            return self.session.sql(transpile(sql))
        except EngineError:
            raise
        except Exception as exc:
            raise _spark_error(exc) from None

    def _collect(self, df: Any) -> list[tuple[Any, ...]]:
        try:
            return [tuple(r) for r in df.collect()]
        except Exception as exc:
            raise _spark_error(exc) from None

    def execute(self, sql: str) -> None:
        # Commands (CREATE VIEW …) run when submitted, on Connect and in-process alike.
        self._df(sql)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._collect(self._df(sql))

    def one(self, sql: str) -> tuple[Any, ...]:
        rows = self.rows(sql)
        if len(rows) != 1:
            raise EngineError(f"the query returned {len(rows)} rows, not one")
        return rows[0]

    def arrow(self, sql: str) -> Any:
        try:
            return self._df(sql).toArrow()
        except EngineError:
            raise
        except Exception as exc:
            raise _spark_error(exc) from None

    def columns(self, relation: str) -> list[tuple[str, str]]:
        try:
            schema = self._schemas.get(relation) or self.session.table(relation).schema
            fields = schema.fields
        except Exception as exc:
            raise _spark_error(exc) from None
        return [(f.name, duckdb_type(f.dataType.simpleString())) for f in fields]

    # -- inputs ---------------------------------------------------------------------------------------

    def _view(self, name: str, df: Any, check: bool = True) -> None:
        try:
            df.createOrReplaceTempView(name)
            if check:
                # Analysis: a bad query or an unreadable file fails here, not later (one round trip, kept).
                self._schemas[name] = df.schema
        except Exception as exc:
            raise _spark_error(exc) from None
        self._views.append(name)

    def register_arrow(self, name: str, data: Any) -> None:
        import pyarrow as pa

        try:
            table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
            df = self.session.createDataFrame(table)
        except Exception as exc:
            raise _spark_error(exc) from None
        self._view(name, df)

    def register_file(self, name: str, path: str) -> None:
        kind = READERS.get(Path(path).suffix.lower())
        if kind is None:
            raise EngineError(f"{Path(path).name[:120]}: no reader for this kind of file")
        try:
            reader = self.session.read
            if kind == "csv":
                sep = "\t" if path.lower().endswith(".tsv") else ","
                df = reader.csv(path, header=True, inferSchema=True, sep=sep, mode="FAILFAST")
            elif kind == "json":
                df = reader.json(path, mode="FAILFAST")
            else:
                df = reader.parquet(path)
        except Exception as exc:
            raise _spark_error(exc) from None
        self._view(name, df)

    def register_query(self, name: str, sql: str) -> None:
        self._view(name, self._df(f"SELECT * FROM ({sql})"))

    # -- where dialects differ ------------------------------------------------------------------------

    def _keep(self, name: str, df: Any) -> None:
        try:
            df = df.cache()
        except Exception as exc:
            raise _spark_error(exc) from None
        self._cached.append(df)
        self._view(name, df, check=False)

    def materialize(self, name: str, sql: str) -> None:
        self._keep(name, self._df(sql))

    def sample(self, name: str, relation: str, columns: list[str], rows: int, total: int, seed: int) -> None:
        df = self._df(f"SELECT {', '.join(_quote(c) for c in columns)} FROM {relation}")
        if total > rows:
            df = df.sample(fraction=rows / total, seed=int(seed))
        self._keep(name, df)

    def map_batches(
        self,
        name: str,
        relation: str,
        function: BatchFunction,
        columns: list[tuple[str, str]],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        arrow_schema(columns)  # the types checked here, not in a worker
        df = self._df(f"SELECT * FROM {relation}")
        try:
            df = self._spread(df)
            mapped = df.mapInArrow(ArrowMap(function, columns, keep=False), _struct(df, columns, keep=False))
        except Exception as exc:
            raise _spark_error(exc) from None
        self._keep(name, mapped)

    def with_columns(self, name: str, relation: str, function: BatchFunction, columns: list[tuple[str, str]]) -> None:
        arrow_schema(columns)
        df = self._df(f"SELECT * FROM {relation}")
        try:
            clash = sorted(set(df.columns) & {c for c, _ in columns})
            if clash:
                raise EngineError(f"{relation[:80]} already has the column(s) {', '.join(clash)[:200]}")
            schema = _struct(df, columns, keep=True)
            mapped = self._spread(df).mapInArrow(ArrowMap(function, columns, keep=True), schema)
        except EngineError:
            raise
        except Exception as exc:
            raise _spark_error(exc) from None
        self._view(name, mapped)

    def _spread(self, df: Any) -> Any:
        """Rows dealt round-robin over spark.sql.shuffle.partitions tasks, so that a Python function uses every
        core however few files (or row groups) the input has — one Parquet file is one task otherwise."""
        return df.repartition(int(self.session.conf.get("spark.sql.shuffle.partitions") or 200))

    def first_per_key(self, name: str, relation: str, keys: list[str]) -> None:
        try:
            df = self.session.table(relation).dropDuplicates(keys)
        except Exception as exc:
            raise _spark_error(exc) from None
        self._view(name, df)

    def quantiles(self, expression: str, quantiles: list[float], exact: bool) -> str:
        listed = [float(q) for q in quantiles]
        if exact:
            return f"percentile({expression}, {listed})"
        return f"percentile_approx({expression}, {listed}, {QUANTILE_ACCURACY})"

    def quantile(self, expression: str, quantile: float, exact: bool) -> str:
        if exact:
            return f"percentile({expression}, {float(quantile)!r})"
        return f"percentile_approx({expression}, {float(quantile)!r}, {QUANTILE_ACCURACY})"

    def asof_join(self, left: str, right: str, time: str, by: list[str], columns: list[str]) -> str:
        from pyspark.sql import functions as F
        from pyspark.sql.window import Window

        try:
            lhs = self._df(f"SELECT * FROM {left}")
            rhs = self._df(f"SELECT * FROM {right}")
            kept = lhs.columns
            lhs = lhs.where(F.col(time).isNotNull()).withColumn("__side", F.lit(1))
            rhs = rhs.where(F.col(time).isNotNull())
            for key in by:
                lhs, rhs = lhs.where(F.col(key).isNotNull()), rhs.where(F.col(key).isNotNull())
            rhs = rhs.select(
                F.col(time), *[F.col(k) for k in by], F.struct(*[F.col(c) for c in columns]).alias("__right"),
                F.lit(0).alias("__side"),
            )  # fmt: skip
            # Right rows sort before left rows of the same time: "at or before".
            window = (
                # Without `by`, one partition, said so here (the module docstring) rather than warned on every call.
                Window.partitionBy(*(by or [F.lit(0)])).orderBy(F.col(time), F.col("__side"))
                .rowsBetween(Window.unboundedPreceding, Window.currentRow)
            )  # fmt: skip
            both = lhs.unionByName(rhs, allowMissingColumns=True)
            both = both.withColumn("__asof", F.last("__right", ignorenulls=True).over(window))
            joined = both.where((F.col("__side") == 1) & F.col("__asof").isNotNull()).select(
                *[F.col(c) for c in kept], *[F.col("__asof")[c].alias(c) for c in columns]
            )
        except EngineError:
            raise
        except Exception as exc:
            raise _spark_error(exc) from None
        name = f"__asof_{next(self._names)}"
        self._view(name, joined)
        return name

    def aggregate(self, relation: str, aggregates: list[Aggregate]) -> tuple[Any, ...]:
        scalars = [a for a in aggregates if isinstance(a, str)]
        histograms = [a for a in aggregates if isinstance(a, Histogram)]
        scalar_values: list[Any] = []
        if scalars:
            scalar_values = list(self.one(f"SELECT {', '.join(scalars)} FROM {relation}"))
        counted: list[dict[Any, int]] = [{} for _ in histograms]
        if histograms:
            names = [f"__v{i}" for i in range(len(histograms))]
            projected = ", ".join(f"{h.expression} AS {n}" for h, n in zip(histograms, names, strict=True))
            sets = ", ".join(f"({n})" for n in names)
            grouping = ", ".join(f"grouping({n})" for n in names)
            for row in self.rows(
                f"SELECT {', '.join(names)}, {grouping}, count(*) FROM (SELECT {projected} FROM {relation}) "
                f"GROUP BY GROUPING SETS ({sets})"
            ):
                value_row, grouped, count = row[: len(names)], row[len(names) : 2 * len(names)], row[-1]
                active = list(grouped).index(0)
                if value_row[active] is not None:  # as DuckDB's histogram: non-null values only
                    counted[active][value_row[active]] = int(count)
        scalar_iter, histogram_iter = iter(scalar_values), iter(counted)
        return tuple(next(histogram_iter) if isinstance(a, Histogram) else next(scalar_iter) for a in aggregates)

    # -- a caller's query (Spark SQL, run as written) and the catalog ---------------------------------------

    def plan_native(self, sql: str, timeout: float) -> str:
        plan = self.fetch_native(f"EXPLAIN {sql}", 200, timeout)
        text = "\n".join(str(v) for row in plan.rows for v in row)
        # Spark's EXPLAIN answers an unplannable query with a row saying so rather than an error.
        if text.lstrip().startswith("Error occurred during query planning"):
            raise EngineError(text.lstrip().split("\n", 1)[-1].strip() or text)
        return text

    def fetch_native(
        self, sql: str, max_rows: int, timeout: float, check: Callable[[list[str]], None] | None = None
    ) -> Fetched:
        """Every operation of this call carries a tag of its own (tags are per thread); past `timeout` the tag is
        interrupted on the server — the running job is cancelled — and again until the call returns, so that
        an operation started just after an interrupt does not escape it."""
        tag = f"bastion-query-{uuid.uuid4().hex}"
        done, fired = threading.Event(), threading.Event()

        def watch() -> None:
            if done.wait(timeout):
                return
            fired.set()
            while True:
                with contextlib.suppress(Exception):
                    self.session.interruptTag(tag)
                if done.wait(INTERRUPT_RETRY_S):
                    return

        def failed(exc: Exception) -> EngineError:
            if fired.is_set():
                return EngineTimeout(f"the query ran longer than {timeout:g}s and was cancelled")
            return _spark_error(exc)

        try:
            self.session.addTag(tag)
        except Exception as exc:
            raise _spark_error(exc) from None
        watcher = threading.Thread(target=watch, name="spark-query-timeout", daemon=True)
        watcher.start()
        try:
            try:
                df = self.session.sql(sql)
                columns = [str(c) for c in df.columns]
            except Exception as exc:
                raise failed(exc) from None
            if check is not None:
                check(columns)
            if fired.is_set():
                raise failed(TimeoutError())
            try:
                rows = [tuple(r) for r in df.limit(max_rows + 1).collect()]
            except Exception as exc:
                raise failed(exc) from None
            return Fetched(columns, rows)
        finally:
            done.set()
            with contextlib.suppress(Exception):
                self.session.removeTag(tag)

    def tables(self) -> list[TableInfo]:
        try:
            catalog = self.session.catalog
            listed = [(d.name, t) for d in catalog.listDatabases() for t in catalog.listTables(d.name)]
            return [self._table_info(database, table) for database, table in listed if not table.isTemporary]
        except EngineError:
            raise
        except Exception as exc:
            raise _spark_error(exc) from None

    def _table_info(self, database: str, table: Any) -> TableInfo:
        qualified = f"{_backtick(database)}.{_backtick(table.name)}"
        columns = self.session.catalog.listColumns(qualified)
        partitions = [c.name for c in columns if c.isPartition]
        view = str(table.tableType or "").upper() == "VIEW"
        return TableInfo(
            schema=database, name=table.name,
            columns=[ColumnInfo(c.name, str(c.dataType).upper(), c.description or None) for c in columns],
            description=table.description or None, partition_columns=partitions,
            last_partition=self._last_partition(qualified) if partitions else None,
            row_count=None if view else self._row_count(qualified),
        )  # fmt: skip

    def _last_partition(self, qualified: str) -> str | None:
        """The greatest value of the first partition column (`SHOW PARTITIONS`: `dt=2026-11-01/region=eu`)."""
        try:
            specs = [str(r[0]) for r in self.session.sql(f"SHOW PARTITIONS {qualified}").collect()]
        except Exception:  # a source without partition metadata: no latest partition, not an error
            return None
        values = [unquote(spec.split("/", 1)[0].split("=", 1)[-1]) for spec in specs]
        return max((v for v in values if v != "__HIVE_DEFAULT_PARTITION__"), default=None)

    def _row_count(self, qualified: str) -> int | None:
        """The table's statistics when it has them (ANALYZE TABLE … COMPUTE STATISTICS), else counted."""
        with contextlib.suppress(Exception):
            for name, value, *_ in self.session.sql(f"DESCRIBE TABLE EXTENDED {qualified}").collect():
                found = _ROWS_STATISTIC.search(str(value)) if str(name) == "Statistics" else None
                if found:
                    return int(found.group(1))
        try:
            return int(self.session.sql(f"SELECT count(*) FROM {qualified}").collect()[0][0])
        except Exception:  # a table that cannot be scanned (a missing file): listed, size unknown
            return None

    def denied_functions(self) -> frozenset[str]:
        return DENIED

    def confine(self, files: list[str], memory: str | None = None) -> None:  # memory: the cluster's settings
        # Inputs are read through the DataFrame reader; SQL may not name a file (parquet.`/etc/…`).
        try:
            self.session.conf.set("spark.sql.runSQLOnFiles", "false")
        except Exception as exc:
            raise _spark_error(exc) from None

    def close(self) -> None:
        # Best effort: a failure to release a cache or a view must not hide the result or the real error.
        for df in self._cached:
            with contextlib.suppress(Exception):
                df.unpersist()
        if self._owned:
            with contextlib.suppress(Exception):
                self.session.stop()
            return
        for view in self._views:
            with contextlib.suppress(Exception):
                self.session.catalog.dropTempView(view)


class ArrowMap:
    """mapInArrow's function (pickled to the Python workers): a BatchFunction over each batch, its output conformed
    to the declared columns, and with `keep` appended to the input batch's columns."""

    def __init__(self, function: BatchFunction, columns: list[tuple[str, str]], keep: bool) -> None:
        self.function, self.columns, self.keep = function, columns, keep

    def __call__(self, batches: Any) -> Any:
        import pyarrow as pa

        schema = arrow_schema(self.columns)
        for batch in batches:
            out = conform(self.function(batch), schema)
            if not self.keep:
                yield out
                continue
            if out.num_rows != batch.num_rows:
                raise EngineError(f"a batch function gave {out.num_rows} rows for {batch.num_rows}")
            yield pa.RecordBatch.from_arrays([*batch.columns, *out.columns], names=[*batch.schema.names, *schema.names])


def _struct(df: Any, columns: list[tuple[str, str]], keep: bool) -> Any:
    """The Spark schema of a batch function's output: `columns` (after the input's when `keep`)."""
    from pyspark.sql import types

    spark_types = {"string": types.StringType(), "bigint": types.LongType(), "int": types.IntegerType(),
                   "double": types.DoubleType(), "boolean": types.BooleanType()}  # fmt: skip
    added = [types.StructField(c, spark_types[BATCH_TYPES[t][1]]) for c, t in columns]
    return types.StructType([*(df.schema.fields if keep else []), *added])


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pyspark() -> Any:
    try:
        import pyspark.sql
    except ImportError:
        raise EngineUnavailable(
            "Spark engines need pyspark: pip install 'bastion[spark]' (pyspark[connect] 4.x, Java 17)"
        ) from None
    return pyspark.sql
