"""The dependency rules of docs/architecture.md, checked on the source: no import cycle
between modules, and the faces (cli, web, gateway) above the domain packages, never below.

Imports under `if TYPE_CHECKING:` count too: a cycle there is still a cycle a reader has
to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(filter(None, (_resolve(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                target = f"{base}.{alias.name}"
                resolved = target if target in MODULES else _resolve(base)
                if resolved:
                    out.add(resolved)
    out.discard(module)
    return out


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in GRAPH:
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_is_read_correctly() -> None:
    # Guards the checks below against passing because the graph came out empty.
    assert "pilothouse.gateway.app" in GRAPH
    assert "pilothouse.snapshot" in GRAPH["pilothouse.gateway.app"]
    assert "pilothouse.providers.types" in GRAPH["pilothouse.providers.stream"]


def test_no_import_cycle_in_src() -> None:
    assert _cycles() == []


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


DOMAIN = [
    "pilothouse.policy",
    "pilothouse.registry",
    "pilothouse.releases",
    "pilothouse.evals",
    "pilothouse.behaviour",
    "pilothouse.contracts",
    "pilothouse.changelog",
    "pilothouse.telemetry",
    "pilothouse.fleet",
    "pilothouse.providers",
    "pilothouse.store",
    "pilothouse.conversations",
]


@pytest.mark.parametrize(
    ("importer", "forbidden"),
    [
        *(
            (d, f)
            for d in DOMAIN
            for f in ("pilothouse.cli", "pilothouse.web", "pilothouse.gateway", "pilothouse.server")
        ),
        ("pilothouse.web", "pilothouse.server"),
        ("pilothouse.web", "pilothouse.store"),
        ("pilothouse.gateway", "pilothouse.store"),
        ("pilothouse.gateway", "pilothouse.web"),
        ("pilothouse.sdk", "pilothouse.store"),
        ("pilothouse.sdk", "pilothouse.server"),
        ("pilothouse.simulator", "pilothouse.gateway"),
    ],
)
def test_dependencies_point_one_way(importer: str, forbidden: str) -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _package(module) == importer
        for target in targets
        if _package(target) == forbidden
    )
    assert offending == []
