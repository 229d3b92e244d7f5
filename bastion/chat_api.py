"""/v1/chat: the chat agent over HTTP (server-sent events), with sessions kept in the registry database.

The agent calls tools only through this server's gateway, with the caller's own credential (audited under
the client id `bastion-chat`). Each request runs one turn — a message, a direct tool call, or decisions on
proposed calls — streams its events, and stores what it added before the stream ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import AsyncIterator, Generator
from typing import Annotated, Any

import anyio
import anyio.abc
import httpx2
from anyio.streams.memory import MemoryObjectSendStream
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from agents.chat.agent import ChatAgent, Proposal, TurnResult
from agents.chat.settings import CLIENT_ID, ChatSettings
from agents.chat.toolbox import GatewayToolbox, ToolboxPool
from embeddings.settings import LLMSettings
from governance import Principal, redact
from registry.api.deps import AuthenticatedRoute, Caller, DbSession, bearer_scheme
from registry.api.errors import error_responses
from registry.auth.internal import INTERNAL_CLIENT_HEADER, header_value
from registry.context import RegistryContext
from registry.db.models import ChatSession
from registry.errors import Conflict, Invalid, RegistryError
from registry.gateway import dbio
from registry.schemas.chat import (
    ChatCall,
    ChatDecisions,
    ChatSessionCreate,
    ChatSessionDetail,
    ChatSessionOut,
    ChatText,
)
from registry.schemas.errors import ErrorOut
from registry.services import chat as store
from registry.services.common import MAX_LIMIT
from registry.settings import RegistrySettings

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/chat",
    tags=["chat"],
    dependencies=[Depends(bearer_scheme)],
    route_class=AuthenticatedRoute,
    responses=error_responses(401),
)
SessionId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$", description="Session id")]
NO_LLM = (
    "No LLM configured (BASTION_LLM_BASE_URL, BASTION_LLM_MODEL): direct tool mode only — "
    'call a tool with {"call": {"tool": "server__tool", "arguments": {...}}} (in the REPL: /call server__tool {json}).'
)
_SSE = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


class _InternalClientAuth(httpx2.Auth):
    """Every request to the gateway carries the user's credential and a fresh proof bound to it."""

    def __init__(self, settings: RegistrySettings, token: str) -> None:
        self.settings = settings
        self.token = token

    def auth_flow(self, request: httpx2.Request) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        request.headers[INTERNAL_CLIENT_HEADER] = header_value(self.settings, CLIENT_ID, self.token)
        yield request


class TooManyTurns(RegistryError):
    status = 429
    code = "too_many_turns"


class ChatRuntime:
    """What every chat request shares: settings, the LLM client, the gateway connections, the running turns.

    A turn runs as a task of the runtime, not of the HTTP request: a client that goes away does not stop a
    call half-way, and the turn is stored whatever happens to the stream. One turn per session runs at a time
    and at most `max_concurrent_turns` per user (claimed synchronously, so two requests cannot both win).
    """

    def __init__(self, ctx: RegistryContext, settings: ChatSettings | None = None, llm: LLMSettings | None = None):
        self.ctx = ctx
        self.settings = settings or ChatSettings()
        self.llm = llm or LLMSettings()
        self.gateway_url = (self.settings.gateway_url or ctx.settings.effective_public_url).rstrip("/")
        if not self.gateway_url.endswith("/mcp"):
            self.gateway_url += "/mcp"
        self.pool = ToolboxPool(self.toolbox)
        self.running: dict[str, str] = {}  # session id → owner
        self._tg: anyio.abc.TaskGroup | None = None
        self._model: Any = None

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(self.pool.run)
            tg.start_soon(self.prune_forever)
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def chat_model(self) -> Any | None:
        if not self.llm.configured:
            return None
        if self._model is None:
            from langchain_openai import ChatOpenAI

            key = self.llm.api_key.get_secret_value() if self.llm.api_key else "not-needed"
            self._model = ChatOpenAI(
                model=self.llm.model,
                base_url=self.llm.base_url,
                api_key=key,
                timeout=self.llm.timeout,
                max_retries=1,
                temperature=0,
                stream_usage=True,
            )
        return self._model

    def claim(self, session_id: str, owner: str) -> bool:
        """Mark a turn of this session running (False: one already is). No await: check and set are one step."""
        if session_id in self.running:
            return False
        if sum(1 for who in self.running.values() if who == owner) >= self.settings.max_concurrent_turns:
            raise TooManyTurns(
                f"you have {self.settings.max_concurrent_turns} chat turns running "
                "(BASTION_CHAT_MAX_CONCURRENT_TURNS); wait for one to finish",
                field="session_id",
            )
        self.running[session_id] = owner
        return True

    def release(self, session_id: str) -> None:
        self.running.pop(session_id, None)

    def toolbox(self, token: str) -> GatewayToolbox:
        auth = _InternalClientAuth(self.ctx.settings, token)
        return GatewayToolbox(self.gateway_url, token, auth=auth, timeout=self.settings.call_timeout)

    def start(
        self, turn: _Turn, chat: ChatSession, history: list[dict[str, Any]], run: dict[str, Any]
    ) -> StreamingResponse:
        """Run the turn as the runtime's task; the response relays its events while the client listens."""
        if self._tg is None:
            self.release(chat.id)
            raise RuntimeError("the chat runtime is not running")
        send, receive = anyio.create_memory_object_stream[str](max_buffer_size=math.inf)
        self._tg.start_soon(turn.execute, chat, history, run, send)

        async def relay() -> AsyncIterator[str]:
            async with receive:
                async for item in receive:
                    yield item

        return StreamingResponse(relay(), media_type="text/event-stream", headers=_SSE)

    async def prune_forever(self, every: float = 3600.0) -> None:
        while True:
            try:
                removed = await dbio.transaction(self.ctx.db, lambda s: store.prune(s, self.settings.retention_days))
                if removed:
                    log.info(
                        "chat: pruned %d session(s) idle for more than %g days", removed, self.settings.retention_days
                    )
            except Exception:
                log.exception("chat: pruning old sessions failed")
            await anyio.sleep(every)


