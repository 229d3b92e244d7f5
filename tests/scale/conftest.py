"""Engines for the scale-out tests: ONE Spark Connect server for the whole test run (start-up takes 10–20 s).

`spark_connect_url` starts `$SPARK_HOME/sbin/start-connect-server.sh` (SPARK_HOME: the installed pyspark
package) on local[2], bound to 127.0.0.1 on a free port, with its logs, pid file, metastore and warehouse
in a scratch directory, and stops it by pid at the end (tools/engines/connect_server.py, which the benchmarks
use too). Without the `spark` extra (or Java) the Spark tests
skip with the reason; where CI requires services and installed the extra (BASTION_TEST_REQUIRE_SERVICES=1,
EXTRAS containing spark, as .ci/run sets), a missing or failing server is a failure, not a skip.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import pytest

START_TIMEOUT_S = 120.0
# Test-sized data (thousands of rows) on two cores: a query's cost is its planning, not its data, so two shuffle
# partitions (not 200), no adaptive re-planning and no code generation (about half the time per audit here). A real
# cluster keeps Spark's defaults.
TEST_CONFS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def _required() -> bool:
    extras = {e.strip() for e in os.environ.get("EXTRAS", "").split(",")}
    return os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1" and "spark" in extras


def _unavailable(message: str) -> None:
    if _required():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """sc://127.0.0.1:PORT of a Spark Connect server shared by every test of the run."""
    from tools.engines.base import EngineUnavailable
    from tools.engines.connect_server import connect_server

    scratch = tmp_path_factory.mktemp("spark-connect")
    began = time.monotonic()
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(connect_server(scratch, cores=2, confs=TEST_CONFS, timeout=START_TIMEOUT_S))
        except EngineUnavailable as exc:
            _unavailable(str(exc))
        print(f"\nSpark Connect up on {url.removeprefix('sc://')} in {time.monotonic() - began:.1f} s")  # shown with -s
        yield url
