"""Keep the cycle collector off the request path of a long-running gateway.

A `bastion serve` process holds millions of long-lived objects: the builtins' libraries, a scoring model,
catalogs, the schemas it serves. CPython's full (generation 2) collection walks all of them whenever enough
objects have been promoted, and request handling promotes some on every call: measured on the inference
builtin, a 50-100 ms pause every ~30 calls (the p99 of `make bench BENCH_ARGS=fullpath`). `gc.freeze()` moves
what is alive now to a permanent generation that collections skip. It runs once when the gateway has started,
and once after each builtin tool's first call, which is when a builtin loads what it serves lazily (a model,
a warehouse connection). Objects frozen are still freed by reference counting; only a reference cycle among
them would outlive its use, and there is one such moment per tool.
"""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger("bastion.gateway")


class HeapFreezer:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._warm: set[tuple[str, str]] = set()

    def freeze(self, why: str) -> None:
        if not self.enabled:
            return
        started = time.perf_counter()
        gc.collect()
        gc.freeze()
        log.debug(
            "heap frozen (%s): %d objects, %.0f ms", why, gc.get_freeze_count(), (time.perf_counter() - started) * 1000
        )

    def release(self) -> None:
        """At shutdown: hand the frozen objects back to the collector (extensions that count their objects at
        exit, such as nanobind's, otherwise report every frozen one as leaked)."""
        if self.enabled:
            gc.unfreeze()

    def after_call(self, server: str, tool: str) -> None:
        """After a builtin tool's call: freeze once per tool, the first time (what it loaded lazily is now alive)."""
        if self.enabled and (server, tool) not in self._warm:
            self._warm.add((server, tool))
            self.freeze(f"first call of {server} {tool}")
