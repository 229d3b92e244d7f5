"""The agent's tools: the gateway's /mcp, reached with the caller's own credential.

Every call is an ordinary gateway call — authenticated as the user, governed by the user's policies,
audited under the client id `bastion-chat`. A call that needs the user's confirmation comes back as a
proposal (2026-07-28 `input_required`, its sealed state kept so the user can decide later, even on another
replica); a call parked for another approver comes back with its approval id.
"""

from __future__ import annotations

import functools
import hashlib
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

APPROVAL_ARG = "_approval_id"
APPROVAL_KEY = "bastion.approval"
MODE = "2026-07-28"

Status = Literal[
    "ok", "error", "denied", "unavailable", "timeout", "not_run", "awaiting_user", "awaiting_approval", "rejected"
]


class ToolSpec(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, Any]
    read_only: bool = False

    @property
    def server(self) -> str:
        return self.name.split("__", 1)[0]

    def openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description[:1024], "parameters": self.parameters},
        }


class ToolOutcome(BaseModel):
    status: Status
    text: str = ""
    structured: dict[str, Any] | None = None
    rule: str | None = None
    approval_id: str | None = None
    request_state: str | None = None
    prompt: str | None = None  # what the gateway asks the user to confirm
    latency_ms: float = 0.0


def spec_of(tool: types.Tool) -> ToolSpec:
    schema = dict(tool.input_schema or {"type": "object"})
    props = dict(schema.get("properties") or {})
    # The agent presents approval ids itself, from its own records: the model never supplies one.
    props.pop(APPROVAL_ARG, None)
    schema["properties"] = props
    if "required" in schema:
        schema["required"] = [r for r in schema["required"] if r != APPROVAL_ARG]
    hints = tool.annotations
    return ToolSpec(
        name=tool.name,
        description=tool.description or "",
        parameters=schema,
        read_only=bool(hints and hints.read_only_hint),
    )


def _text(result: types.CallToolResult) -> str:
    parts = [c.text for c in result.content if isinstance(c, types.TextContent)]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, default=str)]
    return "\n".join(parts)


def outcome_of(result: types.CallToolResult | types.InputRequiredResult, started: float) -> ToolOutcome:
    latency = round((time.perf_counter() - started) * 1000, 2)
    if isinstance(result, types.InputRequiredResult):
        request = (result.input_requests or {}).get(APPROVAL_KEY)
        prompt = getattr(getattr(request, "params", None), "message", None)
        return ToolOutcome(
            status="awaiting_user", request_state=result.request_state, prompt=prompt, latency_ms=latency
        )
    structured = result.structured_content
    text = _text(result)
    if not result.is_error:
        return ToolOutcome(status="ok", text=text, structured=structured, latency_ms=latency)
    kind = (structured or {}).get("error")
    if (structured or {}).get("status") == "awaiting_approval":
        return ToolOutcome(
            status="awaiting_approval",
            text=text,
            structured=structured,
            approval_id=str((structured or {}).get("approvalId")),
            latency_ms=latency,
        )
    if kind == "denied":
        rule = (structured or {}).get("rule")
        status: Status = "unavailable" if rule == "unknown-tool" else "denied"
        return ToolOutcome(
            status=status, text=text, structured=structured, rule=str(rule) if rule else None, latency_ms=latency
        )
    if kind == "declined":
        return ToolOutcome(status="rejected", text=text, structured=structured, latency_ms=latency)
    return ToolOutcome(status="error", text=text, structured=structured, latency_ms=latency)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context per process: building one loads the CA bundle (~20 ms), per connection it was most of a
    chat turn's overhead."""
    return ssl.create_default_context()


