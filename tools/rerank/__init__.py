"""Diversity re-ranking: SSD (sliding spectrum decomposition), DPP fast greedy MAP, MMR.

A pure library (float32 NumPy; SSD's per-pick loop compiled with numba in `kernels`,
loaded on first use); the MCP server lives in `server`.
"""

from tools.rerank.common import Picks, RerankError, ScoreNorm, Spacing
from tools.rerank.dpp import dpp, dpp_window
from tools.rerank.mmr import mmr
from tools.rerank.ssd import ssd

__all__ = ["Picks", "RerankError", "ScoreNorm", "Spacing", "dpp", "dpp_window", "mmr", "ssd"]
