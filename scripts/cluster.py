"""A local Bastion cluster for tests and demos: one Chroma server, two `bastion serve` replicas on PostgreSQL +
Redis and, when `pyspark` is installed, a Spark Connect server — all bound to 127.0.0.1.

With Spark up, the indexed DuckDB warehouse (the demo's) is loaded into Spark's catalog (Parquet under spark/tables)
and the replicas run the sql tool's queries (BASTION_SQL_URL), the parity audit (BASTION_PARITY_ENGINE) and dedupe
learning (BASTION_DEDUPE_ENGINE) there; the knowledge index is still read from the DuckDB file (same tables).

    scripts/cluster up        start everything, build the knowledge index into the Chroma server, print the URLs
    scripts/cluster status    each component, its pid, port and health (--json: machine-readable)
    scripts/cluster index     `bastion index` again, into the same Chroma server (incremental), while serving
    scripts/cluster env       `export …` lines for a shell: the CLI then talks to replica 1 and the shared index
    scripts/cluster down      stop every component by the pid `up` recorded, drop the scratch database

Everything lives under BASTION_CLUSTER_DIR (default .bastion/cluster): cluster.json (what runs where), logs/,
pids/, data/ (the replicas' shared BASTION_DATA_DIR: secrets and the index snapshot), chroma/, spark/ (metastore,
warehouse, scratch). Settings (environment):

    BASTION_CLUSTER_POSTGRES_URL   server for the scratch database `up` creates and `down` drops
                                   (default postgresql://postgres@127.0.0.1:5432/postgres)
    BASTION_CLUSTER_DATABASE_URL   use this database instead (migrated and seeded; never dropped)
    BASTION_CLUSTER_REDIS_URL      default redis://127.0.0.1:6379/1 (its own db number)
    BASTION_CLUSTER_SPARK          auto (default: start Spark Connect when pyspark imports) or 0
    BASTION_CLUSTER_SPARK_CATALOG  hive (default: a Derby metastore under spark/metastore) or in-memory
    BASTION_WAREHOUSE_URL, BASTION_CATALOG_METADATA, BASTION_QUERY_LOG
                                   what to index; default the demo warehouse of BASTION_DATA_DIR (.bastion), or
                                   one `bastion demo prepare` makes in the cluster's data directory
    BASTION_REGISTRY_CACHE_TTL     and any other BASTION_* setting reach the replicas as they are

Processes are stopped by pid, each one checked against the start time `up` recorded (a reused pid is never
signalled): SIGTERM to the process group `up` created for it, SIGKILL after 15 s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bastion.live import free_port  # noqa: E402

REPLICAS = ("replica-1", "replica-2")
SPARK_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
SPARK_IDENT = "bastion-cluster"
STOP_GRACE = 15.0
COMMANDS = ["up", "down", "status", "index", "env"]


class ClusterError(Exception):
    pass


# -- where things are ----------------------------------------------------------------------------------


def cluster_dir() -> Path:
    configured = os.environ.get("BASTION_CLUSTER_DIR")
    return Path(configured).resolve() if configured else ROOT / ".bastion" / "cluster"


def state_file(base: Path) -> Path:
    return base / "cluster.json"


def read_state(base: Path) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(state_file(base).read_text())
    except (OSError, ValueError):
        return None
    return state


def write_state(base: Path, state: dict[str, Any]) -> None:
    tmp = state_file(base).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(state_file(base))


# -- processes -----------------------------------------------------------------------------------------


def started_at(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; comm may hold spaces
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def alive(component: dict[str, Any]) -> bool:
    """Whether the process `up` started for this component still runs (same pid, same start time)."""
    pid = component.get("pid")
    return isinstance(pid, int) and started_at(pid) == component.get("started")


def spawn(name: str, cmd: list[str], env: dict[str, str], base: Path, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """A process in its own session (so its group can be stopped as one), output to logs/NAME.log."""
    with (base / "logs" / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def record(base: Path, name: str, pid: int, group: int, port: int, url: str) -> dict[str, Any]:
    (base / "pids" / f"{name}.pid").write_text(f"{pid}\n")
    return {"pid": pid, "group": group, "started": started_at(pid), "port": port, "url": url,
            "log": str(base / "logs" / f"{name}.log")}  # fmt: skip


def stop(name: str, component: dict[str, Any], base: Path) -> str:
    if not alive(component):
        (base / "pids" / f"{name}.pid").unlink(missing_ok=True)
        return "not running"
    pid, group = int(component["pid"]), int(component.get("group") or component["pid"])

    def signal_all(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
        if group > 1:  # the session `up` created for it: helpers it started (Spark's Python workers) go too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)

    signal_all(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while alive(component) and time.monotonic() < deadline:
        time.sleep(0.1)
    outcome = "stopped"
    if alive(component):
        signal_all(signal.SIGKILL)
        outcome = "killed"
        while alive(component) and time.monotonic() < deadline + 5:
            time.sleep(0.1)
    (base / "pids" / f"{name}.pid").unlink(missing_ok=True)
    return outcome


# -- health ----------------------------------------------------------------------------------------------


def http_ok(url: str, timeout: float = 2.0) -> tuple[bool, str]:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, type(exc).__name__
    return response.status_code == 200, f"HTTP {response.status_code}"


def port_open(port: int, timeout: float = 1.0) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=timeout):
        return True
    return False


def health(name: str, component: dict[str, Any]) -> tuple[bool, str]:
    if not alive(component):
        return False, "down (process gone)"
    if name in ("index", "seed"):
        return True, "running"
    port = int(component["port"])
    if name == "chroma":
        ok, detail = http_ok(f"http://127.0.0.1:{port}/api/v2/heartbeat")
    elif name == "spark":
        ok, detail = port_open(port), "gRPC port"
    else:
        ok, detail = http_ok(f"http://127.0.0.1:{port}/healthz")
    return ok, ("healthy" if ok else f"unhealthy ({detail})")


def healthz(url: str) -> Callable[[], bool]:
    return lambda: http_ok(f"{url}/healthz")[0]


def wait_until(
    what: str, check: Callable[[], bool], timeout: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"{what} exited with status {proc.returncode}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not ready after {timeout:.0f} s")
        time.sleep(0.2)


# -- the database --------------------------------------------------------------------------------------


def create_database(state: dict[str, Any]) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from registry.settings import normalize_database_url

    if configured := os.environ.get("BASTION_CLUSTER_DATABASE_URL"):
        state["database"] = {"url": configured, "scratch": False}
        return configured
    server = os.environ.get("BASTION_CLUSTER_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"bastion_cluster_{uuid.uuid4().hex[:10]}"
    admin = create_engine(normalize_database_url(server), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    state["database"] = {"url": url, "scratch": True, "server": server, "name": name}
    return url


def drop_database(state: dict[str, Any]) -> str | None:
    database = state.get("database") or {}
    if not database.get("scratch"):
        return None
    from sqlalchemy import create_engine, text

    from registry.settings import normalize_database_url

    admin = create_engine(normalize_database_url(database["server"]), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database["name"]}" WITH (FORCE)'))
    finally:
        admin.dispose()
    return str(database["name"])


def redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.rsplit("@", maxsplit=1)[-1]


# -- environments ----------------------------------------------------------------------------------------


def index_sources(base: Path) -> dict[str, str]:
    """What to index: the configured warehouse, else the demo warehouse already prepared in the user's data
    directory, else (empty: `up` runs `bastion demo prepare`) the demo in the cluster's data directory."""
    if os.environ.get("BASTION_WAREHOUSE_URL"):
        return {k: os.environ[k] for k in ("BASTION_WAREHOUSE_URL", "BASTION_CATALOG_METADATA", "BASTION_QUERY_LOG")
                if os.environ.get(k)}  # fmt: skip
    demo = Path(os.environ.get("BASTION_DATA_DIR", ".bastion"))
    demo = (demo if demo.is_absolute() else ROOT / demo) / "demo"
    if (demo / "warehouse.duckdb").exists() and (demo / "query_log.jsonl").exists():
        return {"BASTION_WAREHOUSE_URL": str(demo / "warehouse.duckdb"),
                "BASTION_CATALOG_METADATA": str(ROOT / "embeddings" / "demo" / "metadata.yaml"),
                "BASTION_QUERY_LOG": str(demo / "query_log.jsonl")}  # fmt: skip
    return {}


