"""Multi-task conversion model (parallel DCN v2 + MLP) served with request-level dedup.

The contracts, features and registry import without torch; the model, training and serving
modules (torch) load on first access, so building the MCP server stays cheap.
"""

from typing import Any

from tools.inference.contracts import ModelConfig, ScoreResponse
from tools.inference.features import Candidate, Context, FeatureSchema, InferenceError, User
from tools.inference.registry import Artifact, ModelRegistry

_LAZY = {"ConversionModel": "tools.inference.model", "InferenceService": "tools.inference.serving",
         "Scorer": "tools.inference.serving", "TrainSettings": "tools.inference.training"}  # fmt: skip

__all__ = [
    "Artifact",
    "Candidate",
    "Context",
    "ConversionModel",
    "FeatureSchema",
    "InferenceError",
    "InferenceService",
    "ModelConfig",
    "ModelRegistry",
    "ScoreResponse",
    "Scorer",
    "TrainSettings",
    "User",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
