"""Serving: a request (one user + context + N candidates) scored with request-level dedup, through
TorchScript, calibrated per surface, optionally written to a feature log the `parity` tool audits.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tools.inference.contracts import ScoreResponse
from tools.inference.featurelog import FeatureLog, served_request
from tools.inference.features import Candidate, Context, Encoded, InferenceError, User, encode
from tools.inference.model import ConversionModel, probabilities
from tools.inference.registry import Artifact, ModelRegistry
from tools.inference.training import calibrated

MAX_CANDIDATES = 5000


class _RequestScorer(nn.Module):
    def __init__(self, model: ConversionModel, dedup: bool) -> None:
        super().__init__()
        self.model = model
        self.dedup = dedup

    def forward(
        self,
        user_cat: Tensor,
        user_dense: Tensor,
        history: Tensor,
        surface: Tensor,
        item_cat: Tensor,
        item_dense: Tensor,
    ) -> Tensor:
        if self.dedup:
            deduped: Tensor = self.model.score_request(user_cat, user_dense, history, surface, item_cat, item_dense)
            return deduped
        n = item_cat.shape[0]
        naive: Tensor = self.model(
            user_cat.expand(n, -1),
            user_dense.expand(n, -1),
            history.expand(n, -1),
            surface.expand(n),
            item_cat,
            item_dense,
        )
        return naive


class Scorer:
    """A loaded model version: TorchScript modules for the dedup and the naive path."""

    def __init__(self, model: ConversionModel, artifact: Artifact) -> None:
        self.model, self.artifact = model, artifact
        self.schema = artifact.schema_
        model.freeze_split()
        example = self._example(4)
        self.runtime = "torchscript"
        try:
            with torch.inference_mode():
                self.dedup = torch.jit.trace(_RequestScorer(model, True).eval(), example, check_trace=False)  # type: ignore[no-untyped-call]
                self.naive = torch.jit.trace(_RequestScorer(model, False).eval(), example, check_trace=False)  # type: ignore[no-untyped-call]
                self.dedup(*self._example(7))  # a traced graph must accept any N
        except Exception:  # tracing is an optimisation; eager PyTorch computes the same numbers
            self.runtime = "eager"
            self.dedup, self.naive = _RequestScorer(model, True).eval(), _RequestScorer(model, False).eval()

    def _example(self, n: int) -> tuple[Tensor, ...]:
        s = self.schema
        return (
            torch.zeros(1, len(s.user_categorical), dtype=torch.long),
            torch.zeros(1, len(s.user_dense)),
            torch.zeros(1, s.history_length, dtype=torch.long),
            torch.zeros(1, dtype=torch.long),
            torch.zeros(n, len(s.item_categorical), dtype=torch.long),
            torch.zeros(n, len(s.item_dense)),
        )

    def raw(self, encoded: Encoded, dedup: bool = True) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        tensors = [
            torch.as_tensor(getattr(encoded, k))
            for k in ("user_cat", "user_dense", "history", "surface", "item_cat", "item_dense")
        ]
        with torch.inference_mode():
            logits = (self.dedup if dedup else self.naive)(*tensors)
            p_conv, p_click = probabilities(logits, self.artifact.config.heads)
        return p_conv.numpy(), (p_click.numpy() if p_click is not None else None)

    def score(self, encoded: Encoded, dedup: bool = True) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        p_conv, p_click = self.raw(encoded, dedup)
        surfaces = np.full(len(p_conv), int(encoded.surface[0]))
        cal = self.artifact.calibration
        conv = calibrated(p_conv.astype(np.float64), surfaces, cal.conversion, self.schema.surfaces)
        click = (
            None
            if p_click is None
            else calibrated(p_click.astype(np.float64), surfaces, cal.click, self.schema.surfaces)
        )
        return conv, click


class InferenceService:
    def __init__(
        self,
        models: Path,
        feature_log: Path | None = None,
        max_candidates: int = 1000,
        threads: int | None = None,
        dedup: bool = True,
        log_interval: float = 5.0,
    ) -> None:
        self.dedup = dedup
        self.registry = ModelRegistry(models)
        # Written off the request path, in batches.
        self.log = FeatureLog(feature_log, interval=log_interval) if feature_log is not None else None
        self.max_candidates = min(max_candidates, MAX_CANDIDATES)
        # One request per core, one core per request: intra-op threads on a shared box only add tail
        # latency (bench/inference_bench.py: p99 at N=500 went from ~145 ms with 2 threads to ~1.3 ms).
        self.threads = threads
        self._scorers: dict[str, Scorer] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Write what the feature log still holds (also done at interpreter exit)."""
        if self.log is not None:
            self.log.close()

    def scorer(self, version: str | None = None) -> Scorer:
        chosen = version or self.registry.serving()
        if chosen is None:
            raise InferenceError("no_model", f"no model in {self.registry.root}: run `bastion train conversion` first")
        with self._lock:
            if chosen not in self._scorers:
                if self.threads is not None:
                    torch.set_num_threads(self.threads)
                model, artifact = self.registry.load(chosen)
                self._scorers[chosen] = Scorer(model, artifact)
            return self._scorers[chosen]

    def score(
        self,
        user: User,
        context: Context,
        candidates: list[Candidate],
        version: str | None = None,
        log: bool = True,
        schema_hash: str | None = None,
    ) -> ScoreResponse:
        if not candidates:
            raise InferenceError("no_candidates", "a request needs at least one candidate")
        if len(candidates) > self.max_candidates:
            raise InferenceError("too_many_candidates", f"{len(candidates)} candidates; at most {self.max_candidates}")
        started = time.perf_counter()
        scorer = self.scorer(version)
        if schema_hash is not None and schema_hash != scorer.artifact.schema_hash:
            raise InferenceError(
                "schema_mismatch",
                f"the request was built for feature schema {schema_hash}; model "
                f"{scorer.artifact.version} expects {scorer.artifact.schema_hash}",
            )
        encoded = encode(scorer.schema, user, context, candidates)
        conv, click = scorer.score(encoded, self.dedup)
        request_id = uuid.uuid4().hex
        ids = [c.id for c in candidates]
        if log and self.log is not None:
            self.log.submit(served_request(request_id, scorer, encoded, ids, conv, click))
        p_conversion = np.round(np.asarray(conv, dtype=np.float64), 6).tolist()
        p_click = [None] * len(ids) if click is None else np.round(np.asarray(click, dtype=np.float64), 6).tolist()
        return ScoreResponse.model_validate(  # one validation in pydantic-core, not one model per candidate
            {
                "request_id": request_id,
                "model_version": scorer.artifact.version,
                "schema_hash": scorer.artifact.schema_hash,
                "surface": context.surface,
                "runtime": scorer.runtime,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
                "logged": bool(log and self.log is not None),
                "candidates": [
                    {"id": i, "p_conversion": c, "p_click": k}
                    for i, c, k in zip(ids, p_conversion, p_click, strict=True)
                ],
            }
        )