def bastion_env(state: dict[str, Any]) -> dict[str, str]:
    """The settings every cluster process shares (on top of this process's environment)."""
    return {
        **os.environ,
        **state["sources"],
        "BASTION_DATA_DIR": state["data_dir"],
        "BASTION_DATABASE_URL": state["database"]["url"],
        "BASTION_REDIS_URL": state["redis_url"],
        "BASTION_CHROMA_URL": state["components"]["chroma"]["url"],
        "BASTION_HOST": "127.0.0.1",
        # Behind a load balancer without sticky sessions: no in-session state on either replica.
        "BASTION_GATEWAY_STATELESS": os.environ.get("BASTION_GATEWAY_STATELESS", "true"),
        **spark_engines(state),
    }


def spark_engines(state: dict[str, Any]) -> dict[str, str]:
    """With Spark up, the jobs it takes: the sql tool's queries (on the warehouse `up` loads into Spark), the
    parity audit and dedupe learning. A setting given in this process's environment is kept as it is."""
    spark = state["components"].get("spark")
    if spark is None:
        return {}
    keys = ("BASTION_SQL_URL", "BASTION_PARITY_ENGINE", "BASTION_DEDUPE_ENGINE")
    return {key: os.environ.get(key) or spark["url"] for key in keys}


def bastion(*args: str) -> list[str]:
    return [sys.executable, "-m", "bastion", *args]


