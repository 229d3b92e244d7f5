"""A chat client for tests: the /v1/chat API over HTTP, its server-sent events parsed, and a scripted tool call."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx


def tool_call(name: str, args: dict[str, Any] | str, call_id: str = "call_1") -> dict[str, Any]:
    """One scripted assistant reply that calls a tool (OpenAI format)."""
    return tool_calls((name, args, call_id))


def tool_calls(*calls: tuple[str, dict[str, Any] | str, str]) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": cid,
                "type": "function",
                "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
            }
            for name, args, cid in calls
        ],
    }


def parse_sse(text: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        kind, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if data is not None:
            assert data["type"] == kind, (kind, data)
            events.append(data)
    return events


@dataclass
class Turn:
    status_code: int
    events: list[dict[str, Any]] = field(default_factory=list)
    body: Any = None

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    @property
    def done(self) -> dict[str, Any]:
        found = self.of("done")
        assert len(found) == 1, self.events
        return found[0]

    @property
    def text(self) -> str:
        return "".join(e["delta"] for e in self.of("text"))

    @property
    def results(self) -> list[dict[str, Any]]:
        return self.of("tool_result")

    @property
    def proposals(self) -> list[dict[str, Any]]:
        found = self.of("approval_required")
        return found[-1]["proposals"] if found else []

    @property
    def notices(self) -> list[dict[str, Any]]:
        return self.of("notice")


class ChatClient:
    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)

    def new(self, scope: list[str] | None = None, title: str = "") -> str:
        response = self.http.post("/v1/chat/sessions", json={"title": title, "scope": scope})
        assert response.status_code == 201, response.text
        sid: str = response.json()["id"]
        return sid

    def _stream(self, path: str, body: dict[str, Any]) -> Turn:
        response = self.http.post(path, json=body)
        if response.status_code != 200:
            return Turn(response.status_code, body=response.json())
        assert response.headers["content-type"].startswith("text/event-stream")
        return Turn(200, parse_sse(response.text))

    def send(self, sid: str, content: str) -> Turn:
        return self._stream(f"/v1/chat/sessions/{sid}/messages", {"content": content})

    def call(self, sid: str, tool: str, arguments: dict[str, Any]) -> Turn:
        return self._stream(f"/v1/chat/sessions/{sid}/messages", {"call": {"tool": tool, "arguments": arguments}})

    def decide(self, sid: str, decisions: dict[str, str] | None = None, all: str | None = None) -> Turn:
        return self._stream(f"/v1/chat/sessions/{sid}/decisions", {"decisions": decisions or {}, "all": all})

    def get(self, sid: str) -> httpx.Response:
        return self.http.get(f"/v1/chat/sessions/{sid}")
