"""Contracts of the chat API (/v1/chat): sessions, messages, tool calls, decisions."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from registry.schemas.base import ApiModel, JsonObject

MAX_MESSAGE = 20_000
MAX_ARGUMENTS = 262_144  # bytes of JSON in one direct call's arguments (the agent's own bound too)


class ChatSessionCreate(ApiModel):
    title: str = Field("", max_length=200, description="A label for the session (default: the first message).")
    scope: list[str] | None = Field(
        None,
        max_length=50,
        description="Servers (names or short names) this session may use; it can only narrow what you may use.",
    )


class DirectCall(ApiModel):
    tool: str = Field(
        ...,
        min_length=3,
        max_length=200,
        pattern=r"^[A-Za-z0-9_.-]+__[A-Za-z0-9_.-]+$",
        description="A gateway tool name, server__tool.",
    )
    arguments: JsonObject = Field(default_factory=dict, description="At most 256 KiB of JSON")

    @field_validator("arguments")
    @classmethod
    def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        size = len(json.dumps(value))
        if size > MAX_ARGUMENTS:
            raise ValueError(f"the arguments are {size:,} bytes of JSON; at most {MAX_ARGUMENTS:,}")
        return value


class ChatText(ApiModel):
    """A message for the agent."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(..., min_length=1, max_length=MAX_MESSAGE)


class ChatCall(ApiModel):
    """A tool called directly — the mode that needs no LLM."""

    model_config = ConfigDict(extra="forbid")

    call: DirectCall


class ChatDecisions(ApiModel):
    """Decisions on the session's proposed calls, by proposal id; `all` decides every one not named."""

    decisions: dict[str, Literal["approve", "reject"]] = Field(default_factory=dict, max_length=100)
    all: Literal["approve", "reject"] | None = Field(
        None, description="Approve or reject every proposal not named in `decisions`"
    )


class ChatToolCallOut(ApiModel):
    id: str
    turn: int
    tool: str
    arguments: dict[str, Any]
    status: str
    detail: str
    rule: str | None
    approval_id: str | None
    latency_ms: float | None
    created_at: datetime
    decided_at: datetime | None


class ChatMessageOut(ApiModel):
    seq: int
    role: str
    body: dict[str, Any]
    created_at: datetime


class ChatSessionOut(ApiModel):
    id: str
    owner: str
    title: str
    scope: list[str] | None
    status: str
    created_at: datetime
    updated_at: datetime


class ChatSessionDetail(ChatSessionOut):
    messages: list[ChatMessageOut]
    tool_calls: list[ChatToolCallOut]
    llm: bool = Field(description="Whether an LLM is configured (otherwise: direct tool mode only).")
