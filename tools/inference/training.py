"""Training, evaluation metrics and per-surface calibration.

An impressions table (one row per impression: user features, history, surface, item features,
click, conversion, ts) trains the model on impressions (ESMM: both losses over all impressions).
Calibration: Platt scaling per surface on a held-out slice of the training period. Versioned
artifacts and the model registry are in `registry`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, Field
from torch import nn

from tools.inference.contracts import Calibration, ModelConfig
from tools.inference.features import FeatureSchema
from tools.inference.model import ConversionModel, probabilities


class Arrays(BaseModel):
    """Column arrays of an impressions table, in the schema's order."""

    model_config = {"arbitrary_types_allowed": True}

    user_cat: Any
    user_dense: Any
    history: Any
    surface: Any
    item_cat: Any
    item_dense: Any
    click: Any
    conversion: Any
    ts: Any

    def take(self, index: Any) -> Arrays:
        return Arrays(**{k: getattr(self, k)[index] for k in Arrays.model_fields})

    def __len__(self) -> int:
        return len(self.click)


class TrainSettings(BaseModel):
    epochs: int = Field(3, ge=1, le=100)
    batch_size: int = Field(1024, ge=16)
    learning_rate: float = Field(2e-3, gt=0)
    seed: int = 0
    calibration_share: float = Field(0.1, ge=0.0, lt=0.5)


def _logit(p: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(p / (1 - p)))


def platt(p: np.ndarray[Any, Any], y: np.ndarray[Any, Any], steps: int = 200) -> tuple[float, float]:
    """Fit a, b of σ(a·logit(p) + b) by Newton's method on the log loss."""
    x = _logit(p)
    a, b = 1.0, 0.0
    for _ in range(steps):
        q = 1 / (1 + np.exp(-np.clip(a * x + b, -500, 500)))
        grad = np.array([np.sum((q - y) * x), np.sum(q - y)])
        w = q * (1 - q)
        hess = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def apply_platt(p: np.ndarray[Any, Any], ab: tuple[float, float]) -> np.ndarray[Any, Any]:
    return np.asarray(1 / (1 + np.exp(-(ab[0] * _logit(p) + ab[1]))))


def auc(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    ranks[order] = np.arange(1, len(p) + 1)
    # average ranks for ties
    sorted_p = p[order]
    start = 0
    while start < len(p):
        end = start
        while end + 1 < len(p) and sorted_p[end + 1] == sorted_p[start]:
            end += 1
        if end > start:
            ranks[order[start : end + 1]] = (start + end + 2) / 2
        start = end + 1
    positives = y.sum()
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def logloss(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_error(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any], bins: int = 15) -> float:
    """Expected calibration error over equal-mass bins."""
    order = np.argsort(p)
    total = 0.0
    for chunk in np.array_split(order, bins):
        if len(chunk):
            total += len(chunk) * abs(float(p[chunk].mean()) - float(y[chunk].mean()))
    return total / len(p)


def _tensors(a: Arrays) -> list[torch.Tensor]:
    return [
        torch.as_tensor(a.user_cat),
        torch.as_tensor(a.user_dense),
        torch.as_tensor(a.history),
        torch.as_tensor(a.surface),
        torch.as_tensor(a.item_cat),
        torch.as_tensor(a.item_dense),
    ]


def predict(model: ConversionModel, data: Arrays, batch: int = 8192) -> tuple[np.ndarray[Any, Any], Any]:
    model.eval()
    conv, click = [], []
    with torch.inference_mode():
        for start in range(0, len(data), batch):
            part = data.take(slice(start, start + batch))
            p_conv, p_click = probabilities(model(*_tensors(part)), model.config.heads)
            conv.append(p_conv.numpy())
            if p_click is not None:
                click.append(p_click.numpy())
    return np.concatenate(conv), (np.concatenate(click) if click else None)


def split_by_time(data: Arrays, latest_share: float) -> tuple[Arrays, Arrays]:
    """The earlier rows and the latest `latest_share` of them (training holds the latter out to
    calibrate on; evaluations use the same slice for validation)."""
    order = np.argsort(data.ts, kind="stable")
    cut = int(len(order) * (1 - latest_share))
    return data.take(order[:cut]), data.take(order[cut:])


def train(
    schema: FeatureSchema,
    config: ModelConfig,
    data: Arrays,
    settings: TrainSettings | None = None,
    progress: Any = None,
    on_epoch: Callable[[int, ConversionModel], None] | None = None,
) -> tuple[ConversionModel, Calibration]:
    """Fit on all but the latest `calibration_share` of `data` (by time), calibrate on that slice.
    `on_epoch(epoch, model)` runs after each epoch (evaluations score validation there)."""
    settings = settings or TrainSettings()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    fit, held = split_by_time(data, settings.calibration_share)
    model = ConversionModel(schema, config)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    bce = nn.BCELoss()
    click_t, conv_t = (
        torch.as_tensor(fit.click, dtype=torch.float32),
        torch.as_tensor(fit.conversion, dtype=torch.float32),
    )
    tensors = _tensors(fit)
    steps = math.ceil(len(fit) / settings.batch_size)
    for epoch in range(settings.epochs):
        model.train()
        permutation = torch.as_tensor(rng.permutation(len(fit)))
        for step in range(steps):
            index = permutation[step * settings.batch_size : (step + 1) * settings.batch_size]
            logits = model(*[t[index] for t in tensors])
            p_conv, p_click = probabilities(logits, config.heads)
            loss = bce(p_conv.clamp(1e-7, 1 - 1e-7), conv_t[index])
            if p_click is not None:
                loss = loss + bce(p_click.clamp(1e-7, 1 - 1e-7), click_t[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if progress is not None:
                progress(epoch, step, steps)
        if on_epoch is not None:
            on_epoch(epoch, model)
    calibration = Calibration()
    if len(held):
        held_conv, held_click = predict(model, held)
        calibration.conversion = platt_per_surface(held_conv, held.conversion, held.surface, schema.surfaces)
        if held_click is not None:
            calibration.click = platt_per_surface(held_click, held.click, held.surface, schema.surfaces)
    return model, calibration


def platt_per_surface(
    p: np.ndarray[Any, Any], y: np.ndarray[Any, Any], surfaces: np.ndarray[Any, Any], names: list[str]
) -> dict[str, tuple[float, float]]:
    """Platt scaling fitted per surface, where a surface has ≥ 50 rows and a positive."""
    table = {}
    for s, surface in enumerate(names):
        mask = surfaces == s
        if mask.sum() >= 50 and y[mask].sum() > 0:
            table[surface] = platt(p[mask], y[mask])
    return table


def calibrated(
    p: np.ndarray[Any, Any], surfaces: np.ndarray[Any, Any], table: dict[str, tuple[float, float]], names: list[str]
) -> np.ndarray[Any, Any]:
    out = p.copy()
    for s, name in enumerate(names):
        if name in table:
            mask = surfaces == s
            out[mask] = apply_platt(p[mask], table[name])
    return out


def task_metrics(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> dict[str, float]:
    return {"auc": auc(y, p), "logloss": logloss(y, p), "ece": calibration_error(y, p), "rate": float(y.mean())}


def evaluate(model: ConversionModel, calibration: Calibration, data: Arrays) -> dict[str, dict[str, float]]:
    p_conv, p_click = predict(model, data)
    names = model.schema.surfaces
    result = {
        "conversion": task_metrics(data.conversion, calibrated(p_conv, data.surface, calibration.conversion, names))
    }
    if p_click is not None:
        result["click"] = task_metrics(data.click, calibrated(p_click, data.surface, calibration.click, names))
    return result
