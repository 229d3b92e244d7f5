"""JSON for the gateway's MCP transport: orjson where it gives the same messages, the standard library otherwise.

The SDK's Streamable HTTP transport (`mcp.server._streamable_http_modern`, mcp 2.3) decodes each request body
with `json.loads` and encodes each reply with `json.dumps`, ASCII-escaped. A 1,000-URL `dedupe` reply
(312 KB) took 2.3 ms to encode and 1.7 ms to decode that way, against 0.2 and 0.5 ms with orjson. The SDK has no
setting for it, so `install()` gives that module an object with the two functions it uses:

- `loads`: orjson; a document orjson refuses but the standard library reads (`NaN`, lone surrogate escapes) is
  read by the standard library, so the transport accepts and refuses exactly what it did (too deep a document
  still raises what the SDK turns into a parse error). orjson reads an integer beyond 64 bits as a float, a
  different number: a document with a run of 19 digits (not a fraction's) goes to the standard library first.
- `dumps`: orjson, UTF-8 instead of `\\uXXXX` escapes (the same JSON text to any parser); what orjson cannot
  encode (a lone surrogate, an integer beyond 64 bits) goes to the standard library, as before.

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


def loads(data: str | bytes | bytearray) -> Any:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if _may_hold_a_long_integer(raw):
        return json.loads(data)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(data)


def dumps(obj: Any, **options: Any) -> str:
    if set(options) - {"separators"}:  # a use this module was not written for: as the caller asked
        return json.dumps(obj, **options)
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(obj, separators=options.get("separators") or (",", ":"))


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
