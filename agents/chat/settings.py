"""Settings of the chat agent (BASTION_CHAT_*); the LLM is configured by BASTION_LLM_* as everywhere else."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CLIENT_ID = "bastion-chat"


class ChatSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BASTION_CHAT_", extra="ignore", env_file=".env")

    max_tool_calls: int = Field(8, ge=1, le=200, description="Tool calls the agent may make in one turn.")
    max_tokens: int = Field(32_000, ge=200, description="LLM tokens (prompt + completion) one turn may use.")
    call_timeout: float = Field(60.0, gt=0, le=3600, description="Seconds one tool call may take.")
    retention_days: float = Field(30.0, gt=0, description="Sessions idle longer than this are deleted.")
    gateway_url: str | None = Field(
        None,
        description="Where the chat service reaches the gateway (default: this server's own /mcp). "
        "Behind a load balancer, set this server's local address.",
    )
    max_concurrent_turns: int = Field(4, ge=1, le=100, description="Chat turns one user may have running at once.")
    max_result_chars: int = Field(12_000, ge=500, description="Characters of one tool result shown to the LLM.")
