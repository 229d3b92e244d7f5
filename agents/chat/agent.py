"""The chat agent: a LangGraph tool-calling loop over the gateway's tools, with the user in the loop.

    START → (resume: decide) → model ⇄ tools → END

- `model` streams the LLM's answer (native tool calling) and counts tokens.
- `tools` runs each requested call through the gateway as the user, within the turn's limits and the
  session's scope. A call that needs the user's confirmation becomes a *proposal* and the turn pauses; a call
  parked for another approver pauses with its approval id.
- `decide` (a later request) applies the user's decisions to the proposals — approved calls run exactly once,
  rejected ones never — and the loop continues.

The agent holds no state between requests: the caller passes the stored history and persists what comes back.
Events (text deltas, tool calls and results, proposals, notices) go to the LangGraph stream writer.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypedDict, cast

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel, Field

from agents.chat.prompt import SYSTEM, fence, llm_messages, scope_line
from agents.chat.settings import ChatSettings
from agents.chat.toolbox import GatewayToolbox, Status, ToolOutcome, ToolSpec

log = logging.getLogger(__name__)

TurnStatus = Literal["complete", "awaiting_approval", "limit", "error"]
ApprovalLookup = Callable[[str], Awaitable[str]]  # approval id → pending | approved | rejected | expired | consumed


class Proposal(BaseModel):
    """A call waiting for a decision: `confirm` (the user decides) or `parked` (another approver decides)."""

    id: str
    call_id: str  # the model's tool-call id (the tool message answers it)
    tool: str
    arguments: dict[str, Any]
    kind: Literal["confirm", "parked"]
    prompt: str | None = None
    approval_id: str | None = None
    request_state: str | None = None


class CallRecord(BaseModel):
    id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    status: Status
    detail: str = ""
    rule: str | None = None
    approval_id: str | None = None
    request_state: str | None = None
    latency_ms: float | None = None


class TurnResult(BaseModel):
    status: TurnStatus
    messages: list[dict[str, Any]] = Field(default_factory=list)
    calls: list[CallRecord] = Field(default_factory=list)
    pending: list[Proposal] = Field(default_factory=list)
    tokens: int = 0
    tool_calls: int = 0
    sources: list[dict[str, Any]] = Field(default_factory=list)  # the tool results this turn's answer rests on
    llm_ms: float = 0.0  # time spent waiting for the LLM


class State(TypedDict, total=False):
    history: list[dict[str, Any]]  # the stored conversation before this request
    new: list[dict[str, Any]]  # messages added by this request
    calls: list[CallRecord]
    pending: list[Proposal]
    decisions: dict[str, bool] | None
    tokens: int
    tool_calls: int
    steps: int
    stop: str | None
    denied: dict[str, str]
    direct: bool  # the user called a tool directly (/call): no model step follows
    has_model: bool  # an LLM is configured


MAX_ARGUMENT_BYTES = 262_144  # one tool call's arguments, as JSON
MAX_ARGUMENT_DEPTH = 64  # as the API's JsonObject
SHOWN_ARGUMENTS = 2_000  # characters of arguments echoed in a tool_call event


def argument_problem(arguments: Any) -> str | None:
    """Why arguments cannot be sent, stored or shown (too large or too deep), or None."""
    if not isinstance(arguments, dict):
        return "tool arguments must be a JSON object"
    stack: list[tuple[Any, int]] = [(arguments, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_ARGUMENT_DEPTH:
            return f"the arguments nest deeper than {MAX_ARGUMENT_DEPTH} levels"
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    size = len(json.dumps(arguments, default=str))
    if size > MAX_ARGUMENT_BYTES:
        return f"the arguments are {size:,} bytes of JSON; at most {MAX_ARGUMENT_BYTES:,}"
    return None


def shown_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """Arguments for an event line: as they are, or a bounded preview."""
    text = json.dumps(arguments, default=str, separators=(",", ":"))
    return arguments if len(text) <= SHOWN_ARGUMENTS else {"_preview": text[:SHOWN_ARGUMENTS] + "…"}


def bounded(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def notice(code: str, message: str) -> dict[str, Any]:
    return {"role": "notice", "code": code, "content": message}


def _entry(state: State) -> str:
    if state.get("decisions") is not None:
        return "decide"
    return "tools" if state.get("direct") else "model"


def _after_decide(state: State) -> str:
    return END if state["pending"] or not state.get("has_model") or state.get("direct") else "model"


def _after_model(state: State) -> str:
    last = state["new"][-1] if state["new"] else {}
    # Even when stopping, every requested call gets its answer ("not run") from the tools node.
    return "tools" if last.get("role") == "assistant" and last.get("tool_calls") else END


def _after_tools(state: State) -> str:
    stopped = state["pending"] or state.get("stop") or state.get("direct") or not state.get("has_model")
    return END if stopped else "model"


def _agent(config: RunnableConfig) -> ChatAgent:
    agent: ChatAgent = config["configurable"]["agent"]
    return agent


async def _decide_node(state: State, config: RunnableConfig) -> State:
    return await _agent(config)._decide(state)


async def _model_node(state: State, config: RunnableConfig) -> State:
    return await _agent(config)._model(state)


async def _tools_node(state: State, config: RunnableConfig) -> State:
    return await _agent(config)._tools(state)


@functools.cache
def compiled_graph() -> Any:
    """Compiled once per process (compiling costs ~10 ms); each run names its agent in the config."""
    graph: StateGraph[State] = StateGraph(State)
    graph.add_node("decide", _decide_node)
    graph.add_node("model", _model_node)
    graph.add_node("tools", _tools_node)
    graph.add_conditional_edges(START, _entry, ["decide", "model", "tools"])
    graph.add_conditional_edges("decide", _after_decide, ["model", END])
    graph.add_conditional_edges("model", _after_model, ["tools", END])
    graph.add_conditional_edges("tools", _after_tools, ["model", END])
    return graph.compile()


class ChatAgent:
    """One turn at a time: `run(...)` yields events and ends with the TurnResult."""

    def __init__(
        self,
        toolbox: GatewayToolbox,
        settings: ChatSettings,
        chat_model: Any | None,
        *,
        scope: list[str] | None = None,
        approval_status: ApprovalLookup | None = None,
    ) -> None:
        self.toolbox = toolbox
        self.settings = settings
        self.chat_model = chat_model
        self.scope = scope
        self.approval_status = approval_status
        self._structured: dict[str, dict[str, Any]] = {}
        self.graph = compiled_graph()

    # -- the graph ---------------------------------------------------------------------------------

    async def run(
        self,
        history: list[dict[str, Any]],
        *,
        user: str | None = None,
        call: tuple[str, dict[str, Any]] | None = None,
        pending: list[Proposal] | None = None,
        decisions: dict[str, bool] | None = None,
        direct: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events of one request; the last is {"type": "result", "result": TurnResult}.

        `user`: a message for the model. `call`: a tool called directly (no model). `decisions`: the user's
        answers to `pending` proposals (`direct`: they came from a direct call, so no model step follows)."""
        new: list[dict[str, Any]] = [{"role": "user", "content": user}] if user is not None else []
        if call is not None:
            name, arguments = call
            shown = json.dumps(arguments, separators=(",", ":"), default=str)
            new = [
                {
                    "role": "user",
                    "content": f"/call {name} {bounded(shown, 2000)}",
                    "direct": True,
                    "call": {"tool": name, "arguments": arguments},
                },
                {
                    "role": "assistant",
                    "content": "",
                    "direct": True,
                    "tool_calls": [{"id": f"call_{uuid.uuid4().hex[:12]}", "name": name, "args": arguments}],
                },
            ]
            direct = True
        state: State = {
            "history": history,
            "new": new,
            "calls": [],
            "pending": list(pending or []),
            "decisions": decisions,
            "tokens": 0,
            "tool_calls": 0,
            "steps": 0,
            "stop": None,
            "denied": {},
            "direct": direct,
            "has_model": self.chat_model is not None,
        }
        final: State = state
        config: RunnableConfig = {"configurable": {"agent": self}}
        async for mode, chunk in self.graph.astream(state, config, stream_mode=["custom", "values"]):
            if mode == "custom":
                yield cast(dict[str, Any], chunk)
            else:
                final = cast(State, chunk)
        status: TurnStatus = "complete"
        if final.get("pending"):
            status = "awaiting_approval"
        elif final.get("stop") in ("tool_calls", "tokens", "steps"):
            status = "limit"
        elif final.get("stop") == "llm":
            status = "error"
        result = TurnResult(
            status=status,
            messages=final["new"],
            calls=final["calls"],
            pending=final["pending"],
            tokens=final["tokens"],
            tool_calls=final["tool_calls"],
            sources=[source for c in final["calls"] if (source := self._source(c)) is not None],
            llm_ms=round(sum(m.get("llm_ms", 0.0) for m in final["new"] if m.get("role") == "assistant"), 2),
        )
        yield {"type": "result", "result": result}

    # -- decide: the user's answers to proposals -----------------------------------------------------

    async def _decide(self, state: State) -> State:
        emit = get_stream_writer()
        decisions = state.get("decisions") or {}
        new, calls = list(state["new"]), list(state["calls"])
        made = state["tool_calls"]
        still: list[Proposal] = []
        for proposal in state["pending"]:
            outcome: ToolOutcome | None = None
            if proposal.kind == "confirm":
                if proposal.id not in decisions:
                    still.append(proposal)
                    continue
                approve = decisions[proposal.id]
                emit({"type": "decision", "id": proposal.id, "tool": proposal.tool, "approved": approve})
                assert proposal.request_state is not None
                outcome = await self.toolbox.confirm(proposal.tool, proposal.arguments, proposal.request_state, approve)
                if not approve and outcome.status in ("rejected", "error"):
                    outcome = ToolOutcome(
                        status="rejected",
                        text="The user rejected this call; it did not run.",
                        latency_ms=outcome.latency_ms,
                    )
            else:
                assert proposal.approval_id is not None
                verdict = await self.approval_status(proposal.approval_id) if self.approval_status else "pending"
                if verdict == "pending":
                    still.append(proposal)
                    continue
                if verdict == "approved":
                    outcome = await self.toolbox.call_approved(proposal.tool, proposal.arguments, proposal.approval_id)
                else:
                    outcome = ToolOutcome(
                        status="rejected",
                        approval_id=proposal.approval_id,
                        text=f"Approval {proposal.approval_id} was {verdict}; the call did not run.",
                    )
                emit(
                    {
                        "type": "decision",
                        "id": proposal.id,
                        "tool": proposal.tool,
                        "approved": verdict == "approved",
                        "approval_id": proposal.approval_id,
                    }
                )
            self._finish_call(
                proposal.id, proposal.call_id, proposal.tool, proposal.arguments, outcome, new, calls, emit
            )
            if outcome.status not in ("rejected", "not_run"):
                made += 1
        if still:
            emit({"type": "approval_required", "proposals": [self._shown(p) for p in still]})
        return {"new": new, "calls": calls, "pending": still, "tool_calls": made}

    # -- model ---------------------------------------------------------------------------------------

    async def _model(self, state: State) -> State:
        emit = get_stream_writer()
        assert self.chat_model is not None
        specs = await self._specs()
        system = SYSTEM + "\n\n" + scope_line(self.scope, sorted(specs))
        messages = llm_messages([*state["history"], *state["new"]], system)
        bound = self.chat_model.bind_tools([s.openai() for s in specs.values()]) if specs else self.chat_model
        full: Any = None
        started = time.perf_counter()
        try:
            async for chunk in bound.astream(messages):
                full = chunk if full is None else full + chunk
                if isinstance(chunk.content, str) and chunk.content:
                    emit({"type": "text", "delta": chunk.content})
        except Exception as exc:  # the LLM is an external service: report, never raise
            # What the provider said stays in the server log: it may name accounts, keys or internal hosts.
            log.warning("chat: the LLM call failed: %s", bounded(str(exc), 1000))
            status = getattr(exc, "status_code", None)
            failure = (
                f"the LLM call failed ({type(exc).__name__}{f', HTTP {status}' if status else ''}); see the server log"
            )
            emit({"type": "notice", "code": "llm_unavailable", "message": failure})
            return {"new": [*state["new"], notice("llm_unavailable", failure)], "stop": "llm"}
        content = "" if full is None else (full.content if isinstance(full.content, str) else str(full.content))
        usage = getattr(full, "usage_metadata", None) or {}
        used = int(usage.get("total_tokens") or 0) or (sum(len(str(m.content)) for m in messages) + len(content)) // 4
        tokens = state["tokens"] + used
        calls = [
            {"id": c.get("id") or f"call_{uuid.uuid4().hex[:12]}", "name": c["name"], "args": c.get("args") or {}}
            for c in (getattr(full, "tool_calls", None) or [])
        ]
        # Streamed arguments are parsed leniently (partial JSON); the agent runs only what parses strictly.
        raw = {c.get("id"): c.get("args") for c in (getattr(full, "tool_call_chunks", None) or [])}
        for c in calls:
            text = raw.get(c["id"])
            if isinstance(text, str) and text.strip():
                try:
                    json.loads(text)
                except ValueError:
                    c["invalid"] = "the arguments are not valid JSON"
        for c in calls:
            if "invalid" not in c and (problem := argument_problem(c["args"])) is not None:
                # Neither sent, nor stored, nor echoed: the call is answered "not run" with the reason.
                c["invalid"], c["args"] = problem, {"_omitted": problem}
        for bad in getattr(full, "invalid_tool_calls", None) or []:
            calls.append(
                {
                    "id": bad.get("id") or f"call_{uuid.uuid4().hex[:12]}",
                    "name": str(bad.get("name") or "?"),
                    "args": {},
                    "invalid": bounded(str(bad.get("error") or "arguments are not valid JSON")),
                }
            )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": content,
            "llm_ms": round((time.perf_counter() - started) * 1000, 1),
        }
        if calls:
            message["tool_calls"] = calls
        update: State = {"new": [*state["new"], message], "tokens": tokens, "steps": state["steps"] + 1}
        stop = None
        if tokens > self.settings.max_tokens:
            stop = "tokens"
        elif state["steps"] + 1 > self.settings.max_tool_calls + 2:
            stop = "steps"
        if stop is not None:
            update["stop"] = stop
            if not calls:  # with calls, the tools node answers them "not run" and says why
                update["new"] = [*update["new"], self._limit(stop, emit)]
        return update

    # -- tools ---------------------------------------------------------------------------------------

    async def _tools(self, state: State) -> State:
        emit = get_stream_writer()
        new, calls = list(state["new"]), list(state["calls"])
        pending = list(state["pending"])
        denied = dict(state["denied"])
        made = state["tool_calls"]
        stop = state.get("stop")
        requested = new[-1]["tool_calls"]
        for call in requested:
            record_id = uuid.uuid4().hex
            name, args = str(call["name"]), call.get("args") or {}
            emit({"type": "tool_call", "id": record_id, "tool": name, "arguments": shown_arguments(args)})
            outcome = self._refusal(call, denied, made, stop)
            if outcome is None:
                made += 1
                outcome = await self.toolbox.call(name, args)
                if outcome.status in ("denied", "unavailable"):
                    denied[name] = outcome.rule or "denied"
            elif outcome.rule == "limit.tool_calls":
                stop = "tool_calls"
            if outcome.status in ("awaiting_user", "awaiting_approval"):
                proposal = Proposal(
                    id=record_id,
                    call_id=call["id"],
                    tool=name,
                    arguments=args,
                    kind="confirm" if outcome.status == "awaiting_user" else "parked",
                    prompt=outcome.prompt or outcome.text,
                    approval_id=outcome.approval_id,
                    request_state=outcome.request_state,
                )
                pending.append(proposal)
                calls.append(self._record(record_id, call["id"], name, args, outcome))
                emit(
                    {
                        "type": "tool_result",
                        "id": record_id,
                        "tool": name,
                        "status": outcome.status,
                        "latency_ms": outcome.latency_ms,
                        "approval_id": outcome.approval_id,
                    }
                )
                continue
            self._finish_call(record_id, call["id"], name, args, outcome, new, calls, emit)
        if pending:
            emit({"type": "approval_required", "proposals": [self._shown(p) for p in pending]})
        update: State = {
            "new": new,
            "calls": calls,
            "pending": pending,
            "tool_calls": made,
            "denied": denied,
            "stop": stop,
        }
        if not pending and stop in ("tool_calls", "tokens", "steps"):
            update["new"] = [*new, self._limit(stop, emit)]
        return update

    def _refusal(self, call: dict[str, Any], denied: dict[str, str], made: int, stop: str | None) -> ToolOutcome | None:
        """Why the agent will not send this call to the gateway at all (None: send it)."""
        name = str(call["name"])
        if stop in ("tokens", "steps"):
            return ToolOutcome(
                status="not_run", text=f"Not run: this turn reached its {stop} limit.", rule=f"limit.{stop}"
            )
        if call.get("invalid"):
            return ToolOutcome(status="not_run", text=f"Not run: the tool call was malformed ({call['invalid']}).")
        if (problem := argument_problem(call.get("args"))) is not None:
            return ToolOutcome(status="not_run", text=f"Not run: {problem}.")
        if self.scope is not None and name.split("__", 1)[0] not in self.scope:
            return ToolOutcome(
                status="not_run",
                rule="scope",
                text=f"Not run: {bounded(name, 80)} is outside this session's scope ({', '.join(self.scope)}).",
            )
        if name in denied:
            return ToolOutcome(
                status="not_run",
                rule=denied[name],
                text=f"Not retried: {bounded(name, 80)} was refused earlier in this turn (rule {denied[name]}).",
            )
        if made >= self.settings.max_tool_calls or stop == "tool_calls":
            return ToolOutcome(
                status="not_run",
                rule="limit.tool_calls",
                text=f"Not run: this turn reached its limit of {self.settings.max_tool_calls} tool "
                "calls (BASTION_CHAT_MAX_TOOL_CALLS).",
            )
        return None

    # -- helpers -------------------------------------------------------------------------------------

    async def _specs(self) -> dict[str, ToolSpec]:
        specs = await self.toolbox.tools()
        if self.scope is None:
            return specs
        return {n: s for n, s in specs.items() if s.server in self.scope}

    def _record(
        self, record_id: str, call_id: str, tool: str, args: dict[str, Any], outcome: ToolOutcome
    ) -> CallRecord:
        return CallRecord(
            id=record_id,
            call_id=call_id,
            tool=tool,
            arguments=args,
            status=outcome.status,
            detail=bounded(outcome.text, 1000),
            rule=outcome.rule,
            approval_id=outcome.approval_id,
            request_state=outcome.request_state,
            latency_ms=outcome.latency_ms,
        )

    def _finish_call(
        self,
        record_id: str,
        call_id: str,
        tool: str,
        args: dict[str, Any],
        outcome: ToolOutcome,
        new: list[dict[str, Any]],
        calls: list[CallRecord],
        emit: Callable[[Any], None],
    ) -> None:
        calls.append(self._record(record_id, call_id, tool, args, outcome))
        if outcome.structured is not None:
            self._structured[record_id] = outcome.structured
        text = outcome.text
        if outcome.status == "ok" and outcome.structured is not None and not text:
            text = json.dumps(outcome.structured, default=str)
        new.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "name": tool,
                "status": outcome.status,
                "content": fence(tool, outcome.status, text, self.settings.max_result_chars),
            }
        )
        emit(
            {
                "type": "tool_result",
                "id": record_id,
                "tool": tool,
                "status": outcome.status,
                "latency_ms": outcome.latency_ms,
                "rule": outcome.rule,
                "detail": bounded(text, 600),
            }
        )

    def _source(self, call: CallRecord) -> dict[str, Any] | None:
        if call.status != "ok":
            return None
        source: dict[str, Any] = {"tool": call.tool, "call": call.id}
        found = self._structured.get(call.id) or {}
        for key in ("sql", "tables", "source"):
            if found.get(key):
                source[key] = found[key]
        return source

    def _shown(self, p: Proposal) -> dict[str, Any]:
        return {
            "id": p.id,
            "tool": p.tool,
            "arguments": p.arguments,
            "kind": p.kind,
            "prompt": p.prompt,
            "approval_id": p.approval_id,
        }

    def _limit(self, stop: str | None, emit: Callable[[Any], None]) -> dict[str, Any]:
        what = {
            "tool_calls": f"its limit of {self.settings.max_tool_calls} tool calls (BASTION_CHAT_MAX_TOOL_CALLS)",
            "tokens": f"its limit of {self.settings.max_tokens:,} tokens (BASTION_CHAT_MAX_TOKENS)",
            "steps": f"its limit of {self.settings.max_tool_calls + 2} model steps",
        }.get(stop or "", "a limit")
        message = notice(f"limit.{stop}", f"Stopped: this turn reached {what}. Ask again to continue.")
        emit({"type": "notice", "code": message["code"], "message": message["content"]})
        return message
