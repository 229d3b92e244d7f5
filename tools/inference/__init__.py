"""Multi-task conversion model (parallel DCN v2 + MLP) served with request-level dedup."""

from tools.inference.features import Candidate, Context, FeatureSchema, InferenceError, User
from tools.inference.model import ConversionModel, ModelConfig
from tools.inference.serving import InferenceService, Scorer, ScoreResponse
from tools.inference.training import ModelRegistry, TrainSettings

__all__ = [
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
