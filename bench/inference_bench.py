"""Request-level dedup: candidates/s and latency for requests of N = 50, 500, 2000 candidates.

The same model (default architecture, MovieLens-sized vocabularies; weights do not change speed)
scores each request through its TorchScript modules twice, interleaved: the dedup path (user tower and
the user half of each branch's first layer once per request) and the naive path (the user row
repeated per candidate). Targets: ≥ 3× candidates/s at N = 500 with dedup; p99 ≤ 25 ms at N = 500.

Beside the model alone, the same requests go through the whole `score_candidates` path in process
(`InferenceService.score`): the request decoded from JSON into its models, features encoded, the
model, per-surface calibration, the response built and the feature log queued (its writer runs in
the background, as in `bastion serve`). Through the gateway: `make bench BENCH_ARGS=fullpath`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from bench.common import console, histogram, percentile, render, save
from tools.inference.contracts import Calibration, ModelConfig
from tools.inference.features import Candidate, Context, FeatureSchema, User, encode
from tools.inference.model import ConversionModel
from tools.inference.registry import Artifact, ModelRegistry
from tools.inference.serving import InferenceService, Scorer

# MovieLens-sized vocabularies, as `bastion train conversion` builds them (bench/dedup_fullpath_bench.py too).
SCHEMA = FeatureSchema(
    user_categorical={"user_id": 944, "age_bucket": 9, "gender": 3, "occupation": 23},
    item_categorical={"item_id": 1683, "genre": 20, "decade": 10},
    item_dense=["popularity"],
)
SIZES = (50, 500, 2000)
REQUESTS = {50: 400, 500: 200, 2000: 60}


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # as the service runs (BASTION_INFERENCE_THREADS=1)
    schema = SCHEMA
    config = ModelConfig()
    model = ConversionModel(schema, config).eval()
    artifact = Artifact(
        version="bench",
        created_at=datetime.now(UTC),
        schema_=schema,
        schema_hash=schema.hash(),
        config=config,
        calibration=Calibration(),
        code_version="bench",
        training_rows=0,
    )
    scorer = Scorer(model, artifact)
    scratch = Path(tempfile.mkdtemp(prefix="bastion-inference-bench-"))
    ModelRegistry(scratch / "models").save(model, Calibration(), {}, 0, serve=True)
    service = InferenceService(
        scratch / "models", feature_log=scratch / "features.duckdb", threads=1, max_candidates=max(SIZES)
    )
    rng = np.random.default_rng(0)
    rows = []
    samples: dict[str, list[float]] = {}
    for n in SIZES:
        latencies: dict[bool, list[float]] = {True: [], False: []}
        full: list[float] = []
        for r in range(REQUESTS[n]):
            user = User(
                features={"user_id": int(rng.integers(1, 944)), "age_bucket": 3, "gender": 1, "occupation": 4},
                history=[int(h) for h in rng.integers(1, 1683, 10)],
            )
            candidates = [
                Candidate(
                    id=str(i),
                    features={
                        "item_id": int(i),
                        "genre": int(i % 19),
                        "decade": int(i % 9),
                        "popularity": float(i % 7) / 7,
                    },
                )
                for i in rng.integers(1, 1683, n)
            ]
            encoded = encode(schema, user, Context(surface="home_feed"), candidates)
            request = {"user": user.model_dump(), "context": {"surface": "home_feed"},
                       "candidates": [c.model_dump() for c in candidates]}  # fmt: skip
            for dedup in (True, False) if r % 2 == 0 else (False, True):
                began = time.perf_counter()
                scorer.raw(encoded, dedup=dedup)
                latencies[dedup].append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            service.score(
                User.model_validate(request["user"]),
                Context.model_validate(request["context"]),
                [Candidate.model_validate(c) for c in request["candidates"]],
            ).model_dump_json()
            full.append((time.perf_counter() - began) * 1000)
        for dedup in (True, False):
            lat = latencies[dedup][5:]  # warm-up excluded
            # From the median: on a shared machine a few preempted requests would dominate a mean.
            throughput = n / (percentile(lat, 50) / 1000)
            rows.append(
                [
                    f"N={n}",
                    "dedup" if dedup else "naive",
                    f"{throughput:,.0f}",
                    percentile(lat, 50),
                    percentile(lat, 99),
                ]
            )
            samples[f"N={n} {'dedup' if dedup else 'naive'}"] = lat
        speedup = percentile(latencies[False][5:], 50) / percentile(latencies[True][5:], 50)
        rows.append([f"N={n}", "speed-up", f"{speedup:.2f}×", "", ""])
        lat = full[5:]
        rows.append(
            [
                f"N={n}",
                "full score_candidates (dedup)",
                f"{n / (percentile(lat, 50) / 1000):,.0f}",
                percentile(lat, 50),
                percentile(lat, 99),
            ]
        )
        samples[f"N={n} full"] = lat
    service.close()  # the feature log's writer flushes
    shutil.rmtree(scratch, ignore_errors=True)
    render(
        f"Conversion model serving ({scorer.runtime}, {torch.get_num_threads()} threads): request-level dedup",
        ["case", "path", "candidates/s", "p50 ms", "p99 ms"],
        rows,
        note="targets: ≥ 3× candidates/s at N=500 with dedup; p99 ≤ 25 ms at N=500. 'full': decode, features, "
        "model, calibration, response, feature log queued, in process",
    )
    plot = histogram("inference_latency", {k: v for k, v in samples.items() if "500 " in k or k.endswith("500")})
    path = save("inference", {"runtime": scorer.runtime, "rows": rows, "samples": samples})
    console.print(f"wrote {path} and {plot}")


if __name__ == "__main__":
    main()