def runtime(request: Request) -> ChatRuntime:
    value: ChatRuntime = request.app.state.chat
    return value


Runtime = Annotated[ChatRuntime, Depends(runtime)]


def sse(event: dict[str, Any]) -> str:
    return f"event: {event['type']}\ndata: {json.dumps(event, default=str, separators=(',', ':'))}\n\n"


def _detail(session: Session, chat: ChatSession, rt: ChatRuntime) -> ChatSessionDetail:
    base = ChatSessionOut.model_validate(chat).model_dump()
    return ChatSessionDetail(
        **base,
        messages=store.messages_out(session, chat.id),
        tool_calls=store.calls_out(session, chat.id),
        llm=rt.llm.configured,
    )


@router.post(
    "/sessions",
    response_model=ChatSessionOut,
    status_code=201,
    summary="Start a chat session",
    responses=error_responses(422),
)
def create_session(session: DbSession, caller: Caller, body: ChatSessionCreate) -> ChatSessionOut:
    return ChatSessionOut.model_validate(store.create_session(session, caller, body.title, body.scope))


@router.get(
    "/sessions",
    response_model=list[ChatSessionOut],
    summary="Your chat sessions, newest first",
    responses=error_responses(422),
)
def list_sessions(
    session: DbSession, caller: Caller, limit: int = Query(50, ge=1, le=MAX_LIMIT)
) -> list[ChatSessionOut]:
    return store.list_sessions(session, caller, limit)


@router.get(
    "/sessions/{session_id}",
    response_model=ChatSessionDetail,
    responses=error_responses(404, 422),
    summary="A session with its messages and tool calls (yours; admins: any, recorded)",
)
def get_session(session: DbSession, caller: Caller, rt: Runtime, session_id: SessionId) -> ChatSessionDetail:
    return _detail(session, store.get_session(session, caller, session_id), rt)


def _token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    return header.partition(" ")[2].strip()


def storable(messages: list[dict[str, Any]], pii_keys: list[str]) -> list[dict[str, Any]]:
    """Messages as stored: tool-call arguments redacted like the audit's (the running turn had them whole)."""
    out = []
    for message in messages:
        stored = message
        if message.get("role") == "assistant" and message.get("tool_calls"):
            calls = [{**c, "args": redact(c.get("args") or {}, pii_keys)} for c in message["tool_calls"]]
            stored = {**message, "tool_calls": calls}
        elif message.get("role") == "user" and isinstance(message.get("call"), dict):
            call = message["call"]
            arguments = redact(call.get("arguments") or {}, pii_keys)
            shown = json.dumps(arguments, separators=(",", ":"), default=str)
            shown = shown if len(shown) <= 2000 else shown[:2000] + "…"
            stored = {
                **message,
                "call": {**call, "arguments": arguments},
                "content": f"/call {call.get('tool')} {shown}",
            }
        out.append(stored)
    return out


