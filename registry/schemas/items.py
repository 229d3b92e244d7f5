"""Prompts, resources and resource templates as a version records them (MCP shapes), and as upstreams serve them.

A version pins each one by a content hash, as it pins tools: the gateway withholds a prompt or resource whose
upstream serves a different definition. Names follow the tool-name rule (they are namespaced the same way,
`short__name`, and a policy addresses them by name); URIs and URI templates must be absolute.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from governance import item_definition_hash
from governance.uritemplate import TemplateError, UriTemplate, unsafe_reason
from registry.schemas.base import ApiModel, rule
from registry.schemas.names import TOOL_NAME_PATTERN, check_tool_name

MAX_URI = 2000
# An absolute URI: a scheme, then printable ASCII (RFC 3986 §3.1; anything else is percent-encoded).
URI_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*:[!-~]+$"
_URI = re.compile(URI_PATTERN)
# RFC 6570 expressions: an optional operator, then comma-separated variable names with optional modifiers.
_EXPRESSION = re.compile(
    r"\{([+#./;?&]?)([A-Za-z0-9_%.]+(?::[1-9][0-9]{0,3}|\*)?(?:,[A-Za-z0-9_%.]+(?::[1-9][0-9]{0,3}|\*)?)*)\}"
)


def check_uri(value: str, what: str = "uri") -> str:
    # `uri` publishes its pattern and length: breaking them is a schema error. A template's expansion, and
    # what the gateway would refuse to read (governance.uritemplate), are rules beyond the schema (`rule`).
    refuse = ValueError if what == "uri" else rule
    if len(value) > MAX_URI:
        raise refuse(f"{what} is longer than {MAX_URI} characters")
    if not _URI.match(value):
        raise refuse(f"{what} must be an absolute URI (a scheme such as file: or docs:, printable ASCII, no spaces)")
    unsafe = unsafe_reason(value)
    if unsafe is not None:
        raise rule(f"{what} is not readable through the gateway: {unsafe}")
    return value


def check_uri_template(value: str) -> str:
    """An RFC 6570 template: absolute once expanded, every `{...}` a well-formed expression, braces balanced,
    printable ASCII, and one the gateway's matcher reads (governance.uritemplate)."""
    check_uri(_EXPRESSION.sub("x", value), "uriTemplate")
    rest = _EXPRESSION.sub("", value)
    if "{" in rest or "}" in rest:
        raise rule("uriTemplate has an unbalanced or malformed {expression} (RFC 6570)")
    if not _EXPRESSION.search(value):
        raise rule("uriTemplate has no {variable}: register a fixed URI as a resource instead")
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", value):
        raise rule("uriTemplate must start with a fixed scheme (e.g. docs://…), not a {variable}")
    try:
        UriTemplate(value)
    except TemplateError as exc:
        raise rule(f"uriTemplate: {exc}") from None
    return value


# RFC 6838 type/subtype, with optional `; name=value` parameters: nothing else a model could read as text.
_TOKEN = r"[A-Za-z0-9!#$&^_.+\-]{1,64}"
MIME_TYPE_PATTERN = rf"^{_TOKEN}/{_TOKEN}(?:\s*;\s*{_TOKEN}=(?:{_TOKEN}|\"[A-Za-z0-9 _.\-]{{0,64}}\"))*$"
_MIME_TYPE = re.compile(MIME_TYPE_PATTERN)


def check_mime_type(value: str | None) -> str | None:
    if value is not None and not _MIME_TYPE.fullmatch(value):
        raise rule("mimeType must be a media type such as text/markdown or text/plain; charset=utf-8")
    return value


class _Named(ApiModel):
    name: str = Field(json_schema_extra={"pattern": TOOL_NAME_PATTERN})
    title: str | None = Field(None, max_length=200)
    description: str = Field("", max_length=10_000)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_tool_name(value)

    def wire(self) -> dict[str, Any]:
        """The MCP wire shape (camelCase, absent fields left out): what is hashed and what is served."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"content_hash"})


class PromptArgument(ApiModel):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = Field(None, max_length=2_000)
    required: bool = False


class PromptDefinition(_Named):
    arguments: list[PromptArgument] = Field(default_factory=list, max_length=32)

    @field_validator("arguments")
    @classmethod
    def _unique(cls, value: list[PromptArgument]) -> list[PromptArgument]:
        names = [a.name for a in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise rule(f"duplicate argument name(s): {', '.join(duplicates)}")
        return value

    def pin(self) -> str:
        return item_definition_hash("prompt", self.wire())


class ResourceDefinition(_Named):
    uri: str = Field(json_schema_extra={"pattern": URI_PATTERN, "maxLength": MAX_URI})
    mime_type: str | None = Field(None, max_length=200)

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        return check_uri(value)

    @field_validator("mime_type")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return check_mime_type(value)

    def pin(self) -> str:
        return item_definition_hash("resource", self.wire())


class ResourceTemplateDefinition(_Named):
    uri_template: str = Field(json_schema_extra={"maxLength": MAX_URI})
    mime_type: str | None = Field(None, max_length=200)

    @field_validator("uri_template")
    @classmethod
    def _template(cls, value: str) -> str:
        return check_uri_template(value)

    @field_validator("mime_type")
    @classmethod
    def _mime(cls, value: str | None) -> str | None:
        return check_mime_type(value)

    def pin(self) -> str:
        return item_definition_hash("resourceTemplate", self.wire())


class PromptOut(PromptDefinition):
    content_hash: str


class ResourceOut(ResourceDefinition):
    content_hash: str


class ResourceTemplateOut(ResourceTemplateDefinition):
    content_hash: str


def stored(definition: PromptDefinition | ResourceDefinition | ResourceTemplateDefinition) -> dict[str, Any]:
    """What a version keeps of one: its wire shape and its pin."""
    return {**definition.wire(), "contentHash": definition.pin()}


# --- what upstreams serve (MCP SDK types), in the same wire shapes -------------------------------


def served_prompt(prompt: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": prompt.name, "description": prompt.description or ""}
    if prompt.title:
        out["title"] = prompt.title
    out["arguments"] = [
        {k: v for k, v in {"name": a.name, "description": a.description, "required": bool(a.required)}.items()
         if v is not None}
        for a in (prompt.arguments or [])
    ]  # fmt: skip
    return out


def served_resource(resource: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": resource.name, "description": resource.description or "", "uri": str(resource.uri)}
    if resource.title:
        out["title"] = resource.title
    if resource.mime_type:
        out["mimeType"] = resource.mime_type
    return out


def served_template(template: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": template.name,
        "description": template.description or "",
        "uriTemplate": template.uri_template,
    }
    if template.title:
        out["title"] = template.title
    if template.mime_type:
        out["mimeType"] = template.mime_type
    return out
