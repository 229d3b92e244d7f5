"""Engines for the scale-out tests: ONE Spark Connect server for the whole test run (start-up takes 10–20 s).

`spark_connect_url` starts `$SPARK_HOME/sbin/start-connect-server.sh` (SPARK_HOME: the installed pyspark
package) on local[2], bound to 127.0.0.1 on a free port, with its logs, pid file, metastore and warehouse
in a scratch directory, and stops it by pid at the end. Without the `spark` extra (or Java) the Spark tests
skip with the reason; where CI requires services and installed the extra (BASTION_TEST_REQUIRE_SERVICES=1,
EXTRAS containing spark, as .ci/run sets), a missing or failing server is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 120.0


def _required() -> bool:
    extras = {e.strip() for e in os.environ.get("EXTRAS", "").split(",")}
    return os.environ.get("BASTION_TEST_REQUIRE_SERVICES") == "1" and "spark" in extras


def _unavailable(message: str) -> None:
    if _required():
        pytest.fail(message)
    pytest.skip(message)


def spark_home() -> Path | None:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _log_tail(logs: Path) -> str:
    texts = [p.read_text(errors="replace")[-3000:] for p in sorted(logs.glob("*.out"))]
    return "\n".join(texts) or "(no log)"


@pytest.fixture(scope="session")
def spark_connect_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """sc://127.0.0.1:PORT of a Spark Connect server shared by every test of the run."""
    home = spark_home()
    if home is None:
        _unavailable("pyspark is not installed: the Spark tests need the spark extra (pip install -e '.[spark]')")
    assert home is not None
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("no Java runtime (java on PATH or JAVA_HOME): Spark needs Java 17")
    scratch = tmp_path_factory.mktemp("spark-connect")
    for sub in ("logs", "pids", "conf", "warehouse", "work"):
        (scratch / sub).mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(scratch / "logs"),
        "SPARK_PID_DIR": str(scratch / "pids"),
        "SPARK_CONF_DIR": str(scratch / "conf"),
        "SPARK_IDENT_STRING": f"bastion-test-{port}",
    }
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)
    metastore = scratch / "metastore_db"
    confs = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch / 'work'}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        # Test-sized data (thousands of rows) on two cores: a query's cost is its planning, not its data, so
        # two shuffle partitions (not 200), no adaptive re-planning and no code generation (about half the
        # time per audit here). A real cluster keeps Spark's defaults.
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.adaptive.enabled": "false",
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    }
    command = [str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]"]
    for key, value in confs.items():
        command += ["--conf", f"{key}={value}"]
    began = time.monotonic()
    started = subprocess.run(command, env=env, cwd=scratch / "work", capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
    if started.returncode != 0:
        _unavailable(f"start-connect-server.sh failed ({started.returncode}): {started.stderr[-2000:]}")
    pid_files = list((scratch / "pids").glob("*.pid"))
    pid = int(pid_files[0].read_text().strip()) if pid_files else None
    try:
        while not _listening(port):
            alive = pid is not None and Path(f"/proc/{pid}").exists()
            if not alive or time.monotonic() - began > START_TIMEOUT_S:
                _unavailable(f"Spark Connect did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S:g} s "
                             f"(alive: {alive}):\n{_log_tail(scratch / 'logs')}")  # fmt: skip
            time.sleep(0.25)
        print(f"\nSpark Connect up on 127.0.0.1:{port} in {time.monotonic() - began:.1f} s")  # shown with -s
        yield f"sc://127.0.0.1:{port}"
    finally:
        subprocess.run([str(home / "sbin" / "stop-connect-server.sh")], env=env, cwd=scratch / "work",
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        if pid is not None:
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            if Path(f"/proc/{pid}").exists():
                os.kill(pid, signal.SIGKILL)
