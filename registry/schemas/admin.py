"""Contracts of the admin API (/admin/v1)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from governance import Classification, Environment, ReviewDecision, ReviewKind, Role, VersionStatus
from registry import semver
from registry.schemas.base import NOT_BOOL, ApiModel, JsonObject, Name, NotNull, clean_names, rule
from registry.schemas.items import (
    PromptDefinition,
    PromptOut,
    ResourceDefinition,
    ResourceOut,
    ResourceTemplateDefinition,
    ResourceTemplateOut,
)
from registry.schemas.names import (
    SERVER_NAME_MAX,
    SERVER_NAME_MIN,
    SERVER_NAME_PATTERN,
    SHORT_NAME_PATTERN,
    TEAM_NAME_PATTERN,
    check_server_name,
    check_short_name,
    check_team_name,
)
from registry.schemas.tools import ANNOTATIONS_SCHEMA, ToolDefinition, check_annotations

Transport = Literal["builtin", "streamable-http"]
# What a remote upstream is told about the caller (governance.assertion.IDENTITY_MODES).
IdentityMode = Literal["none", "assertion", "token-exchange"]
IDENTITY_DESCRIPTION = (
    "What a remote upstream is told about the caller: `assertion` (a signed, short-lived JWT in "
    "`X-Bastion-Assertion`), `token-exchange` (an RFC 8693 token from the configured authorization server) "
    "or `none`. Builtin servers get the caller in-process."
)
# Formats the validators below enforce, with readable reasons; OpenAPI publishes them as JSON Schema.
SERVER_NAME_SCHEMA: JsonDict = {
    "pattern": SERVER_NAME_PATTERN,
    "minLength": SERVER_NAME_MIN,
    "maxLength": SERVER_NAME_MAX,
    "examples": ["dev.bastion/sql"],
}
ENDPOINT_SCHEMA: JsonDict = {"pattern": "^https?://"}
# Semantic versions, ASCII digits only (semver.parse checks the rest: build metadata, length).
_NUMBER = "(0|[1-9][0-9]{0,9})"  # semver.parse supports numbers up to 9,999,999,999
_PRERELEASE = f"({_NUMBER}|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER_PATTERN = (
    rf"^{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-{_PRERELEASE}(\.{_PRERELEASE})*)?(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$"
)


def _check_endpoint(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


def _duplicates(names: list[str]) -> str | None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    return ", ".join(repr(d[:80]) for d in dupes[:5]) if dupes else None


def unique_prompts(prompts: list[PromptDefinition]) -> list[PromptDefinition]:
    if dupes := _duplicates([p.name for p in prompts]):
        raise rule(f"duplicate prompt name(s): {dupes}")
    return prompts


def unique_resources(resources: list[ResourceDefinition]) -> list[ResourceDefinition]:
    if dupes := _duplicates([r.name for r in resources]):
        raise rule(f"duplicate resource name(s): {dupes}")
    if dupes := _duplicates([r.uri for r in resources]):
        raise rule(f"duplicate resource URI(s): {dupes}")
    return resources


def unique_templates(
    templates: list[ResourceTemplateDefinition], resources: list[ResourceDefinition] | None
) -> list[ResourceTemplateDefinition]:
    """Template names are unique, and distinct from resource names: a policy (`resource:NAME`) names either."""
    if dupes := _duplicates([t.name for t in templates]):
        raise rule(f"duplicate resource template name(s): {dupes}")
    if dupes := _duplicates(sorted({r.name for r in resources or []}) + sorted({t.name for t in templates})):
        raise rule(f"resource template name(s) {dupes} also name a resource: resources and templates share names")
    return templates


def _unique_tool_names(tools: list[ToolDefinition]) -> list[ToolDefinition]:
    names = [t.name for t in tools]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise rule(f"duplicate tool name(s): {', '.join(dupes)}")
    return tools


# --- teams -----------------------------------------------------------------------------------


class TeamBase(ApiModel):
    display_name: str | None = Field(None, max_length=200)
    support_channel: str = Field(min_length=1, max_length=200)
    members: list[Name] = Field(default_factory=list)
    groups: list[Name] = Field(default_factory=list)

    @field_validator("members", "groups")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        return clean_names(value)


class TeamCreate(TeamBase):
    name: str = Field(json_schema_extra={"pattern": TEAM_NAME_PATTERN})

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_team_name(value)


class TeamUpdate(ApiModel):
    """Fields left out stay as they are; `displayName` alone may be removed (null)."""

    display_name: str | None = Field(None, max_length=200)
    support_channel: Annotated[str | SkipJsonSchema[None], NotNull] = Field(None, min_length=1, max_length=200)
    members: Annotated[list[Name] | SkipJsonSchema[None], NotNull] = None
    groups: Annotated[list[Name] | SkipJsonSchema[None], NotNull] = None

    @field_validator("members", "groups")
    @classmethod
    def _clean(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else clean_names(value)


class TeamOut(TeamBase):
    name: str
    created_at: datetime
    updated_at: datetime


# --- servers ---------------------------------------------------------------------------------


class ServerFields(ApiModel):
    title: str | None = Field(None, min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=100)
    support_channel: str | None = Field(None, max_length=200)
    environment: Environment = Environment.DEV
    transport: Transport = "streamable-http"
    endpoint: str | None = Field(None, max_length=2000, json_schema_extra=ENDPOINT_SCHEMA)
    identity: IdentityMode = Field("assertion", description=IDENTITY_DESCRIPTION)
    classification: Classification = Classification.INTERNAL
    allowed_groups: list[Name] = Field(default_factory=list)
    website_url: str | None = Field(None, max_length=2000)
    repository: JsonObject | None = None

    @field_validator("allowed_groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return clean_names(value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _check_endpoint(value)


class ServerCreate(ServerFields):
    name: str = Field(json_schema_extra=SERVER_NAME_SCHEMA)
    short_name: str | None = Field(None, json_schema_extra={"pattern": SHORT_NAME_PATTERN})
    team: str = Field(min_length=1, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_server_name(value)

    @field_validator("short_name")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        return None if value is None else check_short_name(value)


class ServerUpdate(ApiModel):
    """Fields an owner or admin may change after creation; the name is permanent.

    Fields left out stay as they are; `title`, `supportChannel`, `endpoint` and `websiteUrl` may be removed (null).
    """

    title: str | None = Field(None, min_length=1, max_length=100)
    description: Annotated[str | SkipJsonSchema[None], NotNull] = Field(None, min_length=1, max_length=100)
    team: Annotated[str | SkipJsonSchema[None], NotNull] = Field(None, min_length=1, max_length=64)
    support_channel: str | None = Field(None, max_length=200)
    environment: Annotated[Environment | SkipJsonSchema[None], NotNull] = None
    endpoint: str | None = Field(None, max_length=2000, json_schema_extra=ENDPOINT_SCHEMA)
    identity: Annotated[IdentityMode | SkipJsonSchema[None], NotNull] = Field(None, description=IDENTITY_DESCRIPTION)
    classification: Annotated[Classification | SkipJsonSchema[None], NotNull] = None
    allowed_groups: Annotated[list[Name] | SkipJsonSchema[None], NotNull] = None
    website_url: str | None = Field(None, max_length=2000)

    @field_validator("allowed_groups")
    @classmethod
    def _groups(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else clean_names(value)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return _check_endpoint(value)


class Health(ApiModel):
    status: str
    latency_ms: float | None = None
    checked_at: datetime | None = None
    error: str | None = None


class ServerOut(ServerFields):
    name: str
    short_name: str
    team: str
    effective_support_channel: str
    latest_version: str | None = Field(None, description="The version clients get (latest approved)")
    newest_version: str | None = Field(None, description="The highest version, whatever its status")
    newest_status: VersionStatus | None = None
    health: Health
    created_at: datetime
    updated_at: datetime


# --- versions --------------------------------------------------------------------------------


class VersionCreate(ApiModel):
    version: str = Field(
        json_schema_extra={"pattern": SEMVER_PATTERN, "maxLength": semver.MAX_LENGTH, "examples": ["1.0.0"]}
    )
    tools: list[ToolDefinition] = Field(default_factory=list)
    # What else the server offers through the gateway, pinned like tools (schemas.items).
    prompts: list[PromptDefinition] = Field(default_factory=list, max_length=500)
    resources: list[ResourceDefinition] = Field(default_factory=list, max_length=500)
    resource_templates: list[ResourceTemplateDefinition] = Field(default_factory=list, max_length=500)
    # Remaining server.json fields (packages, remotes, icons, _meta), carried verbatim.
    server_json: JsonObject = Field(default_factory=dict)

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: list[PromptDefinition]) -> list[PromptDefinition]:
        return unique_prompts(value)

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: list[ResourceDefinition]) -> list[ResourceDefinition]:
        return unique_resources(value)

    @field_validator("resource_templates")
    @classmethod
    def _templates(
        cls, value: list[ResourceTemplateDefinition], info: ValidationInfo
    ) -> list[ResourceTemplateDefinition]:
        return unique_templates(value, info.data.get("resources"))

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        semver.parse(value)
        if not re.fullmatch(SEMVER_PATTERN, value):
            raise ValueError("must be a semantic version in ASCII, e.g. 1.0.0")
        return value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[ToolDefinition]) -> list[ToolDefinition]:
        return _unique_tool_names(value)


class VersionUpdate(ApiModel):
    tools: list[ToolDefinition] | None = None
    prompts: list[PromptDefinition] | None = Field(None, max_length=500)
    resources: list[ResourceDefinition] | None = Field(None, max_length=500)
    resource_templates: list[ResourceTemplateDefinition] | None = Field(None, max_length=500)
    server_json: JsonObject | None = None

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, value: list[PromptDefinition] | None) -> list[PromptDefinition] | None:
        return None if value is None else unique_prompts(value)

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: list[ResourceDefinition] | None) -> list[ResourceDefinition] | None:
        return None if value is None else unique_resources(value)

    @field_validator("resource_templates")
    @classmethod
    def _templates(
        cls, value: list[ResourceTemplateDefinition] | None, info: ValidationInfo
    ) -> list[ResourceTemplateDefinition] | None:
        return None if value is None else unique_templates(value, info.data.get("resources"))

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[ToolDefinition] | None) -> list[ToolDefinition] | None:
        return None if value is None else _unique_tool_names(value)


class ToolOut(ApiModel):
    name: str
    title: str | None = None
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None
    annotations: dict[str, Any]
    content_hash: str


class ReviewCreate(ApiModel):
    kind: ReviewKind
    decision: ReviewDecision
    notes: str = Field("", max_length=10_000)


class ReviewOut(ApiModel):
    id: int
    kind: ReviewKind
    decision: ReviewDecision
    reviewer: str
    notes: str
    created_at: datetime
    invalidated_at: datetime | None = Field(
        None, description="When a change to the server voided this review (it no longer counts)"
    )
    invalidated_reason: str | None = None


class TransitionOut(ApiModel):
    from_status: VersionStatus | None
    to_status: VersionStatus
    actor: str
    reason: str | None
    at: datetime


class VersionOut(ApiModel):
    server: str
    version: str
    status: VersionStatus
    is_latest: bool
    tools: list[ToolOut]
    prompts: list[PromptOut] = Field(default_factory=list)
    resources: list[ResourceOut] = Field(default_factory=list)
    resource_templates: list[ResourceTemplateOut] = Field(default_factory=list)
    server_json: dict[str, Any]
    reviews: list[ReviewOut]
    required_reviews: list[ReviewKind]
    missing_reviews: list[ReviewKind]
    transitions: list[TransitionOut]
    created_by: str
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None
    status_message: str | None


class VersionSummary(ApiModel):
    server: str
    version: str
    status: VersionStatus
    is_latest: bool
    tool_count: int
    prompt_count: int = 0
    resource_count: int = Field(0, description="Resources and resource templates")
    created_at: datetime
    updated_at: datetime


class StatusChange(ApiModel):
    status: VersionStatus
    reason: str | None = Field(None, max_length=500)


# --- policies --------------------------------------------------------------------------------


class PolicyPut(ApiModel):
    allowed_groups: list[Name] | None = None
    required_clearance: Classification | None = None
    require_approval: bool = False
    second_approver: bool = Field(False, description="Someone other than the caller must approve calls")
    annotations: JsonObject | None = Field(
        None,
        description="Curated MCP annotations; they override the hints the upstream serves",
        json_schema_extra=ANNOTATIONS_SCHEMA,
    )
    rate_limit_per_minute: Annotated[int, Field(ge=1, le=1_000_000), NOT_BOOL] | None = None

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_annotations(value)

    @field_validator("allowed_groups")
    @classmethod
    def _groups(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else clean_names(value)


PolicyItemKind = Literal["prompt", "resource"]


class PolicyItem(ApiModel):
    """The prompt, or the resource or resource template (they share one namespace), a policy governs."""

    kind: PolicyItemKind
    name: str


class PolicyOut(PolicyPut):
    server: str
    tool: str | None = Field(
        description="null: server-wide; a tool's name; `prompt:NAME` or `resource:NAME` for a prompt's or a "
        "resource's (or resource template's) policy, which `item` also names"
    )
    item: PolicyItem | None = Field(None, description="The prompt or resource of a per-item policy; null otherwise")
    updated_by: str
    updated_at: datetime


# --- API keys --------------------------------------------------------------------------------


class ApiKeyCreate(ApiModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$")
    role: Role = Role.USER
    groups: list[Name] = Field(default_factory=list)
    clearance: Classification | None = None
    server_scope: list[str] | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650), NOT_BOOL] | None = None

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str]) -> list[str]:
        return clean_names(value)


class ApiKeyOut(ApiModel):
    name: str
    key_id: str
    role: Role
    groups: list[str]
    clearance: Classification | None
    server_scope: list[str] | None
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret. Shown once; only its hash is stored.")


class AdminEventOut(ApiModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]


class ToolSettingPut(ApiModel):
    minutes_saved: Annotated[float, NOT_BOOL] = Field(
        ge=0, le=10_000, description="Minutes a person saves per successful call"
    )


class ToolSettingOut(ToolSettingPut):
    server: str
    tool: str
    updated_by: str
    updated_at: datetime


class ClientPolicyPut(ApiModel):
    servers: list[str] | None = Field(None, description="Servers this client may reach (null: no limit)")
    environment: Environment | None = Field(None, description="'prod' keeps this client off dev servers")
    description: str = Field("", max_length=500)


class ClientPolicyOut(ClientPolicyPut):
    client_id: str
    updated_by: str
    updated_at: datetime


class ApprovalOut(ApiModel):
    id: str
    status: str
    server: str
    tool: str
    requester: str
    requester_groups: list[str]
    client_id: str | None
    arguments: dict[str, Any]
    arguments_hash: str
    reasons: list[str]
    second_approver: bool
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    note: str | None
    consumed_at: datetime | None
    call_outcome: str | None = Field(
        None, description="Outcome of the call the approval let through (ok, error, ...), once it ran"
    )


class ApprovalDecision(ApiModel):
    ids: list[str] = Field(min_length=1, max_length=500)
    decision: Literal["approve", "reject"]
    note: str | None = Field(None, max_length=1000)


class AuditEventOut(ApiModel):
    id: int
    at: datetime
    kind: str
    subject: str
    groups: list[str]
    client_id: str | None
    origin_client_id: str | None = Field(
        None, description="The client the user came through, when the chat agent called on their behalf"
    )
    server: str | None
    tool: str | None
    arguments: dict[str, Any] | None
    arguments_hash: str | None
    decision: str
    rule: str | None
    outcome: str
    error: str | None
    latency_ms: float
    result_size: int
    approval_id: str | None
    minutes_saved: float
    protocol_version: str | None
    replica: str | None
    trace_id: str | None = Field(None, description="OpenTelemetry trace id of the request, when the gateway traces")


class TimeSavedRow(ApiModel):
    month: str = Field(description="YYYY-MM; with by=week, the month the week starts in")
    week: str | None = Field(None, description="ISO week (YYYY-Www) when grouped by week")
    team: str
    server: str
    tool: str
    calls: int
    minutes_saved: float


# --- reviews ----------------------------------------------------------------------------------------------


class ReviewQueueItem(ApiModel):
    server: str
    version: str
    team: str
    classification: Classification
    tool_count: int
    prompt_count: int = 0
    resource_count: int = Field(0, description="Resources and resource templates")
    submitted_by: str
    submitted_at: datetime
    required_reviews: list[ReviewKind]
    missing_reviews: list[ReviewKind]
    reviewed_by: list[str]
    can_review: bool = Field(description="Whether the caller may review it")
    cannot_review_reason: str | None = Field(None, description="Why not (separation of duties)")


class FieldChange(ApiModel):
    field: str
    before: Any = None
    after: Any = None


class LintFindingOut(ApiModel):
    field: str
    rule: str
    message: str


class ToolChange(ApiModel):
    name: str
    change: Literal["added", "removed", "changed", "unchanged"]
    before_hash: str | None = None
    after_hash: str | None = None
    fields: list[FieldChange] = Field(default_factory=list)
    lint: list[LintFindingOut] = Field(default_factory=list, description="Poisoning-lint findings on its texts now")


ItemKind = Literal["prompt", "resource", "resourceTemplate"]


class ItemChange(ToolChange):
    """A prompt, resource or resource template against the previous approved version (fields in wire names)."""

    kind: ItemKind


class VersionDiff(ApiModel):
    server: str
    version: str
    status: VersionStatus
    against: str | None = Field(description="The previous approved version compared with; null for a first version")
    tools: list[ToolChange]
    prompts: list[ItemChange] = Field(default_factory=list)
    resources: list[ItemChange] = Field(default_factory=list)
    resource_templates: list[ItemChange] = Field(default_factory=list)
