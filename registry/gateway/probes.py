"""What upstreams serve, and whether it is still what was approved: pins, drift, health probes.

Every tool definition's hash is pinned when its version is registered. The gateway asks each upstream what
it serves (on first use and on every health probe, builtins too: their code can change under a pinned
version) and withholds any tool whose definition changed, with an `integrity` audit row, until a new
version is approved. Probes also record each upstream's status and latency in the registry.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from governance import SYSTEM
from registry.db import Database, revision
from registry.db.models import Server
from registry.gateway import dbio
from registry.gateway.model import Served
from registry.gateway.upstreams import Upstream, UpstreamError
from registry.schemas.tools import served_hash
from registry.services.common import record_event
from registry.services.facts import ItemEntry, ServerEntry, ToolEntry

log = logging.getLogger("bastion.gateway")


class Probes:
    def __init__(
        self,
        db: Database,
        upstream: Callable[[ServerEntry], Upstream | None],
        published: Callable[[Session], list[ServerEntry]],
        report: Callable[[ServerEntry, ToolEntry | ItemEntry, str], None],
    ) -> None:
        self.db = db
        self.upstream = upstream
        self.published = published
        self.report = report
        self.served: dict[str, Served] = {}
        self.drift_epoch = 0  # bumped whenever what some upstream serves changes: views are rebuilt
        self._reported: set[tuple[str, str, str | None]] = set()

    async def refresh(self, entry: ServerEntry) -> Served:
        """Ask the upstream what it serves now; detect definitions that drifted from the pins."""
        upstream = self.upstream(entry)
        state = self.served.setdefault(entry.name, Served())
        if upstream is None:
            state.tools, state.error = None, f"no builtin server named {entry.short_name!r} is installed"
            return state
        try:
            tools = await upstream.list_tools()
        except UpstreamError as exc:
            state.error, state.checked_at = str(exc)[:500], time.monotonic()
            return state
        now_serving = {t.name: served_hash(t) for t in tools}
        items: dict[str, str] | None = None
        if entry.has_items:
            kinds = {k for k, found in (("prompt", entry.prompts), ("resource", entry.resources),
                                        ("resourceTemplate", entry.templates)) if found}  # fmt: skip
            try:
                items = await upstream.list_items(kinds)
            except UpstreamError as exc:
                state.error, state.checked_at = str(exc)[:500], time.monotonic()
                return state
        if now_serving != state.tools or items != state.items:
            state.tools, state.items = now_serving, items
            self.drift_epoch += 1
        state.error, state.checked_at = None, time.monotonic()
        return state

    async def ensure(self, entries: list[ServerEntry]) -> None:
        for entry in [e for e in entries if e.name not in self.served and e.published]:
            await self.refresh(entry)

    def withheld(self, entry: ServerEntry, tool: ToolEntry) -> str | None:
        """Why a tool is held back because its upstream serves something other than the pin."""
        state = self.served.get(entry.name)
        if state is None or state.tools is None:
            return None  # not known (unreachable): listed, and calls fail with the reason
        served = state.tools.get(tool.name)
        if served == tool.content_hash:
            return None
        if served is None:
            return f"upstream {entry.name} no longer serves tool {tool.name}"
        return (
            f"upstream {entry.name} serves a changed definition of {tool.name} "
            f"(pinned {tool.content_hash[:19]}…, served {served[:19]}…); withheld until a new version is approved"
        )

    def withheld_item(self, entry: ServerEntry, item: ItemEntry) -> str | None:
        """Why a prompt, resource or template is held back because its upstream serves something other than
        the pin (not known yet, or unreachable: served, and reads fail with the reason)."""
        state = self.served.get(entry.name)
        if state is None or state.items is None:
            return None
        served = state.items.get(f"{item.kind}:{item.name}")
        noun = {"prompt": "prompt", "resource": "resource"}.get(item.kind, "resource template")
        if served == item.content_hash:
            return None
        if served is None:
            return f"upstream {entry.name} no longer serves {noun} {item.name}"
        return (
            f"upstream {entry.name} serves a changed definition of {noun} {item.name} "
            f"(pinned {item.content_hash[:19]}…, served {served[:19]}…); withheld until a new version is approved"
        )

    def report_drift(self, entry: ServerEntry, tool: ToolEntry | ItemEntry, reason: str) -> None:
        """One `integrity` audit row per drifted definition (not one per view that hides it)."""
        state = self.served.get(entry.name)
        if isinstance(tool, ItemEntry):
            observed = state.items.get(f"{tool.kind}:{tool.name}") if state and state.items else None
        else:
            observed = state.tools.get(tool.name) if state and state.tools else None
        key = (entry.name, tool.name, observed)
        if key in self._reported:
            return
        self._reported.add(key)
        log.warning("integrity: %s", reason)
        self.report(entry, tool, reason)

    async def probe_all(self) -> None:
        """Probe every published upstream once; record status and latency in the registry."""
        for entry in await dbio.read(self.db, self.published):
            started = time.perf_counter()
            state = await self.refresh(entry)
            latency = (time.perf_counter() - started) * 1000
            status = "down" if state.error else "up"
            await dbio.transaction(self.db, functools.partial(_store, entry=entry, status=status, latency=latency,
                                                              error=state.error))  # fmt: skip


def _store(session: Session, entry: ServerEntry, status: str, latency: float, error: str | None) -> None:
    previous = session.scalar(select(Server.health_status).where(Server.id == entry.id))
    session.execute(
        update(Server)
        .where(Server.id == entry.id)
        .values(
            health_status=status,
            health_latency_ms=latency,
            health_checked_at=datetime.now(UTC),
            health_error=error[:500] if error else None,
        )
        .execution_options(synchronize_session=False)
    )
    if previous != status:
        # Discovery shows health; a changed status must not wait for an unrelated change.
        revision.mark_changed(session)
        # The change log keeps the server's health history (transitions, not every probe).
        record_event(
            session,
            SYSTEM,
            "server.health",
            entry.name,
            status=status,
            previous=previous,
            latencyMs=round(latency, 1),
            error=error[:500] if error else None,
        )
