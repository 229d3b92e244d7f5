"""Where tool calls go: builtin servers in-process, remote servers over Streamable HTTP.

Remote upstreams are called with the gateway's own credential; a caller's token is never
forwarded. Who the caller is travels as the server's identity setting asks (`identity`): a signed
assertion or an exchanged token, set on each HTTP request of that call only. Every remote call runs
under a timeout and fails with a specific, readable error.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, METHOD_NOT_FOUND

from governance import Principal, current_approval, current_principal, item_definition_hash
from governance.assertion import DEFAULT_IDENTITY_MODE
from registry.gateway.heap import HeapFreezer
from registry.gateway.identity import Headers, IdentityError, UpstreamIdentity
from registry.gateway.tracing import Tracing
from registry.schemas.items import served_prompt, served_resource, served_template

log = logging.getLogger("bastion.gateway.upstream")


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer; ``kind`` labels metrics."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Upstream(Protocol):
    name: str

    async def list_tools(self) -> list[types.Tool]: ...

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], caller: Principal, approval_id: str | None = None
    ) -> types.CallToolResult: ...

    async def list_items(self, kinds: set[str]) -> dict[str, str]:
        """What it serves of the given kinds (prompt, resource, resourceTemplate): `kind:name` → content hash."""
        ...

    async def get_prompt(self, name: str, arguments: dict[str, str], caller: Principal) -> types.GetPromptResult: ...

    async def read_resource(self, uri: str, caller: Principal) -> types.ReadResourceResult: ...

    async def close(self) -> None: ...


def item_hashes(
    prompts: list[types.Prompt], resources: list[types.Resource], templates: list[types.ResourceTemplate]
) -> dict[str, str]:
    out = {f"prompt:{p.name}": item_definition_hash("prompt", served_prompt(p)) for p in prompts}
    out |= {f"resource:{r.name}": item_definition_hash("resource", served_resource(r)) for r in resources}
    out |= {f"resourceTemplate:{t.name}": item_definition_hash("resourceTemplate", served_template(t))
            for t in templates}  # fmt: skip
    return out


def contents_of(uri: str, parts: Any) -> types.ReadResourceResult:
    """An MCPServer's `read_resource` answer (str or bytes parts) as the MCP result."""
    contents: list[types.TextResourceContents | types.BlobResourceContents] = []
    for part in parts:
        if isinstance(part.content, bytes):
            blob = base64.b64encode(part.content).decode()
            contents.append(types.BlobResourceContents(uri=uri, blob=blob, mime_type=part.mime_type, _meta=part.meta))
        else:
            contents.append(
                types.TextResourceContents(uri=uri, text=part.content, mime_type=part.mime_type, _meta=part.meta)
            )
    return types.ReadResourceResult(contents=contents)


def error_result(message: str, **structured: Any) -> types.CallToolResult:
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=message)],
        structured_content=structured or None,
        is_error=True,
    )