class _Turn:
    """One request's turn: claims the session, loads it, runs the agent, stores the outcome."""

    def __init__(self, rt: ChatRuntime, caller: Principal, token: str, session_id: str) -> None:
        self.rt, self.caller, self.token, self.session_id = rt, caller, token, session_id

    async def claim_and_load(self) -> tuple[ChatSession, list[dict[str, Any]], list[Proposal], bool]:
        """The caller's session, claimed for this turn: 404 before 409 (another's session is not revealed)."""
        if not self.rt.claim(self.session_id, self.caller.subject):
            await self.load()  # 404 when it is not the caller's
            raise Conflict("a turn is already running in this session; wait for it to finish", field="session_id")
        try:
            return await self.load()
        except BaseException:
            self.rt.release(self.session_id)
            raise

    async def load(self) -> tuple[ChatSession, list[dict[str, Any]], list[Proposal], bool]:
        def work(s: Session) -> tuple[ChatSession, list[dict[str, Any]], list[Proposal], bool]:
            chat = store.get_session(s, self.caller, self.session_id, for_write=True)
            s.expunge(chat)
            history = store.history(s, chat.id)
            direct_ids = {
                c["id"]
                for m in history
                if m.get("role") == "assistant" and m.get("direct")
                for c in m.get("tool_calls", [])
            }
            pending = [
                Proposal(
                    id=c.id,
                    call_id=c.call_id,
                    tool=c.tool,
                    arguments=c.pending_arguments or {},
                    kind="confirm" if c.status == "awaiting_user" else "parked",
                    prompt=c.detail,
                    approval_id=c.approval_id,
                    request_state=c.request_state,
                )
                for c in store.waiting_calls(s, chat.id)
            ]
            direct = bool(pending) and all(p.call_id in direct_ids for p in pending)
            return chat, history, pending, direct

        return await dbio.read(self.rt.ctx.db, work)

    async def save(self, chat: ChatSession, result: TurnResult, extra: list[dict[str, Any]]) -> str:
        status = "awaiting_approval" if result.pending else "idle"
        keys = list(self.rt.ctx.settings.audit_pii_keys)

        def work(s: Session) -> None:
            row = store.get_session(s, self.caller, chat.id, for_write=True)
            turn = store.current_turn(s, row.id) + (0 if result.pending and not result.messages else 1)
            store.append(s, row, storable([*extra, *result.messages], keys))
            store.record_calls(s, row, turn, result.calls, keys)
            row.status = status

        with anyio.CancelScope(shield=True):
            await dbio.transaction(self.rt.ctx.db, work)
        return status

    async def approval_status(self, approval_id: str) -> str:
        return await dbio.read(self.rt.ctx.db, lambda s: store.approval_status(s, self.caller.subject, approval_id))

    async def execute(
        self,
        chat: ChatSession,
        history: list[dict[str, Any]],
        run: dict[str, Any],
        send: MemoryObjectSendStream[str],
    ) -> None:
        async def emit(event: dict[str, Any]) -> None:
            # A client that went away: the turn goes on and is stored.
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                await send.send(sse(event))

        extra: list[dict[str, Any]] = []  # messages of this turn the agent did not write
        result = TurnResult(status="complete")
        try:
            async with send:
                await emit({"type": "session", "id": chat.id, "scope": chat.scope, "llm": self.rt.llm.configured})
                try:
                    if run.pop("no_llm", False):
                        await emit({"type": "notice", "code": "no_llm", "message": NO_LLM})
                        extra = [*extra, run["user_message"], {"role": "notice", "code": "no_llm", "content": NO_LLM}]
                    else:
                        result = await self._agent_turn(chat, history, run, emit)
                except Exception as exc:
                    log.exception("chat turn failed in session %s", chat.id)
                    message = f"the turn failed: {type(exc).__name__}; see the server log"
                    await emit({"type": "notice", "code": "error", "message": message})
                    extra = [*extra, {"role": "notice", "code": "error", "content": message}]
                    result = TurnResult(status="error")
                status = await self.save(chat, result, extra)
                await emit(
                    {
                        "type": "done",
                        "status": result.status,
                        "session_status": status,
                        "tokens": result.tokens,
                        "tool_calls": result.tool_calls,
                        "pending": [p.id for p in result.pending],
                        "sources": result.sources,
                        "llm_ms": result.llm_ms,
                    }
                )
        finally:
            self.rt.release(chat.id)

    async def _agent_turn(
        self, chat: ChatSession, history: list[dict[str, Any]], run: dict[str, Any], emit: Any
    ) -> TurnResult:
        model = None if run.get("call") is not None else self.rt.chat_model()
        async with self.rt.pool.lease(self.token) as box:
            agent = ChatAgent(box, self.rt.settings, model, scope=chat.scope, approval_status=self.approval_status)
            result = TurnResult(status="error")
            async for event in agent.run(history, **run):
                if event["type"] == "result":
                    result = event["result"]
                else:
                    await emit(event)
        return result