def run_step(name: str, cmd: list[str], env: dict[str, str], base: Path, timeout: float = 600) -> None:
    log = base / "logs" / f"{name}.log"
    with log.open("ab") as out:
        done = subprocess.run(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                              timeout=timeout, check=False)  # fmt: skip
    if done.returncode != 0:
        raise ClusterError(f"{' '.join(cmd[2:])} failed with status {done.returncode}:\n{tail(log)}")


def log(name: str) -> Path:
    return cluster_dir() / "logs" / f"{name}.log"


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join("    " + line for line in path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "    (no log)"


# -- spark -------------------------------------------------------------------------------------------------


def spark_wanted() -> tuple[bool, str]:
    if os.environ.get("BASTION_CLUSTER_SPARK", "auto").lower() in ("0", "false", "no", "off"):
        return False, "BASTION_CLUSTER_SPARK=0"
    if importlib.util.find_spec("pyspark") is None:
        return False, "pyspark is not installed (pip install -e '.[spark]')"
    return True, ""


def start_spark(base: Path) -> dict[str, Any]:
    spec = importlib.util.find_spec("pyspark")
    assert spec is not None and spec.origin is not None
    home = Path(spec.origin).parent
    port = free_port()
    scratch = base / "spark"
    for sub in ("warehouse", "metastore", "local", "logs", "conf"):
        (scratch / sub).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(scratch / "logs"),
           "SPARK_PID_DIR": str(base / "pids"), "SPARK_IDENT_STRING": SPARK_IDENT,
           "SPARK_LOCAL_DIRS": str(scratch / "local"), "SPARK_CONF_DIR": str(scratch / "conf"),
           # Arrow UDFs (dedupe learning, BASTION_DEDUPE_ENGINE) run in Python workers: this interpreter.
           "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable)}  # fmt: skip
    env.pop("SPARK_CONNECT_MODE_ENABLED", None)  # the server, not a client of one
    metastore = scratch / "metastore"
    conf = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.sql.warehouse.dir": str(scratch / "warehouse"),
        "spark.local.dir": str(scratch / "local"),
        "spark.sql.shuffle.partitions": "4",  # two local cores: a few shuffle partitions, not 200
        # A catalog that outlives a session: Hive's, on an embedded Derby metastore in the scratch directory.
        "spark.sql.catalogImplementation": os.environ.get("BASTION_CLUSTER_SPARK_CATALOG", "hive"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore / 'db'};create=true",
    }
    cmd = [str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]"]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    # The embedded Derby metastore (and its log) in the scratch directory, not wherever Spark was started from.
    java_options = f"-Dderby.system.home={metastore} -Dderby.stream.error.file={metastore / 'derby.log'}"
    cmd += ["--driver-java-options", java_options]
    launcher = spawn("spark", cmd, env, base, cwd=scratch)
    launcher.wait(timeout=60)  # spark-daemon.sh starts the server in the background, writes its pid, returns
    pid_file = base / "pids" / f"spark-{SPARK_IDENT}-{SPARK_CLASS}-1.pid"
    if launcher.returncode != 0 or not pid_file.exists():
        raise ClusterError(
            f"start-connect-server.sh failed (status {launcher.returncode}):\n{tail(base / 'logs' / 'spark.log')}"
        )
    pid = int(pid_file.read_text().strip())
    component = record(base, "spark", pid, launcher.pid, port, f"sc://127.0.0.1:{port}")
    component["log"] = str(latest(scratch / "logs"))
    return component


