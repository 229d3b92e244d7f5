"""JSON for the gateway's MCP transport: orjson where it gives the same messages, the standard library otherwise.

The SDK's Streamable HTTP transport (`mcp.server._streamable_http_modern`, mcp 2.3) decodes each request body
with `json.loads` and encodes each reply with `json.dumps`, ASCII-escaped. Encoding a 1,000-URL `dedupe` reply
(312 KB) took 2.3 ms that way against 0.2 ms with orjson; decoding the 330 KB inline-embeddings `rerank` request
took 11 ms against 2 ms here (with the checks below). The SDK has no setting for it, so `install()` gives that
module an object with the two functions it uses:

- `loads`: orjson; a document orjson refuses but the standard library reads (`NaN`, lone surrogate escapes) is
  read by the standard library, so the transport accepts and refuses exactly what it did (too deep a document
  still raises what the SDK turns into a parse error). orjson reads an integer beyond 64 bits as a float, a
  different number: a document with a run of 19 digits (not a fraction's) goes to the standard library first.
- `dumps`: orjson, UTF-8 instead of `\\uXXXX` escapes (the same JSON text to any parser), except U+2028,
  U+2029 and U+0085, which stay escaped: Python's `splitlines` and SSE clients built on it (httpx-sse before
  0.4.2) break lines there, and a reply goes out as an SSE frame when the client asks for a stream. What orjson
  cannot encode (a lone surrogate, an integer beyond 64 bits) goes to the standard library, as before.
- Depth: documents nested more than 255 levels are refused (a JSON-RPC parse error). orjson reads 1,024 levels
  and the standard library stopped near 900 depending on the stack in use; what got through went on to
  recurse in the audit (found by review: a 1,000-level argument was served and its audit row cut down).

`install()` replaces only the standard `json` module it expects to find there; if a new SDK release has moved
things, it changes nothing and says so in the log (the transport then runs as shipped, only slower). Tested in
`tests/test_gateway_wirejson.py`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import orjson

log = logging.getLogger("bastion.gateway")


# A run of 19 digits not after a '.': possibly an integer beyond 64 bits, which orjson reads as a float (a
# different number). Found with one `translate` (digits → '0', '.' kept, the rest → ' ') and one substring search:
# ~0.3 ms for 330 KB, where a regular expression took 4-7 ms. Digits after a '.' are a fraction (floats written
# with 17+ digits are common), so they do not count; a long run inside a string does, which only costs speed.
_SHAPE = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E if b == 0x2E else 0x20 for b in range(256))
_RUN = b"0" * 19


def _may_hold_a_long_integer(raw: bytes) -> bool:
    shape = raw.translate(_SHAPE)
    return b" " + _RUN in shape or shape.startswith(_RUN)


MAX_DEPTH = 255  # orjson's encoding limit, which the audit's argument hash and size use


class TooDeep(ValueError):
    """A document nested deeper than MAX_DEPTH (a ValueError: the SDK answers a JSON-RPC parse error)."""


def loads(data: str | bytes | bytearray) -> Any:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _may_hold_a_long_integer(raw):
        value = json.loads(data)
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = json.loads(data)
    # Depth cannot exceed the number of opening brackets; a document with more is measured by encoding it again,
    # which orjson refuses beyond 255 levels (one C pass, where walking it in Python cost more than parsing).
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        try:
            orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except orjson.JSONEncodeError as exc:  # too deep, or what orjson cannot encode (then walked, rarely)
            if "Recursion" in str(exc) or not _depth_within(value, MAX_DEPTH):
                raise TooDeep(f"the document is nested more than {MAX_DEPTH} levels deep") from None
    return value


def _depth_within(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return True


def dumps(obj: Any, **options: Any) -> str:
    if set(options) - {"separators"}:  # a use this module was not written for: as the caller asked
        return json.dumps(obj, **options)
    try:
        text = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=options.get("separators") or (",", ":"))
    if not text.isascii():  # line breaks to some line readers (Python's splitlines, older SSE clients): escaped
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")
    return text


class _Codec:
    """What the transport module calls as `json.<name>`."""

    loads = staticmethod(loads)
    dumps = staticmethod(dumps)
    JSONDecodeError = json.JSONDecodeError


CODEC = _Codec()


def install() -> bool:
    """Use `CODEC` in the SDK's HTTP transport; True when it is in place."""
    try:
        from mcp.server import _streamable_http_modern as transport
    except ImportError:
        log.warning("fast JSON not installed: the SDK's HTTP transport module has moved")
        return False
    current = getattr(transport, "json", None)
    if current is CODEC:
        return True
    if current is not json:
        log.warning("fast JSON not installed: the SDK's HTTP transport no longer uses the json module")
        return False
    setattr(transport, "json", CODEC)  # noqa: B010 - the SDK module global the transport calls
    return True
