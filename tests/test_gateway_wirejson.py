"""The gateway's MCP transport reads and writes JSON with orjson, and accepts and refuses what it did before."""

from __future__ import annotations

import json
from typing import Any

import pytest

from registry.gateway import wirejson


@pytest.mark.parametrize(
    "text",
    [
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"q":"é ✓ 😀"}}}',
        '{"x": NaN, "y": Infinity}',  # the standard library reads these; orjson does not
        '{"big": 123456789012345678901234567890}',  # beyond 64 bits
        '{"lone": "\\ud800"}',  # a lone surrogate escape
        '{"a": 1, "a": 2}',  # a repeated key: the last one
    ],
)
def test_loads_reads_what_the_standard_library_reads(text: str) -> None:
    got, want = wirejson.loads(text.encode()), json.loads(text)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


@pytest.mark.parametrize("text", ["{", '{"a": 1} x', "[" * 100_000 + "]" * 100_000, "\xff"])
def test_loads_refuses_what_the_standard_library_refuses(text: str) -> None:
    with pytest.raises((ValueError, RecursionError)):  # what the SDK turns into a JSON-RPC parse error
        wirejson.loads(text)


@pytest.mark.parametrize(
    "value",
    [
        {"result": {"content": [{"type": "text", "text": 'é ✓ 😀 "quoted"\n'}], "structuredContent": {"n": 1.5}}},
        {"lone": "\ud800"},  # orjson refuses; the standard library writes an escape
        {"big": 2**70},
        {1: "int key"},
    ],
)
def test_dumps_writes_the_same_json(value: Any) -> None:
    text = wirejson.dumps(value, separators=(",", ":"))
    assert isinstance(text, str)
    assert json.loads(text) == json.loads(json.dumps(value, separators=(",", ":")))


def test_the_gateway_installs_it_in_the_sdk_transport() -> None:
    """If an SDK upgrade moves the transport's JSON calls, this fails: the shim would be silently inactive."""
    from mcp.server import _streamable_http_modern as transport

    assert wirejson.install() is True
    assert transport.json is wirejson.CODEC
    assert wirejson.install() is True  # idempotent


@pytest.mark.parametrize(
    "text",
    [
        "12345678901234567890",
        "-12345678901234567890",
        '{"id": 98765432109876543210, "x": [1, 99999999999999999999]}',
        '{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}',  # a request id beyond 64 bits
    ],
)
def test_integers_beyond_64_bits_stay_integers(text: str) -> None:
    """orjson reads them as floats (another number: a reply would not match its request id)."""
    assert wirejson.loads(text) == json.loads(text)
    assert repr(wirejson.loads(text)) == repr(json.loads(text))


def test_long_fractions_take_the_fast_path() -> None:
    """Floats written with many digits are common (0.00012345678901234567); they are not long integers."""
    body = json.dumps({"v": [0.00012345678901234567, 1.2345678901234567e-07, 0.6369616873214543]}).encode()
    assert not wirejson._may_hold_a_long_integer(body)
    assert wirejson.loads(body) == json.loads(body)


def test_line_separators_stay_escaped_for_line_readers() -> None:
    """U+2028, U+2029 and U+0085 are line breaks to `str.splitlines` (and to SSE clients built on it): a reply
    written with them raw was cut in the middle of a string (found by review; this failed on the first version)."""
    text = wirejson.dumps({"text": "a\u2028b\u2029c\x85d é"}, separators=(",", ":"))
    assert len(text.splitlines()) == 1 and "é" in text
    assert json.loads(text) == {"text": "a\u2028b\u2029c\x85d é"}


def test_documents_deeper_than_255_levels_are_refused() -> None:
    limit = wirejson.MAX_DEPTH
    assert wirejson.loads("[" * limit + "]" * limit) is not None
    for text in ("[" * (limit + 1) + "]" * (limit + 1), '{"a":' * 600 + "1" + "}" * 600):
        with pytest.raises(ValueError, match="nested more than 255"):
            wirejson.loads(text)
    wide = "[" + ",".join("[1]" for _ in range(5000)) + "]"  # many brackets, two levels: read
    assert len(wirejson.loads(wide)) == 5000
    lone = '{"s": "\\ud800", "x": ' + "[" * 300 + "]" * 300 + "}"  # the standard library's path, then the limit
    with pytest.raises(ValueError, match="nested more than 255"):
        wirejson.loads(lone)
