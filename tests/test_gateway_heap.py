"""The gateway keeps the cycle collector off the request path: start-up and each builtin tool's lazily loaded
state are frozen once; a shutdown hands them back."""

from __future__ import annotations

import gc
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from governance import Principal
from registry.gateway.heap import HeapFreezer
from registry.gateway.upstreams import BuiltinUpstream


def test_a_builtin_tool_is_frozen_after_its_first_call_only() -> None:
    server: MCPServer[Any] = MCPServer("t")
    loaded: list[list[int]] = []

    @server.tool()
    def load(n: int) -> int:
        """Lazily builds a large structure on first use, like a model or a catalog."""
        if not loaded:
            loaded.append(list(range(n)))
        return len(loaded[0])

    @server.tool()
    def other() -> int:
        """Another tool of the same server."""
        return 1

    freezes: list[str] = []

    class Recording(HeapFreezer):
        def freeze(self, why: str) -> None:
            freezes.append(why)
            super().freeze(why)

    heap = Recording(enabled=True)
    upstream = BuiltinUpstream("dev.bastion/t", server, heap)
    caller = Principal(subject="u")
    try:
        for _ in range(3):
            anyio.run(upstream.call_tool, "load", {"n": 1000}, caller)
        tracked = gc.get_objects()  # the collector's generations; frozen objects are not among them
        assert not any(o is loaded[0] for o in tracked)  # what the first call built is out of the collector's way
        anyio.run(upstream.call_tool, "other", {}, caller)
        assert freezes == ["first call of dev.bastion/t load", "first call of dev.bastion/t other"]
    finally:
        heap.release()
    assert gc.get_freeze_count() == 0 and any(o is loaded[0] for o in gc.get_objects())


def test_freezing_is_off_unless_asked_for() -> None:
    heap = HeapFreezer(enabled=False)
    heap.freeze("started")
    heap.after_call("s", "t")
    assert gc.get_freeze_count() == 0