def duckdb_warehouse(state: dict[str, Any]) -> Path | None:
    """The DuckDB warehouse the cluster indexes (the demo's, or a configured file), or None for another kind."""
    source = state["sources"].get("BASTION_WAREHOUSE_URL")
    if source is None:
        return Path(state["data_dir"]) / "demo" / "warehouse.duckdb"
    path = Path(source.removeprefix("duckdb:///"))
    return path if "://" not in source.replace("duckdb:///", "") and path.suffix == ".duckdb" else None


def load_warehouse(spark_url: str, warehouse: Path, scratch: Path) -> int:
    """Every table of the DuckDB warehouse as a Spark table of the same name: written as Parquet under `scratch`
    and registered in Spark's catalog (its metastore), so that the sql tool on Spark queries the tables the
    index describes. The number of tables."""
    import duckdb
    from pyspark.sql import SparkSession

    shutil.rmtree(scratch, ignore_errors=True)
    con = duckdb.connect(str(warehouse), read_only=True)
    session = SparkSession.builder.remote(spark_url).getOrCreate()
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() ORDER BY 1, 2").fetchall()
        for schema in sorted({schema for schema, _ in tables}):
            session.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
        for schema, table in tables:
            target = scratch / schema / table
            target.mkdir(parents=True)
            con.execute(f'COPY "{schema}"."{table}" TO \'{target / "part-0.parquet"}\' (FORMAT parquet)')
            session.sql(f"DROP TABLE IF EXISTS `{schema}`.`{table}`")
            session.sql(f"CREATE TABLE `{schema}`.`{table}` USING parquet LOCATION '{target}'")
    finally:
        con.close()
        session.stop()
    return len(tables)


# -- commands ----------------------------------------------------------------------------------------------


