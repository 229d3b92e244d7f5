"""A builtin for the red-team suite, loaded into a real `bastion serve` through BASTION_EXTRA_BUILTINS.

Its destructive tool appends one line per real run to the file named by BASTION_TEST_SIDE_EFFECTS, so a
test in another process can count how many times a call actually ran (not only what the gateway said).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from tests.gateway_harness import READ_ONLY, ops_server

# The ops server of the gateway tests: `pause_campaign` appends each real run to BASTION_TEST_SIDE_EFFECTS.
build = ops_server


def build_vault() -> MCPServer[Any]:
    """Restricted data behind a group allowlist: what an analyst must neither see nor call."""
    server: MCPServer[Any] = MCPServer("dev.test/vault", description="Finance vault")

    @server.tool(annotations=READ_ONLY)
    def read_note(name: str) -> str:
        """Read a finance note."""
        target = os.environ.get("BASTION_TEST_SIDE_EFFECTS")
        if target:
            with Path(target).open("a") as f:
                f.write(f"vault:{name}\n")
        return f"note {name}: quarterly numbers"

    return server


def build_devbox() -> MCPServer[Any]:
    """A dev-environment server: only its own team may use it."""
    server: MCPServer[Any] = MCPServer("dev.test/devbox", description="Experiments")

    @server.tool(annotations=READ_ONLY)
    def try_feature(flag: str) -> str:
        """Try an experimental flag."""
        return f"{flag}: on"

    return server
