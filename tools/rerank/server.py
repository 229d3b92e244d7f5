"""The `rerank` MCP server: a thin adapter over the library (read-only, idempotent)."""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tools.rerank.common import Picks, RerankError, Spacing
from tools.rerank.dpp import dpp, dpp_window
from tools.rerank.mmr import mmr
from tools.rerank.ssd import ssd
from tools.wire import lean

MAX_CANDIDATES = 10_000
MAX_DIMENSIONS = 8_192
MAX_B64_CHARS = (MAX_DIMENSIONS * 4 + 2) // 3 * 4


class RerankSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_RERANK_", extra="ignore")

    embeddings: Path | None = Field(
        None, description="An .npz file with `ids` and `vectors`: embeddings for candidates that send only an id."
    )


class Candidate(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    score: float = Field(description="Relevance; normalised per request")
    embedding: list[float] | None = Field(None, description="Omit to look the id up in the embedding store")
    embedding_b64: str | None = Field(
        None,
        max_length=MAX_B64_CHARS,
        description="The embedding as base64 of little-endian float32 values (4 bytes per dimension), instead of "
        "`embedding`: about half the request bytes and no per-number JSON parsing",
    )
    flagged: bool = Field(False, description="Subject to soft spacing")
    category: str | None = Field(None, max_length=200, description="For the optional coverage bonus")


class SpacingParams(BaseModel):
    weight: float = Field(1.0, ge=0, le=100, description="λ: how strongly flagged items are spaced out")
    window: int = Field(5, ge=1, le=100, description="How many recent picks the spacing looks back")


class Pick(BaseModel):
    id: str
    rank: int
    relevance: float = Field(description="The normalised relevance this pick brought")
    diversity: float = Field(description="γ × residual norm (SSD), log-volume gain (DPP), −similarity share (MMR)")
    penalty: float = Field(description="Soft-spacing penalty subtracted")
    coverage: float = Field(description="Category-coverage bonus added")
    score: float


class RerankResult(BaseModel):
    method: str
    k: int
    picks: list[Pick]
    notes: list[str]


class EmbeddingStore:
    def __init__(self, path: Path) -> None:
        data = np.load(path, allow_pickle=False)
        ids = [str(i) for i in data["ids"]]
        self.vectors = np.asarray(data["vectors"], dtype=np.float32)
        self.index = {item: row for row, item in enumerate(ids)}

    def get(self, item: str) -> np.ndarray[Any, Any] | None:
        row = self.index.get(item)
        return None if row is None else self.vectors[row]


def _decode_b64(candidate: Candidate, text: str) -> np.ndarray[Any, Any]:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ToolError(f"candidate {candidate.id!r}: embedding_b64 is not valid base64") from None
    if len(raw) % 4:
        raise ToolError(f"candidate {candidate.id!r}: embedding_b64 holds {len(raw)} bytes, not float32 values")
    return np.frombuffer(raw, dtype="<f4")


def _matrix(candidates: list[Candidate], store: EmbeddingStore | None) -> np.ndarray[Any, Any]:
    seen: set[str] = set()
    rows: list[Any] = []
    dim: int | None = None
    for c in candidates:
        if c.id in seen:
            raise ToolError(f"duplicate candidate id {c.id!r}")
        seen.add(c.id)
        if not math.isfinite(c.score):
            raise ToolError(f"candidate {c.id!r} has a score that is NaN or infinite")
        vector: Any = c.embedding
        if c.embedding_b64 is not None:
            if vector is not None:
                raise ToolError(f"candidate {c.id!r} has both embedding and embedding_b64; send one")
            vector = _decode_b64(c, c.embedding_b64)
        if vector is None:
            if store is None:
                raise ToolError(f"candidate {c.id!r} has no embedding and no embedding store is configured")
            vector = store.get(c.id)
            if vector is None:
                raise ToolError(f"candidate {c.id!r} has no embedding and is not in the embedding store")
        if dim is None:
            dim = len(vector)
            if dim == 0:
                raise ToolError(f"candidate {c.id!r} has an empty embedding")
            if dim > MAX_DIMENSIONS:
                raise ToolError(f"candidate {c.id!r} has {dim} dimensions; at most {MAX_DIMENSIONS}")
        elif len(vector) != dim:
            raise ToolError(f"candidate {c.id!r} has {len(vector)} dimensions; the first candidate has {dim}")
        rows.append(vector)
    with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf, refused just below
        X = np.asarray(rows, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)  # one vectorised pass over every embedding
    if not finite.all():
        bad = candidates[int(np.argmin(finite))]
        raise ToolError(f"candidate {bad.id!r} has NaN or infinity in its embedding")
    return X


def run(
    candidates: list[Candidate],
    k: int,
    method: str,
    window: int,
    gamma: float,
    spacing: SpacingParams | None,
    coverage: float,
    store: EmbeddingStore | None,
) -> RerankResult:
    if len(candidates) > MAX_CANDIDATES:
        raise ToolError(f"{len(candidates)} candidates; at most {MAX_CANDIDATES} per request")
    notes: list[str] = []
    if k > len(candidates):
        notes.append(f"k={k} capped to the {len(candidates)} candidates given")
    if not candidates:
        return RerankResult(method=method, k=0, picks=[], notes=notes)
    X = _matrix(candidates, store)
    scores = np.asarray([c.score for c in candidates], dtype=np.float32)
    if not np.any(np.linalg.norm(X, axis=1) > 0):
        notes.append("every embedding is zero: no diversity signal, ranked by relevance")
    try:
        picks: Picks
        if method == "ssd":
            picks = ssd(
                X,
                scores,
                k,
                gamma=gamma,
                window=window,
                flagged=[c.flagged for c in candidates],
                spacing=Spacing(spacing.weight, spacing.window) if spacing else None,
                categories=[c.category for c in candidates],
                coverage=coverage,
            )
        elif method == "dpp":
            picks = dpp(X, scores, k, theta=gamma)
        elif method == "dpp_window":
            picks = dpp_window(X, scores, k, theta=gamma, window=window)
        else:
            picks = mmr(X, scores, k, lambda_=1.0 / (1.0 + gamma))
    except RerankError as exc:
        raise ToolError(str(exc)) from None
    notes.extend(picks.notes)
    result = [
        Pick(
            id=candidates[i].id,
            rank=rank + 1,
            relevance=round(r, 6),
            diversity=round(d, 6),
            penalty=round(p, 6),
            coverage=round(c, 6),
            score=round(s, 6),
        )
        for rank, (i, r, d, p, c, s) in enumerate(
            zip(
                picks.indices,
                picks.relevance,
                picks.diversity,
                picks.penalty,
                picks.coverage,
                picks.scores,
                strict=True,
            )
        )
    ]
    return RerankResult(method=method, k=len(result), picks=result, notes=notes)


def build(settings: RerankSettings | None = None) -> MCPServer[Any]:
    settings = settings or RerankSettings()
    store = EmbeddingStore(settings.embeddings) if settings.embeddings else None
    server: MCPServer[Any] = MCPServer(
        "dev.bastion/rerank",
        title="Diversity re-ranking",
        description="Re-rank candidates for relevance and diversity (SSD, DPP, MMR).",
    )

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
    )
    def rerank(
        candidates: list[Candidate],
        k: int = Field(10, ge=0, le=MAX_CANDIDATES),
        method: Literal["ssd", "dpp", "dpp_window", "mmr"] = "ssd",
        window: int = Field(10, ge=1, le=1000, description="SSD/DPP window: how many recent picks count"),
        gamma: float = Field(0.5, ge=0, le=100, description="Diversity weight (θ for DPP; MMR uses λ = 1/(1+γ))"),
        spacing: SpacingParams | None = None,
        coverage: float = Field(0.0, ge=0, le=100, description="Bonus for a category not yet shown (SSD)"),
    ) -> RerankResult:
        """Order candidates for a feed: relevant, yet not repetitive within each window of picks.

        Each pick reports what its relevance, diversity, spacing penalty and coverage bonus contributed.
        """
        return run(candidates, k, method, window, gamma, spacing, coverage, store)

    return lean(server)
