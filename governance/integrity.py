"""Content hashes of tool definitions, so a silently changed tool can be detected."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Stable JSON bytes: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def tool_definition_hash(
    name: str,
    description: str | None,
    input_schema: dict[str, Any],
    output_schema: dict[str, Any] | None,
    annotations: dict[str, Any] | None,
) -> str:
    """SHA-256 over every part of a tool definition a model or a policy depends on."""
    payload = {
        "name": name,
        "description": description or "",
        "inputSchema": input_schema,
        "outputSchema": output_schema,
        "annotations": annotations or {},
    }
    return "sha256:" + hashlib.sha256(canonical_json(payload)).hexdigest()


ITEM_KINDS = ("prompt", "resource", "resourceTemplate")


def item_definition_hash(kind: str, definition: dict[str, Any]) -> str:
    """SHA-256 over a prompt, resource or resource template definition (its wire shape, without a hash):
    the text a model reads and the names and URIs a client addresses it by."""
    if kind not in ITEM_KINDS:
        raise ValueError(f"unknown item kind {kind!r}; known: {', '.join(ITEM_KINDS)}")
    payload = {k: v for k, v in definition.items() if k != "contentHash" and v is not None}
    return "sha256:" + hashlib.sha256(canonical_json({"kind": kind, **payload})).hexdigest()
