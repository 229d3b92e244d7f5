"""A scripted OpenAI-compatible server, so LLM code paths run for real without an LLM (tests, `bastion eval chat`).

`/v1/chat/completions` answers from a script (a list of replies, or a function of the request);
`/v1/embeddings` returns deterministic hashed bag-of-words vectors. Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

Reply = str | dict[str, Any]  # text, or a full assistant message (e.g. with tool_calls)


class ScriptedLLM:
    def __init__(self) -> None:
        self.replies: list[Reply | Callable[[dict[str, Any]], Reply]] = []
        self.requests: list[dict[str, Any]] = []
        self.embedding_requests: list[dict[str, Any]] = []
        self.fail_next = 0  # answer 500 to this many chat requests
        # Answers requests that offer no tools (e.g. the Text-to-SQL agent behind a chat), leaving the script
        # to the requests that do.
        self.without_tools: Callable[[dict[str, Any]], Reply] | None = None
        # Answers when the script is empty (e.g. many concurrent sessions, each request judged on its own).
        self.respond: Callable[[dict[str, Any]], Reply] | None = None
        self.usage = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}

    def script(self, *replies: Reply | Callable[[dict[str, Any]], Reply]) -> None:
        self.replies.extend(replies)

    def _next(self, body: dict[str, Any]) -> Reply:
        if self.without_tools is not None and "tools" not in body:
            return self.without_tools(body)
        if not self.replies:
            return self.respond(body) if self.respond is not None else "I have nothing scripted for this."
        reply = self.replies.pop(0)
        return reply(body) if callable(reply) else reply

    async def chat(self, request: Request) -> JSONResponse | StreamingResponse:
        body = await request.json()
        self.requests.append(body)
        if self.fail_next:
            self.fail_next -= 1
            return JSONResponse({"error": {"message": "scripted failure", "type": "server_error"}}, status_code=500)
        reply = self._next(body)
        message: dict[str, Any] = {"role": "assistant", "content": reply} if isinstance(reply, str) else reply
        payload = {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": dict(self.usage),
        }
        if body.get("stream"):
            delta = dict(message)
            if delta.get("tool_calls"):
                delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(delta["tool_calls"])]
            finish = "tool_calls" if delta.get("tool_calls") else "stop"

            def events() -> Iterator[str]:
                chunk = {**payload, "object": "chat.completion.chunk",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
                chunk.pop("usage")
                yield f"data: {json.dumps(chunk)}\n\n"
                if (body.get("stream_options") or {}).get("include_usage"):
                    usage = {**payload, "object": "chat.completion.chunk", "choices": []}
                    yield f"data: {json.dumps(usage)}\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return JSONResponse(payload)

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.embedding_requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": hashed_vector(t).tolist()} for i, t in enumerate(texts)
        ]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


def hashed_vector(text: str, dim: int = 64) -> np.ndarray[Any, Any]:
    vector = np.zeros(dim, dtype=np.float32)
    for word in text.lower().split():
        vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % dim] += 1.0
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def scripted_app(llm: ScriptedLLM) -> Starlette:
    """The OpenAI-compatible routes (`/v1/chat/completions`, `/v1/embeddings`) answered by `llm`."""
    return Starlette(
        routes=[
            Route("/v1/chat/completions", llm.chat, methods=["POST"]),
            Route("/v1/embeddings", llm.embeddings, methods=["POST"]),
        ]
    )
