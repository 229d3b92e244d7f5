"""`bastion search` and `bastion ask` on the running `bastion serve`, when there is one.

Most of an in-process search is loading the embedding model (torch, sentence-transformers): seconds on
every call. A running server keeps it loaded, so the CLI asks the server first — one MCP `tools/call` on
its gateway (revision 2026-07-28: stateless, a single POST) — and works in-process only when no server
of this data directory answers. Either way it says which, in one dim line on stderr.

The call is made with BASTION_TOKEN when set; otherwise with a five-minute token signed with this data
directory's secret, so a server of another data directory (another secret) refuses it and the CLI works
in-process. That token is the local user's, with `internal` clearance (what the in-process path applies)
and no groups, through the client id `bastion-cli`: the call is governed and audited like any other.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import time
from typing import Any

from rich.markup import escape

from bastion.console import err

PROTOCOL = "2026-07-28"
CLIENT_ID = "bastion-cli"
# "code: message" — the sql tools' own errors (a SqlError), as the SDK words them; the gateway's denials and
# unknown tools read otherwise.
_TOOL_ERROR = re.compile(r"(?:Error executing tool \S+: )?([a-z_]+): (.*)", re.DOTALL)


class Unreachable(Exception):
    """No server of this data directory to ask; the reason is shown, and the CLI works in-process."""


class ToolFailed(Exception):
    """The server ran the tool and it refused the request (bad question, no index, …): in-process would too."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def base_url() -> str:
    from registry.settings import RegistrySettings

    return RegistrySettings().effective_public_url


def _token() -> str | None:
    if token := os.environ.get("BASTION_TOKEN"):
        return token
    from registry.settings import RegistrySettings

    settings = RegistrySettings()
    if settings.jwt_secret is None and not (settings.data_dir / "jwt-secret").exists():
        return None  # no server has ever started on this data directory (it writes the secret)
    # registry.auth.mint_token's claims, signed here: importing registry.auth (SQLAlchemy models) costs 0.5 s.
    import uuid

    import jwt

    now = int(time.time())
    claims = {"iss": settings.jwt_issuer, "aud": settings.jwt_audience, "sub": getpass.getuser(), "groups": [],
              "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, "clearance": "internal",
              "azp": CLIENT_ID}  # fmt: skip
    return jwt.encode(claims, settings.hs_secret(), algorithm="HS256")


def call_tool(tool: str, arguments: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
    """The structured result of the gateway tool `tool` (`server__tool`) on the running server.

    Raises `Unreachable` when there is no server to use (none listening, another data directory's, the tool
    not offered to this caller) and `ToolFailed` when the tool itself refused the request."""
    import httpx

    base = base_url()
    token = _token()
    if token is None:
        raise Unreachable("no server has run on this data directory yet")
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": {k: v for k, v in arguments.items() if v is not None},
        "_meta": {"io.modelcontextprotocol/protocolVersion": PROTOCOL,
                  "io.modelcontextprotocol/clientInfo": {"name": CLIENT_ID, "version": "1"},
                  "io.modelcontextprotocol/clientCapabilities": {}},
    }}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": PROTOCOL, "Mcp-Method": "tools/call", "Mcp-Name": tool}  # fmt: skip
    try:
        response = httpx.post(f"{base}/mcp", json=body, headers=headers, timeout=httpx.Timeout(timeout, connect=2.0))
    except httpx.ConnectError:
        raise Unreachable(f"no server at {base}") from None
    except httpx.TimeoutException:
        raise Unreachable(f"the server at {base} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"the server at {base} failed: {type(exc).__name__}") from None
    if response.status_code in (401, 403):
        whose = "BASTION_TOKEN" if "BASTION_TOKEN" in os.environ else "this data directory's credentials"
        raise Unreachable(f"the server at {base} refused {whose} (a server of another data directory?)")
    if response.status_code != 200:
        raise Unreachable(f"the server at {base} answered HTTP {response.status_code} on /mcp")
    message = _message(response.text, response.headers.get("content-type", ""))
    if message is None or "error" in message:
        error = (message or {}).get("error") or {}
        raise Unreachable(f"the server at {base} could not call {tool}: {error.get('message', 'no answer')}")
    result: dict[str, Any] = message.get("result") or {}
    if result.get("resultType", "complete") != "complete":
        raise Unreachable(f"the server at {base} needs more from this caller ({result.get('resultType')})")
    text = "\n".join(str(c.get("text", "")) for c in result.get("content") or [] if isinstance(c, dict))
    if result.get("isError"):
        if (own := _TOOL_ERROR.fullmatch(text)) is not None:
            raise ToolFailed(own.group(1), own.group(2))
        raise Unreachable(f"the server at {base}: {text[:200]}")  # denied, unknown tool: the gateway's word
    structured = result.get("structuredContent")
    if not isinstance(structured, dict):
        structured = json.loads(text)
    return structured


def _message(text: str, content_type: str) -> dict[str, Any] | None:
    """The JSON-RPC response, from a JSON body or a server-sent event stream."""
    if content_type.startswith("application/json"):
        parsed: dict[str, Any] = json.loads(text)
        return parsed
    for line in text.splitlines():
        if line.startswith("data:"):
            event = json.loads(line[5:])
            if isinstance(event, dict) and event.get("id") == 1:
                return event
    return None


def from_server(tool: str, arguments: dict[str, Any], timeout: float = 120.0) -> dict[str, Any] | None:
    """`call_tool`, saying in one dim line which was used: the result, or None to work in-process."""
    started = time.perf_counter()
    try:
        result = call_tool(tool, arguments, timeout)
    except Unreachable as exc:
        note(f"in-process: {exc} (loading the model takes seconds; a running `bastion serve` answers at once)")
        return None
    note(f"answered by the running server at {base_url()} in {time.perf_counter() - started:.1f} s")
    return result


def note(text: str) -> None:
    err.print(f"[dim]{escape(text)}[/]", highlight=False, soft_wrap=True)
