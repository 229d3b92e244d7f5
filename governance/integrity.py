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