async def _decline(context: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


class GatewayToolbox:
    """One MCP connection to the gateway for one turn of one user."""

    def __init__(self, url: str, token: str, *, auth: httpx2.Auth | None = None, timeout: float = 60.0) -> None:
        self.url = url
        self.token = token
        self.auth = auth
        self.timeout = timeout
        self.client: Client | None = None
        self._specs: dict[str, ToolSpec] | None = None
        self.changed = False  # the gateway said the tool list changed
        self.broken = False
        self._listed = False  # this connection has listed the tools at least once

    @asynccontextmanager
    async def open(self) -> AsyncIterator[GatewayToolbox]:
        async with AsyncExitStack() as stack:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    verify=_tls(),
                    headers={"Authorization": f"Bearer {self.token}"},
                    auth=self.auth,
                    timeout=self.timeout + 5,
                )
            )
            transport = streamable_http_client(self.url, http_client=http)
            self.client = await stack.enter_async_context(
                # The elicitation capability tells the gateway the user can confirm in this client; the agent
                # drives confirmations itself (input_required), so the callback only ever declines.
                Client(
                    transport, mode=MODE, message_handler=self._on_message, elicitation_callback=_decline, cache=None
                )
            )
            try:
                yield self
            finally:
                self.client = None

    async def _on_message(self, message: Any) -> None:
        inner = getattr(message, "root", message)
        if isinstance(inner, types.ToolListChangedNotification):
            self.changed = True

    def fresh_turn(self) -> None:
        """A new turn lists the tools again: what the user may use follows the registry."""
        self._specs = None

    async def tools(self, refresh: bool = False) -> dict[str, ToolSpec]:
        assert self.client is not None, "open() the toolbox first"
        if self._specs is None or refresh or self.changed:
            self.changed = False
            listed: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await self.client.list_tools(cursor=cursor) if cursor else await self.client.list_tools()
                listed.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            self._specs = {t.name: spec_of(t) for t in listed}
            self._listed = True
        return self._specs

    async def _call(self, name: str, arguments: dict[str, Any], **kwargs: Any) -> ToolOutcome:
        assert self.client is not None, "open() the toolbox first"
        started = time.perf_counter()
        try:
            if not self._listed:
                await self.tools()  # a 2026-07-28 server wants a tool listed before it is called
            with anyio.fail_after(self.timeout):
                result = await self.client.session.call_tool(name, arguments, allow_input_required=True, **kwargs)
        except TimeoutError:
            return ToolOutcome(
                status="timeout",
                text=f"no answer within {self.timeout:g} s (BASTION_CHAT_CALL_TIMEOUT)",
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        except Exception as exc:  # transport or protocol failure: reported to the user, never raised into the graph
            if not isinstance(exc, MCPError):
                self.broken = True  # a pooled connection is not reused after a transport failure
            message = str(exc)[:300] or type(exc).__name__
            return ToolOutcome(
                status="error",
                text=f"the gateway call failed: {message}",
                latency_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return outcome_of(result, started)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolOutcome:
        clean = {k: v for k, v in arguments.items() if k != APPROVAL_ARG}
        return await self._call(name, clean)

    async def confirm(self, name: str, arguments: dict[str, Any], request_state: str, approve: bool) -> ToolOutcome:
        """Answer the gateway's confirmation of a proposed call (the user approved or rejected it)."""
        answer = types.ElicitResult(
            action="accept" if approve else "decline", content={"approve": True} if approve else None
        )
        return await self._call(name, arguments, input_responses={APPROVAL_KEY: answer}, request_state=request_state)

    async def call_approved(self, name: str, arguments: dict[str, Any], approval_id: str) -> ToolOutcome:
        return await self._call(name, {**arguments, APPROVAL_ARG: approval_id})


@dataclass
class _Entry:
    box: GatewayToolbox
    closing: anyio.Event
    used: float
    leases: int = 0


class ToolboxPool:
    """Open gateway connections, one per credential, reused across turns and closed after `idle` seconds unused.

    A connection is opened and closed by a task of its own (the SDK client's context belongs to one task) and
    leased to request tasks; one in use is never closed. Every call still carries the credential and is
    authenticated by the gateway, so a revoked key stops at once; the pool saves only the connection set-up and
    the client's warm-up.
    """

    def __init__(self, factory: Callable[[str], GatewayToolbox], idle: float = 120.0, size: int = 256) -> None:
        self.factory = factory
        self.idle = idle
        self.size = size
        self._entries: dict[str, _Entry] = {}
        self._tg: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock()

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                while True:
                    await anyio.sleep(min(10.0, self.idle / 2))
                    self._evict(time.monotonic() - self.idle)
            finally:
                for entry in self._entries.values():
                    entry.closing.set()
                self._entries.clear()

    def _evict(self, before: float) -> None:
        for key, entry in list(self._entries.items()):
            if entry.leases == 0 and (entry.used < before or entry.box.broken):
                entry.closing.set()
                del self._entries[key]

    @asynccontextmanager
    async def lease(self, token: str) -> AsyncIterator[GatewayToolbox]:
        """An open toolbox for this credential, for one turn; its tools are listed afresh (`tools()`)."""
        entry = await self._get(token)
        entry.leases += 1
        try:
            yield entry.box
        finally:
            entry.leases -= 1
            entry.used = time.monotonic()

    async def _get(self, token: str) -> _Entry:
        key = hashlib.sha256(token.encode()).hexdigest()
        async with self._lock:
            found = self._entries.get(key)
            if found is not None and found.box.client is not None and not found.box.broken:
                found.used = time.monotonic()
                found.box.fresh_turn()
                return found
            if found is not None and found.leases == 0:
                found.closing.set()  # broken: replaced, and told to close
            if self._tg is None:
                raise RuntimeError("the toolbox pool is not running")
            idle = [(e.used, k) for k, e in self._entries.items() if e.leases == 0]
            if len(self._entries) >= self.size and idle:
                self._entries.pop(min(idle)[1]).closing.set()
            box, closing, ready = self.factory(token), anyio.Event(), anyio.Event()
            failure: list[BaseException] = []

            async def own() -> None:
                try:
                    async with box.open():
                        ready.set()
                        await closing.wait()
                except Exception as exc:
                    failure.append(exc)
                finally:
                    box.broken = True
                    ready.set()

            self._tg.start_soon(own)
            await ready.wait()
            if failure:
                raise failure[0]
            entry = _Entry(box, closing, time.monotonic())
            self._entries[key] = entry
            return entry
