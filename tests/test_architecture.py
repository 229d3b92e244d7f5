"""The house's layout holds: dependencies between top-level packages point one way, and no modules import
each other in a circle (imports under `if TYPE_CHECKING:` do not count: they never run)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).parent.parent
PACKAGES = ("governance", "registry", "tools", "embeddings", "agents", "bastion", "bastion_sdk")
# What each package may import of ours (README: agents → tools/embeddings/governance and the gateway as a
# client; registry → governance; governance depends on none of ours; `bastion` is the CLI and app that wires
# them together).
ALLOWED = {
    "governance": set(),
    "bastion_sdk": {"governance"},
    "registry": {"governance"},
    "embeddings": {"governance"},
    "tools": {"governance", "embeddings", "bastion_sdk"},
    "agents": {"governance", "embeddings", "tools"},
    "bastion": {"governance", "registry", "embeddings", "tools", "agents", "bastion_sdk"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _imports(path: Path) -> Iterator[str]:
    """Every module name an import statement of ``path`` names, except those only type checkers run."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target in _imports(path):
            parts = target.split(".")
            for end in range(len(parts), 0, -1):  # the longest prefix that is one of our modules
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    # A module importing its own package (`from registry.gateway import dbio`) is not a circle.
                    if candidate != name and not name.startswith(candidate + "."):
                        graph[name].add(candidate)
                    break
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start, targets in graph.items():
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(targets)))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            advanced = False
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter
                    counter += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    advanced = True
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _wrong_directions(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source, targets in graph.items()
        for target in targets
        if (a := source.split(".")[0]) != (b := target.split(".")[0]) and b not in ALLOWED[a]
    )


def test_packages_depend_on_each_other_one_way() -> None:
    assert _wrong_directions(_graph()) == []


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert _cycles(_graph()) == []


def test_the_checks_see_a_circle_and_a_wrong_direction() -> None:
    """The two checks above can fail: a made-up graph with both faults is caught."""
    graph = {"registry.a": {"registry.b"}, "registry.b": {"registry.c"}, "registry.c": {"registry.a"},
             "governance.x": {"registry.a"}}  # fmt: skip
    assert _cycles(graph) == [["registry.a", "registry.b", "registry.c"]]
    assert _wrong_directions(graph) == ["governance.x imports registry.a"]
    real = _graph()
    assert "registry.gateway.core" in real and "governance" in {t.split(".")[0] for t in real["registry.gateway.core"]}