class BuiltinUpstream:
    """An MCPServer of ours, called in-process with the caller set for its own rules."""

    def __init__(self, name: str, server: MCPServer[Any], heap: HeapFreezer | None = None) -> None:
        self.name = name
        self.server = server
        self.heap = heap or HeapFreezer(enabled=False)

    async def list_tools(self) -> list[types.Tool]:
        return await self.server.list_tools()

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], caller: Principal, approval_id: str | None = None
    ) -> types.CallToolResult:
        token, approval = current_principal.set(caller), current_approval.set(approval_id)
        try:
            result = await self.server.call_tool(tool, arguments)
        except ToolError as exc:
            return error_result(str(exc))
        except MCPError as exc:
            return error_result(exc.error.message)
        except Exception:
            log.exception("builtin %s tool %s failed", self.name, tool)
            return error_result(f"{self.name} tool {tool} failed unexpectedly; the error is in the gateway log")
        finally:
            current_approval.reset(approval)
            current_principal.reset(token)
        self.heap.after_call(self.name, tool)
        if isinstance(result, types.CallToolResult):
            return result
        return error_result(f"{self.name} tool {tool} asked for input, which the gateway does not relay")

    async def list_items(self, kinds: set[str]) -> dict[str, str]:
        return item_hashes(
            await self.server.list_prompts() if "prompt" in kinds else [],
            await self.server.list_resources() if "resource" in kinds else [],
            await self.server.list_resource_templates() if "resourceTemplate" in kinds else [],
        )

    async def get_prompt(self, name: str, arguments: dict[str, str], caller: Principal) -> types.GetPromptResult:
        token = current_principal.set(caller)
        try:
            result = await self.server.get_prompt(name, arguments)
        except MCPError:
            raise
        except Exception as exc:
            # The SDK's prompt errors name the argument that is missing or wrong: the caller needs them.
            raise MCPError(code=INVALID_PARAMS, message=f"{self.name} prompt {name}: {str(exc)[:300]}") from None
        finally:
            current_principal.reset(token)
        if not isinstance(result, types.GetPromptResult):
            raise UpstreamError("error", f"{self.name} prompt {name} asked for input, which the gateway does not relay")
        return result

    async def read_resource(self, uri: str, caller: Principal) -> types.ReadResourceResult:
        token = current_principal.set(caller)
        try:
            parts = await self.server.read_resource(uri)
        except MCPError:
            raise
        except ResourceError as exc:
            raise MCPError(code=INVALID_PARAMS, message=f"{self.name}: {str(exc)[:300]}") from None
        except Exception:
            log.exception("builtin %s failed reading a resource", self.name)
            raise UpstreamError(
                "error", f"{self.name} failed reading the resource; the error is in the gateway log"
            ) from None
        finally:
            current_principal.reset(token)
        if isinstance(parts, types.InputRequiredResult):
            raise UpstreamError("error", f"{self.name} asked for input, which the gateway does not relay")
        return contents_of(uri, parts)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The builtin's own lifespan, as a standalone server would run it: started with the gateway, and
        finished on a graceful stop (the inference feature log writes what it still holds)."""
        lifespan = self.server.settings.lifespan
        if lifespan is None:
            yield
            return
        async with lifespan(self.server):
            yield

    async def close(self) -> None:
        return None


# The caller's headers for the requests of the call in progress: (the upstream they are for, their maker).
# The SDK client sends each request in a task that carries the calling task's context, so what a call sets
# here reaches its own requests only; the long-lived connection's own requests (initialize, the event
# stream) run in a task that clears it.
_call_headers: ContextVar[tuple[RemoteUpstream, Headers] | None] = ContextVar("bastion_upstream_headers", default=None)


class _CallerHeaders(httpx2.Auth):
    """Adds the caller's headers of the call in progress (if any) to each request to one upstream."""

    def __init__(self, upstream: RemoteUpstream) -> None:
        self.upstream = upstream

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        current = _call_headers.get()
        if current is not None and current[0] is self.upstream:
            request.headers.update(current[1]())
        yield request


def _with_trace(headers: Headers | None, trace: dict[str, str]) -> Headers:
    if headers is None:
        return lambda: trace
    identity = headers
    return lambda: {**identity(), **trace}


