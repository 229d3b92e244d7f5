"""Request-level dedup on the full path, as the user tower grows (`make bench BENCH_ARGS=dedup_fullpath`).

`inference__score_candidates`, N = 500, through `bastion serve` twice: one gateway with request-level dedup
(the user tower and the user half of each branch's first layer once per request) and one without it
(`BASTION_INFERENCE_DEDUP=false`: the user row repeated per candidate). Calls alternate between the two, with the
plain client (one JSON POST, orjson both ways), the feature log on. Beside them, the same model alone, in process.

One pair of gateways per user-tower shape (`BASTION_BENCH_DEDUP_TOWERS`, `;`-separated layer widths; default the
shipped `512,256,64`, then wider ones). Weights are random: they do not change the time. The published ×7 serving
throughput is for a model whose user side dominates the cost; this shows how large the user side must be before
dedup pays on the full path, where transport, validation, encoding, calibration and logging do not depend on it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import numpy as np
import torch

from bench.common import ROOT, console, free_port, percentile, render, save
from bench.fullpath_bench import SECRET, _wait, plain_call
from bench.inference_bench import SCHEMA
from registry.auth import mint_token
from registry.settings import RegistrySettings
from tools.inference.contracts import Calibration, ModelConfig
from tools.inference.features import Candidate, Context, User, encode
from tools.inference.model import ConversionModel, CrossLayer
from tools.inference.registry import ModelRegistry
from tools.inference.serving import Scorer

CALLS = int(os.environ.get("BASTION_BENCH_DEDUP_CALLS", "200"))
_TOWERS = os.environ.get("BASTION_BENCH_DEDUP_TOWERS", "512,256,64;1024,512,64;2048,1024,64;4096,2048,64")
TOWERS = [[int(w) for w in shape.split(",")] for shape in _TOWERS.split(";")]
N = 500
WARMUP = 5


def _arguments(rng: np.random.Generator) -> dict[str, Any]:
    user = {k: int(rng.integers(1, v)) for k, v in SCHEMA.user_categorical.items()}
    candidates = [
        {"id": f"c{i}", "features": {**{k: int(rng.integers(1, v)) for k, v in SCHEMA.item_categorical.items()},
                                     "popularity": float(rng.random())}}
        for i in range(N)
    ]  # fmt: skip
    history = [int(h) for h in rng.integers(1, SCHEMA.item_categorical["item_id"], SCHEMA.history_length)]
    return {"user": {"features": user, "history": history}, "context": {"surface": SCHEMA.surfaces[0]},
            "candidates": candidates}  # fmt: skip


def _user_row_macs(model: ConversionModel) -> int:
    """Multiply-adds of the user side for one row: the user encoder and the user half of each first layer."""
    encoder = sum(m.in_features * m.out_features for m in model.user_encoder if isinstance(m, torch.nn.Linear))
    cross = cast(CrossLayer, model.cross[0])  # the cross branch's first projections, one per expert
    first = [m for m in cross.v if isinstance(m, torch.nn.Linear)]
    mlp_first = next(m for m in model.mlp if isinstance(m, torch.nn.Linear))
    return encoder + model.user_dim * (sum(v.out_features for v in first) + mlp_first.out_features)


def _model_alone(model: ConversionModel, arguments: dict[str, Any]) -> dict[str, float]:
    """p50 ms of the model alone, dedup and naive, on the same request (interleaved)."""
    from tools.inference.registry import Artifact

    scorer = Scorer(model, Artifact.model_validate({
        "version": "bench", "created_at": "2026-01-01T00:00:00Z", "schema": SCHEMA.model_dump(),
        "schema_hash": SCHEMA.hash(), "config": model.config.model_dump(), "calibration": {}, "code_version": "bench",
        "training_rows": 0,
    }))  # fmt: skip
    encoded = encode(SCHEMA, User.model_validate(arguments["user"]), Context.model_validate(arguments["context"]),
                     [Candidate.model_validate(c) for c in arguments["candidates"]])  # fmt: skip
    times: dict[bool, list[float]] = {True: [], False: []}
    for i in range(60):
        for dedup in (True, False) if i % 2 == 0 else (False, True):
            started = time.perf_counter()
            scorer.raw(encoded, dedup=dedup)
            times[dedup].append((time.perf_counter() - started) * 1000)
    return {"dedup": percentile(times[True][5:], 50), "naive": percentile(times[False][5:], 50)}


async def _measure(urls: dict[str, str], token: str, arguments: dict[str, Any]) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {way: [] for way in urls}
    order = list(urls)
    async with httpx2.AsyncClient(timeout=120, headers={"Authorization": f"Bearer {token}"}) as http:
        for i in range(CALLS + WARMUP):
            for way in order:
                started = time.perf_counter()
                result = await plain_call(http, urls[way], "inference__score_candidates", arguments)
                elapsed = (time.perf_counter() - started) * 1000
                if result.is_error:
                    raise RuntimeError(f"{way}: {str(result.content)[:300]}")
                if i >= WARMUP:
                    samples[way].append(elapsed)
            order.reverse()
    return samples


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # as the service runs (BASTION_INFERENCE_THREADS=1)
    arguments = _arguments(np.random.default_rng(0))
    token = mint_token(RegistrySettings(jwt_secret=SECRET), user="bench", groups=["bench"])
    rows, payload = [], []
    with tempfile.TemporaryDirectory(prefix="bastion-dedup-bench-") as scratch:
        tmp = Path(scratch)
        base = {**os.environ, "BASTION_JWT_SECRET": SECRET, "BASTION_LOG_LEVEL": "WARNING",
                "BASTION_RATE_LIMIT_PER_USER": "100000000", "BASTION_RATE_LIMIT_PER_TOOL": "100000000",
                "BASTION_DATA_DIR": str(tmp / "data")}  # fmt: skip
        databases = {way: f"sqlite:///{tmp / f'registry_{way}.db'}" for way in ("dedup", "naive")}
        for url in databases.values():  # one registry per gateway, used by each tower's pair in turn
            for step in (["db", "upgrade"], ["registry", "seed"]):
                subprocess.run([sys.executable, "-m", "bastion", *step], cwd=ROOT, check=True,
                               env={**base, "BASTION_DATABASE_URL": url}, stdout=subprocess.DEVNULL)  # fmt: skip
        for tower in TOWERS:
            label = "·".join(map(str, tower))
            model = ConversionModel(SCHEMA, ModelConfig(user_encoder=tower)).eval()
            models = tmp / label / "models"
            ModelRegistry(models).save(model, Calibration(), {}, 0, serve=True)
            alone = _model_alone(model, arguments)
            procs: list[subprocess.Popen[bytes]] = []
            urls: dict[str, str] = {}
            try:
                for way, dedup in (("dedup", "true"), ("naive", "false")):
                    port = free_port()
                    env = {**base, "BASTION_PORT": str(port), "BASTION_DATABASE_URL": databases[way],
                           "BASTION_INFERENCE_MODELS": str(models), "BASTION_INFERENCE_DEDUP": dedup,
                           "BASTION_INFERENCE_FEATURE_LOG": str(tmp / label / f"features_{way}.duckdb")}  # fmt: skip
                    procs.append(subprocess.Popen([sys.executable, "-m", "bastion", "serve", "--port", str(port)],
                                                  cwd=ROOT, env=env, stdout=subprocess.DEVNULL))  # fmt: skip
                    _wait(f"http://127.0.0.1:{port}/healthz", procs[-1])
                    urls[way] = f"http://127.0.0.1:{port}/mcp"
                console.print(f"user tower {label}: {CALLS} calls a way through two gateways")
                samples = anyio.run(_measure, urls, token, arguments)
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait(timeout=30)
            d50, n50 = percentile(samples["dedup"], 50), percentile(samples["naive"], 50)
            d99, n99 = percentile(samples["dedup"], 99), percentile(samples["naive"], 99)
            macs = _user_row_macs(model)
            model_ratio = f"{alone['naive'] / alone['dedup']:.2f}×"
            rows.append([label, f"{macs / 1e6:.2f}", alone["dedup"], alone["naive"], model_ratio,
                         d50, d99, n50, n99, f"{n50 / d50:.2f}×"])  # fmt: skip
            payload.append({"user_encoder": tower, "user_row_mmacs": macs / 1e6, "model_alone_p50_ms": alone,
                            "gateway": {way: {"p50": percentile(v, 50), "p99": percentile(v, 99), "n": len(v)}
                                        for way, v in samples.items()}})  # fmt: skip
    render(
        f"Request-level dedup on the full path, N = {N}, as the user tower grows (ms)",
        ["user tower", "M MACs", "model d", "model n", "n ÷ d", "gateway d", "p99", "gateway n", "p99", "n ÷ d"],
        rows,
        note=f"p50 unless marked; d = request-level dedup, n = naive; M MACs = the user side's multiply-adds per row; "
        f"{CALLS} calls a way, alternating; plain client; feature log on; 1 torch thread; random weights; "
        "target (issue #20): gateway n ÷ d ≥ 5",
    )  # fmt: skip
    path = save("dedup_fullpath", {"calls": CALLS, "n": N, "seed": 0, "towers": payload})
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
