"""Contracts of the clients' API (/v1): catalog and authorisation checks."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from governance import Classification, Environment
from registry.schemas.base import ApiModel, rule
from registry.schemas.items import PromptArgument


class AuthzCheckRequest(ApiModel):
    server: str = Field(min_length=1, max_length=200)
    # At most one of tool, prompt and resource: without one, the question is about the server.
    tool: str | None = Field(None, min_length=1, max_length=64)
    prompt: str | None = Field(None, min_length=1, max_length=64, description="A prompt of the server, by name")
    resource: str | None = Field(
        None, min_length=1, max_length=64, description="A resource or resource template of the server, by name"
    )
    # Admins may ask on behalf of someone else.
    user: str | None = Field(None, min_length=1, max_length=200)
    groups: list[str] | None = None
    clearance: Classification | None = None

    @model_validator(mode="after")
    def _one_item(self) -> AuthzCheckRequest:
        named = [f for f in ("tool", "prompt", "resource") if getattr(self, f) is not None]
        if len(named) > 1:
            raise rule(f"ask about one of tool, prompt and resource at a time (got {' and '.join(named)})")
        return self


class AuthzCheckResponse(ApiModel):
    allowed: bool
    requires_approval: bool
    reasons: list[str]
    denied_by: str | None = None
    subject: str


class CatalogTool(ApiModel):
    name: str
    namespaced_name: str
    description: str
    requires_approval: bool
    reasons: list[str]


class _CatalogItem(ApiModel):
    name: str
    namespaced_name: str = Field(description="`short__name`, as the gateway lists it")
    title: str | None = None
    description: str
    requires_approval: bool
    reasons: list[str]


class CatalogPrompt(_CatalogItem):
    arguments: list[PromptArgument] = Field(default_factory=list)


class CatalogResource(_CatalogItem):
    uri: str
    mime_type: str | None = None


class CatalogResourceTemplate(_CatalogItem):
    uri_template: str
    mime_type: str | None = None


class CatalogServer(ApiModel):
    name: str
    short_name: str
    title: str | None
    description: str
    version: str
    team: str
    support_channel: str
    environment: Environment
    classification: Classification
    endpoint: str
    reasons: list[str]
    tools: list[CatalogTool]
    prompts: list[CatalogPrompt] = Field(
        default_factory=list, description="Prompts of the published version you may get"
    )
    resources: list[CatalogResource] = Field(default_factory=list, description="Resources you may read")
    resource_templates: list[CatalogResourceTemplate] = Field(
        default_factory=list, description="Resource templates you may read through"
    )


class CatalogOut(ApiModel):
    subject: str
    servers: list[CatalogServer]
    next_cursor: str | None = None


class WhoAmI(ApiModel):
    subject: str
    groups: list[str]
    clearance: Classification
    roles: list[str]
    client_id: str | None
    auth_method: Literal["jwt", "api_key", "system"]
    teams: list[str] = Field(default_factory=list, description="Teams you belong to (you own their servers)")
