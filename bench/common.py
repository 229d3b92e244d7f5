"""Shared benchmark plumbing: machine description, percentiles, tables, plots, servers."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
console = Console()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(samples_ms, 50),
        "p99": percentile(samples_ms, 99),
        "mean": statistics.fmean(samples_ms),
        "n": float(len(samples_ms)),
    }


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: the high-water mark of its own address space (VmHWM).

    Not `ru_maxrss`: on Linux that survives fork and exec, so a benchmark process started by a large one
    (the bench runner after generating data) reports its parent's peak when that is larger."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bastion_server(env: dict[str, str], port: int) -> Iterator[str]:
    """A real `bastion serve` process, as users start it."""
    full_env = {**os.environ, **env, "BASTION_PORT": str(port), "BASTION_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion", "serve"],
        env=full_env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"bastion serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


class LoopbackClient:
    """A persistent keep-alive HTTP/1.1 connection with minimal client-side overhead.

    Latency targets are about the server; httpx alone adds ~0.6 ms per request here.
    """

    def __init__(self, base: str, headers: dict[str, str]) -> None:
        import http.client
        from urllib.parse import urlparse

        url = urlparse(base)
        self.conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=60)
        self.headers = headers

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["content-type"] = "application/json"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def render(title: str, columns: list[str], rows: list[list[Any]], note: str = "") -> None:
    table = Table(title=title, caption=f"machine: {machine()}" + (f"\n{note}" if note else ""))
    for col in columns:
        table.add_column(col, justify="right" if col not in ("backend", "endpoint", "case", "target") else "left")
    for row in rows:
        table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    from tools.provenance import commit

    path.write_text(json.dumps({"machine": machine(), "commit": commit(), **payload}, indent=2))
    return path


def histogram(name: str, series: dict[str, list[float]], xlabel: str = "latency (ms)") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    RESULTS.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 2.2 * len(series)), squeeze=False)
    for ax, (label, samples) in zip(axes[:, 0], series.items(), strict=True):
        ax.hist(samples, bins=60, color="#3b6ea5")
        ax.axvline(percentile(samples, 50), color="black", linestyle="--", label="p50")
        ax.axvline(percentile(samples, 99), color="red", linestyle=":", label="p99")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    path = RESULTS / f"{name}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
