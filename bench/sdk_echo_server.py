"""The echo server written with the server SDK (`bastion_sdk`): the upstream of the identity benchmark.

Calls that bring a caller assertion are verified (JWKS, audience, expiry, replay); calls without one pass
unverified (`require=False`), so one process serves both sides of the comparison.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

from bastion_sdk import BastionIdentity, current_caller


def build(issuer: str, audience: str) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("bench.sdk-echo", description="Echo behind the SDK")
    BastionIdentity(issuer=issuer, audience=audience, require=False).install(server)

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True))
    def echo(text: str) -> str:
        """Return the text unchanged."""
        caller = current_caller()
        return text if caller is None else f"{text} ({caller.subject})"

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    args = parser.parse_args()
    uvicorn.run(build(args.issuer, args.audience).streamable_http_app(), host="127.0.0.1", port=args.port,
                log_level="warning")  # fmt: skip


if __name__ == "__main__":
    main()
