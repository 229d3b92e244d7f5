"""A Spark Connect server on this machine, for tests and benchmarks: local[N], bound to 127.0.0.1, stopped by pid.

`connect_server(scratch)` runs `$SPARK_HOME/sbin/start-connect-server.sh` (SPARK_HOME: the installed pyspark
package) on a free port with its logs, pid file, metastore and warehouse under `scratch`, yields its
`sc://127.0.0.1:PORT` URL once it listens, and stops it (stop-connect-server.sh, then SIGKILL by pid) on exit.
Its Python workers (Arrow UDFs) run this interpreter, where bastion imports. Start-up takes 10–20 s.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.engines.base import EngineUnavailable

START_TIMEOUT_S = 120.0


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


@contextmanager
def connect_server(
    scratch: Path,
    cores: int = 2,
    confs: dict[str, str] | None = None,
    driver_memory: str | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """sc://127.0.0.1:PORT of a Spark Connect server on local[`cores`] while the block runs; `confs` are added
    to (or override) the binding and scratch settings. EngineUnavailable (with the server's log) when pyspark or
    Java is missing or the server does not start."""
    home = spark_home()
    if home is None:
        raise EngineUnavailable("pyspark is not installed: Spark needs the spark extra (pip install -e '.[spark]')")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise EngineUnavailable("no Java runtime (java on PATH or JAVA_HOME): Spark needs Java 17")
    for sub in ("logs", "pids", "conf", "warehouse", "work"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    port = _free_port()
    metastore = scratch / "metastore_db"
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(scratch / "logs"),
        "SPARK_PID_DIR": str(scratch / "pids"),
        "SPARK_CONF_DIR": str(scratch / "conf"),
        "SPARK_IDENT_STRING": f"bastion-local-{port}",
        # Arrow UDFs (dedupe's normalizer) run in Python workers: this interpreter, where bastion imports.
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
    }
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)  # the server, not a client of one
    settings = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.local.dir": str(scratch / "work"),
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={scratch / 'work'}",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore};create=true",
        **(confs or {}),
    }
    command = [str(home / "sbin" / "start-connect-server.sh"), "--master", f"local[{int(cores)}]"]
    if driver_memory:
        command += ["--driver-memory", driver_memory]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    began = time.monotonic()
    try:
        started = subprocess.run(command, env=env, cwd=scratch / "work", capture_output=True, text=True, timeout=60,
                                 check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EngineUnavailable(f"start-connect-server.sh did not run: {exc}") from None
    if started.returncode != 0:
        raise EngineUnavailable(f"start-connect-server.sh failed ({started.returncode}): {started.stderr[-2000:]}")
    pid_files = list((scratch / "pids").glob("*.pid"))
    pid = int(pid_files[0].read_text().strip()) if pid_files else None
    try:
        while not _listening(port):
            alive = pid is not None and Path(f"/proc/{pid}").exists()
            if not alive or time.monotonic() - began > timeout:
                raise EngineUnavailable(f"Spark Connect did not listen on 127.0.0.1:{port} within {timeout:g} s "
                                        f"(alive: {alive}):\n{_log_tail(scratch / 'logs')}")  # fmt: skip
            time.sleep(0.25)
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
