"""The builtin MCP servers Bastion ships, by the name the seed file uses."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer

from embeddings.settings import IndexSettings
from governance.catalog import Catalog
from registry import builtin as registry_builtin
from registry.context import RegistryContext
from registry.schemas.tools import ToolDefinition, served_definition
from tools.dedupe import server as dedupe_server
from tools.dedupe.service import DedupeSettings
from tools.rerank import server as rerank_server
from tools.sql import server as sql_server

BuiltinFactory = Callable[[RegistryContext], MCPServer[Any]]

BUILTINS: dict[str, BuiltinFactory] = {
    "registry": registry_builtin.build,
    "rerank": lambda ctx: rerank_server.build(),
    "dedupe": lambda ctx: dedupe_server.build(DedupeSettings.under(ctx.settings.data_dir)),
    "sql": lambda ctx: build_sql(ctx.settings.data_dir),
    "parity": lambda ctx: build_parity(ctx.settings.data_dir),
    "inference": lambda ctx: build_inference(ctx.settings.data_dir),
}


def build_inference(data_dir: Path) -> MCPServer[Any]:
    from tools.inference.server import InferenceSettings
    from tools.inference.server import build as build_inference_server

    return build_inference_server(InferenceSettings(), data_dir)


def build_parity(data_dir: Path) -> MCPServer[Any]:
    from embeddings.settings import IndexSettings
    from tools.parity.server import ParityService, ParitySettings
    from tools.parity.server import build as build_parity_server

    settings = ParitySettings()
    if "BASTION_PARITY_DATA_DIR" not in os.environ:
        settings = settings.model_copy(update={"data_dir": data_dir / "parity"})
    index = IndexSettings(data_dir=data_dir)
    warehouse = index.source() if index.warehouse_url is None or index.source().endswith(".duckdb") else None
    return build_parity_server(ParityService(settings, default_engine=warehouse, catalog=catalog_loader(index)))


def catalog_loader(index: IndexSettings) -> Callable[[], Catalog]:
    """The indexed warehouse catalog, re-read when `bastion index` publishes a new snapshot.

    Tools that check SQL against the catalog (the `parity` tool's table:/sql: inputs) get it from here;
    without an index they refuse such inputs (the loader raises FileNotFoundError)."""
    from embeddings.index import Snapshot

    path = Snapshot.directory(index) / "catalog.json"
    cached: dict[int, Catalog] = {}

    def load() -> Catalog:
        stamp = path.stat().st_mtime_ns
        if stamp not in cached:
            cached.clear()
            cached[stamp] = Catalog.model_validate_json(path.read_text())
        return cached[stamp]

    return load


def build_sql(data_dir: Path) -> MCPServer[Any]:
    """The `sql` server with the Text-to-SQL agent behind its `ask` tool (agents sit above tools)."""
    from agents.text2sql.answer import Answer
    from embeddings.settings import IndexSettings
    from tools.sql.service import SqlService

    service = SqlService(index=IndexSettings(data_dir=data_dir))

    @functools.cache
    def agent() -> Any:
        # LangGraph and the LLM client load with the first question, not with the gateway.
        from agents.text2sql.agent import Text2SQLAgent

        return Text2SQLAgent(service)

    def ask(*args: Any) -> Any:
        return agent().ask(*args)

    return sql_server.build(service, asker=ask, answer_model=Answer)


def build_all(ctx: RegistryContext) -> dict[str, MCPServer[Any]]:
    servers = {name: factory(ctx) for name, factory in BUILTINS.items()}
    for spec in ctx.settings.extra_builtins:
        name, _, target = spec.partition("=")
        module_name, _, attr = target.partition(":")
        if not name or not module_name or not attr:
            raise ValueError(f"BASTION_EXTRA_BUILTINS entry {spec!r} is not name=module:factory")
        factory = getattr(importlib.import_module(module_name), attr)
        servers[name.strip()] = factory()
    return servers


async def tool_definitions(server: MCPServer[Any]) -> list[ToolDefinition]:
    return [ToolDefinition.model_validate(served_definition(tool)) for tool in await server.list_tools()]


LOCK_FILE = Path(__file__).resolve().parent.parent / "seed" / "builtins.lock.json"


def builtin_lock(ctx: RegistryContext, seed_file: Path) -> dict[str, dict[str, Any]]:
    """Each builtin server the seed file declares: its version and its tools' definition hashes. A deployment
    keeps the versions it registered, so tools that change under the same version make `registry seed` refuse
    and the gateway withhold them (drift): `tests/test_seed.py` compares this with `LOCK_FILE`."""
    from registry.services.seed import load_seed

    resolve = definitions_resolver(ctx)
    return {
        spec.name: {"version": spec.version, "tools": {t.name: t.content_hash() for t in resolve(spec.builtin)}}
        for spec in load_seed(seed_file).servers
        if spec.builtin
    }


def definitions_resolver(ctx: RegistryContext) -> Callable[[str], list[ToolDefinition]]:
    servers = build_all(ctx)

    def resolve(name: str) -> list[ToolDefinition]:
        if name not in servers:
            raise KeyError(f"unknown builtin server {name!r}; known: {', '.join(sorted(servers))}")
        return anyio.run(tool_definitions, servers[name])

    return resolve