@router.post(
    "/sessions/{session_id}/messages",
    summary="Send a message (or a direct tool call); the turn streams as server-sent events",
    response_class=StreamingResponse,
    responses={
        **error_responses(404, 409, 422),
        429: {"model": ErrorOut, "description": "Too many of your turns are running"},
        200: {
            "content": {"text/event-stream": {}},
            "description": "Events: session, text, tool_call, tool_result, approval_required, notice, done",
        },
    },
)
async def post_message(
    request: Request, caller: Caller, rt: Runtime, session_id: SessionId, body: ChatText | ChatCall
) -> StreamingResponse:
    turn = _Turn(rt, caller, _token(request), session_id)
    chat, history, pending, _ = await turn.claim_and_load()
    try:
        run: dict[str, Any] = {}
        if pending:
            # The user moved on without deciding: the proposals lapse, and the conversation stays well-formed.
            lapsed = await _lapse(rt, caller, chat, pending)
            history = [*history, *lapsed]
        if isinstance(body, ChatCall):
            run = {"call": (body.call.tool, body.call.arguments)}
        elif rt.chat_model() is None:
            run = {"no_llm": True, "user_message": {"role": "user", "content": body.content}}
        else:
            run = {"user": body.content}
        return rt.start(turn, chat, history, run)
    except BaseException:
        rt.release(chat.id)
        raise


async def _lapse(
    rt: ChatRuntime, caller: Principal, chat: ChatSession, pending: list[Proposal]
) -> list[dict[str, Any]]:
    from agents.chat.agent import CallRecord
    from agents.chat.prompt import fence

    text = "Not run: the user sent a new message without deciding on this call."
    messages = [
        {"role": "tool", "tool_call_id": p.call_id, "name": p.tool, "status": "not_run",
         "content": fence(p.tool, "not_run", text, 500)}
        for p in pending
    ]  # fmt: skip

    def work(s: Session) -> None:
        row = store.get_session(s, caller, chat.id, for_write=True)
        records = [
            CallRecord(id=p.id, call_id=p.call_id, tool=p.tool, arguments=p.arguments, status="not_run",
                       detail="lapsed: the user sent a new message without deciding")
            for p in pending
        ]  # fmt: skip
        store.append(s, row, messages)
        store.record_calls(s, row, store.current_turn(s, row.id), records, rt.ctx.settings.audit_pii_keys)
        row.status = "idle"

    await dbio.transaction(rt.ctx.db, work)
    return messages


@router.post(
    "/sessions/{session_id}/decisions",
    summary="Approve or reject proposed calls (one, several, or all); parked calls resume once decided",
    response_class=StreamingResponse,
    responses={
        **error_responses(404, 409, 422),
        429: {"model": ErrorOut, "description": "Too many of your turns are running"},
        200: {"content": {"text/event-stream": {}}, "description": "The resumed turn, as for messages"},
    },
)
async def post_decisions(
    request: Request, caller: Caller, rt: Runtime, session_id: SessionId, body: ChatDecisions
) -> StreamingResponse:
    turn = _Turn(rt, caller, _token(request), session_id)
    chat, history, pending, direct = await turn.claim_and_load()
    try:
        if not pending:
            raise Conflict("nothing in this session is waiting for a decision", field="decisions")
        ids = {p.id for p in pending}
        unknown = [k for k in body.decisions if k not in ids]
        if unknown:
            raise Invalid(f"no proposal {unknown[0][:40]!r} waits in this session", field="decisions")
        parked = [p for p in pending if p.kind == "parked" and p.id in body.decisions]
        if parked:
            raise Invalid(
                f"proposal {parked[0].id} waits for another approver (approval {parked[0].approval_id}); "
                "it resumes once they decide — send no decision for it",
                field="decisions",
            )
        decisions = {k: v == "approve" for k, v in body.decisions.items()}
        for p in pending:
            if p.kind == "confirm" and body.all is not None:
                decisions.setdefault(p.id, body.all == "approve")
        return rt.start(turn, chat, history, {"pending": pending, "decisions": decisions, "direct": direct})
    except BaseException:
        rt.release(chat.id)
        raise


@router.get(
    "/sessions/{session_id}/tools",
    summary="The tools this session may use now (your access, its scope)",
    responses={**error_responses(404, 422), 502: {"model": ErrorOut, "description": "The gateway did not answer"}},
)
async def session_tools(request: Request, caller: Caller, rt: Runtime, session_id: SessionId) -> list[dict[str, Any]]:
    turn = _Turn(rt, caller, _token(request), session_id)
    chat, _, _, _ = await turn.load()
    try:
        async with rt.pool.lease(turn.token) as box:
            specs = await box.tools()
    except Exception as exc:
        raise GatewayUnavailable(f"the gateway did not list tools: {type(exc).__name__}") from None
    return [
        {"name": t.name, "description": t.description.split("\n", 1)[0][:300], "readOnly": t.read_only}
        for t in specs.values()
        if chat.scope is None or t.server in chat.scope
    ]


class GatewayUnavailable(RegistryError):
    status = 502
    code = "gateway_unavailable"