def up(base: Path) -> int:
    previous = read_state(base)
    if previous is not None and any(alive(c) for c in previous.get("components", {}).values()):
        print(f"a cluster is already running from {base} (scripts/cluster status; scripts/cluster down)")
        return 1
    if previous is not None:  # a cluster that died without `down`: drop its scratch database
        with contextlib.suppress(Exception):
            drop_database(previous)
    for sub in ("logs", "pids", "data", "chroma", "spark"):
        shutil.rmtree(base / sub, ignore_errors=True)
        (base / sub).mkdir(parents=True)
    started = time.monotonic()
    spark, spark_skip = spark_wanted()
    state: dict[str, Any] = {
        "dir": str(base), "data_dir": str(base / "data"), "components": {}, "sources": index_sources(base),
        "redis_url": os.environ.get("BASTION_CLUSTER_REDIS_URL", "redis://127.0.0.1:6379/1"),
        "spark_skipped": None if spark else spark_skip,
    }  # fmt: skip
    components: dict[str, Any] = state["components"]
    try:
        create_database(state)
        write_state(base, state)  # from here on `down` can clean up whatever was started

        port = free_port()
        chroma_cmd = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(base / "chroma"),
                      "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
        chroma = spawn("chroma", chroma_cmd, dict(os.environ), base)
        components["chroma"] = record(base, "chroma", chroma.pid, chroma.pid, port, f"http://127.0.0.1:{port}")
        write_state(base, state)
        if spark:
            components["spark"] = start_spark(base)
            write_state(base, state)

        # Secrets the replicas share, made once here: two replicas generating them at once would disagree.
        from registry.settings import RegistrySettings

        settings = RegistrySettings(data_dir=base / "data", jwt_secret=None, gateway_state_keys=[], assertion_keys=[])
        settings.hs_secret()
        settings.state_keys()
        settings.assertion_key_pems()

        env = bastion_env(state)
        run_step("setup", bastion("db", "upgrade"), env, base)

        def background(name: str, *args: str) -> subprocess.Popen[bytes]:
            proc = spawn(name, bastion(*args), {**env, "COLUMNS": "160"}, base)
            # Listed while it runs, so that a failed `up` (or a `down` meanwhile) stops it too.
            components[name] = record(base, name, proc.pid, proc.pid, 0, f"bastion {' '.join(args)}")
            write_state(base, state)
            return proc

        def finish(name: str, proc: subprocess.Popen[bytes]) -> None:
            if proc.wait(timeout=900) != 0:
                raise ClusterError(f"{components[name]['url']} failed (status {proc.returncode}):\n{tail(log(name))}")
            del components[name]
            (base / "pids" / f"{name}.pid").unlink(missing_ok=True)
            write_state(base, state)

        seeding = background("seed", "registry", "seed")  # the replicas need only the schema to start
        if not state["sources"]:
            run_step("demo", bastion("demo", "prepare"), env, base)
        wait_until("chroma", lambda: http_ok(f"{components['chroma']['url']}/api/v2/heartbeat")[0], 60, chroma)
        indexing = background("index", "index")

        procs: dict[str, subprocess.Popen[bytes]] = {}
        for n, name in enumerate(REPLICAS, 1):
            port = free_port()
            replica_env = {**env, "BASTION_PORT": str(port), "BASTION_REPLICA_ID": name,
                           "BASTION_PUBLIC_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
            procs[name] = spawn(name, bastion("serve"), replica_env, base)
            components[name] = record(base, name, procs[name].pid, procs[name].pid, port, f"http://127.0.0.1:{port}")
            components[name]["replica"] = n
            write_state(base, state)

        finish("seed", seeding)
        for name, proc in procs.items():
            wait_until(name, healthz(components[name]["url"]), 120, proc)
        if spark:
            spark_port = int(components["spark"]["port"])
            wait_until("spark connect server", lambda: port_open(spark_port) or not alive(components["spark"]), 180)
            if not alive(components["spark"]):
                raise ClusterError("the Spark Connect server exited")
            warehouse = duckdb_warehouse(state)
            if warehouse is not None:
                state["spark_tables"] = load_warehouse(components["spark"]["url"], warehouse, base / "spark" / "tables")
                write_state(base, state)
        finish("index", indexing)
    except (Exception, KeyboardInterrupt) as exc:
        print(f"cluster up failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        for name, component in components.items():
            if not alive(component):
                print(f"  {name} log ({component['log']}):\n{tail(Path(component['log']))}", file=sys.stderr)
        down(base, quiet=True)
        return 1
    state["up_seconds"] = round(time.monotonic() - started, 1)
    write_state(base, state)
    print(f"cluster up in {state['up_seconds']} s ({base})")
    show(base, state)
    print()
    print("URLs:")
    for line in urls(state):
        print(f"  {line}")
    return 0


def latest(directory: Path) -> Path:
    files = sorted(directory.glob("*.out"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else directory / "none"


def urls(state: dict[str, Any]) -> list[str]:
    components = state["components"]
    lines = [f"BASTION_CHROMA_URL={components['chroma']['url']}"]
    for name in REPLICAS:
        if name in components:
            lines.append(f"{name}: {components[name]['url']} (MCP gateway {components[name]['url']}/mcp)")
    if "spark" in components:
        loaded = f"; {state['spark_tables']} warehouse tables loaded" if state.get("spark_tables") else ""
        lines.append(f"BASTION_SQL_URL={components['spark']['url']} (Spark Connect: the sql tool, parity and "
                     f"dedupe learning run there{loaded})")  # fmt: skip
    elif state.get("spark_skipped"):
        lines.append(f"Spark skipped: {state['spark_skipped']}")
    lines.append(f"BASTION_DATA_DIR={state['data_dir']} (the replicas' secrets and index snapshot)")
    lines.append(f"BASTION_DATABASE_URL={redact(state['database']['url'])}")
    lines.append(f"BASTION_REDIS_URL={state['redis_url']}")
    return lines


def show(base: Path, state: dict[str, Any]) -> bool:
    """Print each component's pid, port and health; whether all are healthy."""
    everything = True
    print(f"{'component':<11} {'pid':>8} {'port':>6}  {'health':<28} url")
    for name, component in state["components"].items():
        ok, detail = health(name, component)
        everything &= ok
        print(f"{name:<11} {component['pid']:>8} {component['port']:>6}  {detail:<28} {component['url']}")
    if state.get("spark_skipped"):
        print(f"{'spark':<11} {'-':>8} {'-':>6}  {'skipped':<28} {state['spark_skipped']}")
    return everything


def status(base: Path, as_json: bool) -> int:
    state = read_state(base)
    if state is None:
        print(json.dumps({"running": False}) if as_json else f"no cluster at {base} (scripts/cluster up)")
        return 3
    if as_json:
        report = {}
        for name, component in state["components"].items():
            ok, detail = health(name, component)
            report[name] = {**component, "alive": alive(component), "healthy": ok, "health": detail}
        print(json.dumps({"running": True, **state, "components": report}, indent=2))
        return 0 if all(c["healthy"] for c in report.values()) else 1
    print(f"cluster at {base}")
    healthy = show(base, state)
    print(
        f"database    {redact(state['database']['url'])}" + (" (scratch)" if state["database"].get("scratch") else "")
    )
    print(f"redis       {state['redis_url']}")
    return 0 if healthy else 1


def index(base: Path) -> int:
    state = read_state(base)
    if state is None or not alive(state["components"].get("chroma", {})):
        print(f"no cluster running at {base} (scripts/cluster up)")
        return 1
    return subprocess.run(bastion("index"), env=bastion_env(state), cwd=ROOT, check=False).returncode


def env_lines(base: Path) -> int:
    state = read_state(base)
    if state is None:
        print(f"no cluster at {base} (scripts/cluster up)", file=sys.stderr)
        return 1
    components = state["components"]
    first = components[REPLICAS[0]]
    values = {"BASTION_DATA_DIR": state["data_dir"], "BASTION_DATABASE_URL": state["database"]["url"],
              "BASTION_REDIS_URL": state["redis_url"], "BASTION_CHROMA_URL": components["chroma"]["url"],
              "BASTION_HOST": "127.0.0.1", "BASTION_PORT": str(first["port"]), **state["sources"],
              **spark_engines(state)}  # fmt: skip
    for key, value in values.items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


def down(base: Path, quiet: bool = False) -> int:
    state = read_state(base)
    if state is None:
        if not quiet:
            print(f"no cluster at {base}")
        return 0
    # Replicas first (they hold database connections), then Chroma, Spark and any step still running.
    order = sorted(state.get("components", {}).items(), key=lambda item: item[0] not in REPLICAS)
    for name, component in order:
        outcome = stop(name, component, base)
        if name == "spark":  # spark-daemon.sh's own pid file
            (base / "pids" / f"spark-{SPARK_IDENT}-{SPARK_CLASS}-1.pid").unlink(missing_ok=True)
        if not quiet:
            print(f"{name:<11} pid {component['pid']}: {outcome}")
    dropped = None
    try:
        dropped = drop_database(state)
    except Exception as exc:
        print(f"could not drop the scratch database: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if dropped and not quiet:
        print(f"database    {dropped}: dropped")
    state_file(base).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--json", action="store_true", help="status: machine-readable")
    args = parser.parse_args(argv)
    base = cluster_dir()
    base.mkdir(parents=True, exist_ok=True)
    if args.command == "up":
        return up(base)
    if args.command == "down":
        return down(base)
    if args.command == "status":
        return status(base, args.json)
    if args.command == "index":
        return index(base)
    return env_lines(base)


if __name__ == "__main__":
    sys.exit(main())
