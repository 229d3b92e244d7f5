"""Dependencies point one way: governance depends on none of ours; agents, tools and embeddings never on the
registry or the app; the registry never on agents, tools or the app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
OURS = {"governance", "registry", "agents", "tools", "embeddings", "bastion", "bastion_sdk"}
ALLOWED = {
    "governance": set(),
    "bastion_sdk": {"governance"},
    "embeddings": {"governance"},
    "tools": {"governance", "embeddings", "bastion_sdk"},
    "agents": {"governance", "embeddings", "tools"},
    "registry": {"governance"},
}


def imported(package: str) -> dict[str, str]:
    """Our top-level packages `package` imports, each with one file that does."""
    found: dict[str, str] = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in OURS and top != package:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_point_one_way(package: str) -> None:
    wrong = {k: v for k, v in imported(package).items() if k not in ALLOWED[package]}
    assert wrong == {}, f"{package} must not import {sorted(wrong)} (e.g. {next(iter(wrong.values()), '')})"
