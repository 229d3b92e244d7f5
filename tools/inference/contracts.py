"""The inference tool's contracts: model configuration, calibration and the scoring response.

Pure pydantic (no torch): the model imports its configuration from here and the registry stores
it, so neither imports the other at module level.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ModelConfig(BaseModel):
    embedding_dim: int = Field(16, ge=2, le=256)
    cross_layers: int = Field(2, ge=1, le=6)
    cross_rank: int = Field(16, ge=1, le=256)
    experts: int = Field(1, ge=1, le=8, description=">1: a mixture of low-rank experts per cross layer")
    mlp: list[int] = Field(default_factory=lambda: [128, 64])
    user_encoder: list[int] = Field(default_factory=lambda: [512, 256, 64], description="The user tower MLP")
    structure: Literal["parallel", "stacked"] = "parallel"
    heads: Literal["esmm", "shared", "single"] = "esmm"
    embedding_init: Literal["uniform", "normal"] = Field(
        "uniform", description="uniform: U(±0.05), as DCN v2's reference code; normal: PyTorch's N(0, 1) default"
    )


class Calibration(BaseModel):
    """Platt scaling per surface: p' = σ(a · logit(p) + b)."""

    conversion: dict[str, tuple[float, float]] = Field(default_factory=dict)
    click: dict[str, tuple[float, float]] = Field(default_factory=dict)


class ScoredCandidate(BaseModel):
    id: str
    p_click: float | None = Field(description="Calibrated for the request's surface")
    p_conversion: float = Field(description="Calibrated for the request's surface")


class ScoreResponse(BaseModel):
    request_id: str
    model_version: str
    schema_hash: str
    surface: str
    runtime: str
    candidates: list[ScoredCandidate]
    elapsed_ms: float
    logged: bool
