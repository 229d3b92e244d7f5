"""Diversity re-ranking: SSD (sliding spectrum decomposition), DPP fast greedy MAP, MMR.

A pure NumPy library (float32, vectorised over candidates); the MCP server lives in `server`.
"""

from tools.rerank.common import Picks, RerankError, ScoreNorm, Spacing
from tools.rerank.dpp import dpp, dpp_window
from tools.rerank.mmr import mmr
from tools.rerank.ssd import ssd

__all__ = ["Picks", "RerankError", "ScoreNorm", "Spacing", "dpp", "dpp_window", "mmr", "ssd"]
