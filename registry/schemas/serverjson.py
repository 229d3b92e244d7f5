"""The official MCP registry's `server.json` (schema 2025-12-11), as a pydantic model."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from registry import semver
from registry.schemas.names import check_server_name

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
OFFICIAL_META = "io.modelcontextprotocol.registry/official"
# Our own fields travel under this key, in server.json `_meta` and in registry responses.
BASTION_META = "dev.bastion/registry"

_RANGE = re.compile(r"^[\^~<>=]|[xX*](\.|$)")
_URL = re.compile(r"^(https?://\S+|\{[a-zA-Z_][a-zA-Z0-9_]*\}\S*)$")


class _Open(BaseModel):
    """Keeps fields we do not interpret, so import → export round-trips them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Repository(_Open):
    url: str
    source: str
    id: str | None = None
    subfolder: str | None = None


class KeyValueInput(_Open):
    name: str
    description: str | None = None
    is_required: bool | None = Field(None, alias="isRequired")
    is_secret: bool | None = Field(None, alias="isSecret")
    value: str | None = None
    default: str | None = None


class RemoteTransport(_Open):
    type: Literal["streamable-http", "sse"]
    url: str
    headers: list[KeyValueInput] | None = None
    variables: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not _URL.match(value):
            raise ValueError("must start with http://, https:// or a {variable}")
        return value


class Package(_Open):
    registry_type: str = Field(alias="registryType")
    identifier: str
    transport: dict[str, Any]
    version: str | None = None

    @field_validator("version")
    @classmethod
    def _version(cls, value: str | None) -> str | None:
        if value is not None and (value == "latest" or _RANGE.search(value)):
            raise ValueError("must be one specific version, not 'latest' or a range")
        return value


class Icon(_Open):
    src: str = Field(max_length=255)
    mime_type: str | None = Field(None, alias="mimeType")
    sizes: list[str] | None = None


class ServerJson(_Open):
    schema_: str | None = Field(SCHEMA_URL, alias="$schema")
    name: str
    description: str = Field(min_length=1, max_length=100)
    version: str = Field(max_length=255)
    title: str | None = Field(None, min_length=1, max_length=100)
    website_url: str | None = Field(None, alias="websiteUrl")
    repository: Repository | None = None
    icons: list[Icon] | None = None
    packages: list[Package] | None = None
    remotes: list[RemoteTransport] | None = None
    meta: dict[str, Any] | None = Field(None, alias="_meta")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_server_name(value)

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        semver.parse(value)
        return value

    def bastion_meta(self) -> dict[str, Any]:
        return dict((self.meta or {}).get(BASTION_META) or {})

    def dump(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
