"""One builtin MCP server, served bare by the SDK (no gateway): the protocol floor of `bench/fullpath_bench.py`."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import MCPServer


def build(name: str, data_dir: Path) -> MCPServer[Any]:
    """The builtin as `bastion serve` builds it (same factories, same settings from the environment)."""
    from bastion.builtins import build_inference, build_parity, build_sql
    from tools.dedupe import server as dedupe_server
    from tools.dedupe.service import DedupeSettings
    from tools.rerank import server as rerank_server

    factories = {
        "inference": lambda: build_inference(data_dir),
        "sql": lambda: build_sql(data_dir),
        "parity": lambda: build_parity(data_dir),
        "dedupe": lambda: dedupe_server.build(DedupeSettings.under(data_dir)),
        "rerank": rerank_server.build,
    }
    return factories[name]()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, default=Path(".bastion"))
    parser.add_argument("--warm", type=Path, help="JSON [[tool, arguments], ...] to call once before serving")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mcp").setLevel(logging.WARNING)
    server = build(args.name, args.data_dir)
    if args.warm:
        for tool, arguments in json.loads(args.warm.read_text()):
            anyio.run(server.call_tool, tool, arguments)
    # As `bastion serve` does once started and after each tool's first call (registry/gateway/heap.py): what
    # start-up and the first calls loaded is left out of the cycle collector. The same footing for both.
    gc.collect()
    gc.freeze()
    atexit.register(gc.unfreeze)  # so that extensions counting their objects at exit see them freed
    app = server.streamable_http_app(stateless_http=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
