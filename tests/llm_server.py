"""The scripted OpenAI-compatible server (agents.scripted_llm) on a loopback port, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agents.scripted_llm import Reply, ScriptedLLM, hashed_vector, scripted_app
from tests.gateway_harness import LiveServer

__all__ = ["Reply", "ScriptedLLM", "hashed_vector", "scripted_llm"]


@contextmanager
def scripted_llm() -> Iterator[tuple[ScriptedLLM, str]]:
    """Yields the script and the base URL (…/v1)."""
    llm = ScriptedLLM()
    server = LiveServer(scripted_app(llm)).start()
    try:
        yield llm, f"{server.url}/v1"
    finally:
        server.stop()