class RemoteUpstream:
    """A Streamable HTTP MCP server elsewhere, reached through one long-lived client.

    The client is opened by a task of the gateway's task group (anyio requires a context to be
    entered and exited by the same task) and reused by every call; after a transport failure
    it is dropped and the next call opens a new one.
    """

    def __init__(
        self,
        name: str,
        url: str,
        token: str | None,
        timeout: float,
        identity: UpstreamIdentity | None = None,
        identity_mode: str = DEFAULT_IDENTITY_MODE,
        tracing: Tracing | None = None,
    ) -> None:
        self.name = name
        self.tracing = tracing or Tracing(None)
        self.url = url
        self.timeout = timeout
        self.identity = identity
        self.identity_mode = identity_mode
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(timeout), auth=_CallerHeaders(self))
        self.task_group: anyio.abc.TaskGroup | None = None
        self._client: Client | None = None
        self._release: anyio.Event | None = None
        self._lock = anyio.Lock()

    async def _hold(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        _call_headers.set(None)  # started from a call's task: the connection itself speaks for no caller
        release = anyio.Event()
        transport = streamable_http_client(self.url, http_client=self.http, terminate_on_close=True)
        try:
            async with Client(transport, mode="auto", cache=None) as client:
                self._client, self._release = client, release
                task_status.started()
                await release.wait()
        except Exception as exc:
            if self._client is None:
                raise  # failed to open: the caller of start() sees it
            log.info("connection to upstream %s ended: %s", self.name, exc)
        finally:
            if self._release is release:
                self._client, self._release = None, None

    async def _connected(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                if self.task_group is None:
                    raise UpstreamError("error", f"upstream {self.name}: the gateway is not running")
                await self.task_group.start(self._hold)
        assert self._client is not None
        return self._client

    def _drop(self) -> None:
        if self._release is not None:
            self._release.set()

    async def _run(self, what: str, work: Any) -> Any:
        try:
            with anyio.fail_after(self.timeout):
                client = await self._connected()
                return await work(client)
        except TimeoutError:
            raise UpstreamError(
                "timeout", f"upstream {self.name} did not answer {what} within {self.timeout:g} s"
            ) from None
        except UpstreamError:
            raise
        except MCPError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                self._drop()  # the next call reconnects
                raise UpstreamError("unreachable", f"upstream {self.name} is unreachable (connection closed)") from None
            raise UpstreamError("protocol", f"upstream {self.name} refused {what}: {exc.error.message}") from None
        except BaseException as exc:
            if not isinstance(exc, Exception | BaseExceptionGroup):
                raise
            self._drop()
            first: BaseException = exc
            while isinstance(first, BaseExceptionGroup):
                first = first.exceptions[0]
            if isinstance(first, httpx2.TransportError | OSError):
                raise UpstreamError(
                    "unreachable", f"upstream {self.name} is unreachable ({type(first).__name__})"
                ) from None
            if isinstance(first, MCPError):
                raise UpstreamError("protocol", f"upstream {self.name} refused {what}: {first.error.message}") from None
            raise UpstreamError("error", f"upstream {self.name} failed during {what}: {first}") from None

    async def list_tools(self) -> list[types.Tool]:
        async def work(client: Client) -> list[types.Tool]:
            tools: list[types.Tool] = []
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

        result: list[types.Tool] = await self._run("tools/list", work)
        return result

    async def call_tool(
        self, tool: str, arguments: dict[str, Any], caller: Principal, approval_id: str | None = None
    ) -> types.CallToolResult:
        async def work(client: Client, trace: dict[str, str] | None) -> types.CallToolResult:
            return await client.call_tool(tool, arguments, meta=trace or None)  # type: ignore[arg-type]

        try:
            result: types.CallToolResult = await self._as_caller(f"tools/call {tool}", caller, approval_id, work)
        except UpstreamError as exc:
            return error_result(str(exc), error=exc.kind, upstream=self.name)
        return result

    async def _as_caller(self, what: str, caller: Principal, approval_id: str | None, work: Any) -> Any:
        """Run ``work(client, trace)`` with the caller's identity headers and the trace context of the current
        (upstream) span — in `_meta` (``trace``) and on its HTTP requests. Fails with UpstreamError."""
        trace = self.tracing.headers() if self.tracing.on else None
        headers: Headers | None = None
        if self.identity is not None:
            try:
                headers = await self.identity.headers(self.identity_mode, caller, self.name, approval_id)
            except IdentityError as exc:
                raise UpstreamError("identity", str(exc)) from None
        if trace:
            headers = _with_trace(headers, trace)
        token = _call_headers.set((self, headers) if headers is not None else None)
        try:
            return await self._run(what, lambda client: work(client, trace))
        finally:
            _call_headers.reset(token)

    async def list_items(self, kinds: set[str]) -> dict[str, str]:
        async def pages(fetch: Any, attr: str) -> list[Any]:
            found: list[Any] = []
            cursor: str | None = None
            while True:
                try:
                    page = await fetch(cursor=cursor)
                except MCPError as exc:
                    if exc.error.code == METHOD_NOT_FOUND:
                        return found  # it does not serve this kind (any more): each registered one is missing
                    raise
                found.extend(getattr(page, attr))
                cursor = page.next_cursor
                if not cursor:
                    return found

        async def work(client: Client) -> dict[str, str]:
            return item_hashes(
                await pages(client.list_prompts, "prompts") if "prompt" in kinds else [],
                await pages(client.list_resources, "resources") if "resource" in kinds else [],
                await pages(client.list_resource_templates, "resource_templates") if "resourceTemplate" in kinds
                else [],
            )  # fmt: skip

        result: dict[str, str] = await self._run("prompts/resources list", work)
        return result

    async def get_prompt(self, name: str, arguments: dict[str, str], caller: Principal) -> types.GetPromptResult:
        async def work(client: Client, trace: dict[str, str] | None) -> types.GetPromptResult:
            return await client.get_prompt(name, arguments, meta=trace or None)  # type: ignore[arg-type]

        result: types.GetPromptResult = await self._as_caller(f"prompts/get {name}", caller, None, work)
        return result

    async def read_resource(self, uri: str, caller: Principal) -> types.ReadResourceResult:
        async def work(client: Client, trace: dict[str, str] | None) -> types.ReadResourceResult:
            return await client.read_resource(uri, meta=trace or None)  # type: ignore[arg-type]

        result: types.ReadResourceResult = await self._as_caller("resources/read", caller, None, work)
        return result

    async def close(self) -> None:
        self._drop()
        await self.http.aclose()
