"""The package's layers, read from its imports (every import statement, those inside functions
included): no module imports itself back through others, the packages and top-level modules
of tuner/ import each other in one direction only, and the rules of the layers hold."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tuner"

# (importer, imported): what a layer must never import (prefixes of module names)
NEVER = [
    ("tuner.space", "tuner.study"), ("tuner.space", "tuner.storages"),
    ("tuner.space", "tuner.callbacks"), ("tuner.space", "tuner.runner"),
    ("tuner.runner", "tuner.kernels.cpu"), ("tuner.trial", "tuner.kernels"),
    ("tuner.storages", "tuner.study"), ("tuner.storages", "tuner.callbacks"),
    ("tuner.study", "tuner.callbacks"), ("tuner.study", "tuner.commands"),
    ("tuner.study", "tuner.reporting"), ("tuner.reporting", "tuner.callbacks"),
    ("tuner.callbacks", "tuner.commands"), ("tuner.kernels", "tuner.backends"),
]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        if "-" in path.name:  # tuner/sync-mlflow.py: a `python -m` alias, not importable
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of tuner that ``name`` imports (a package's submodule where one is named)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target.startswith("tuner") and target != name:
                found.add(target)
    return found


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _room(module: str) -> str:
    """A module's package or top-level module directly under tuner (tuner itself for its
    __init__)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_module_imports_itself_back(imports):
    assert _cycles(imports) == []


def test_packages_import_each_other_one_way(imports):
    rooms: dict[str, set[str]] = {}
    for module, targets in imports.items():
        rooms.setdefault(_room(module), set()).update(
            _room(t) for t in targets if _room(t) != _room(module))
    assert _cycles(rooms) == []


@pytest.mark.parametrize("importer, imported", NEVER)
def test_a_layer_never_imports_what_is_above_it(imports, importer, imported):
    wrong = sorted(f"{module} -> {target}" for module, targets in imports.items()
                   if module.startswith(importer) for target in targets
                   if target == imported or target.startswith(imported + "."))
    assert wrong == []


def test_the_reader_sees_the_imports(imports):
    """The checks above read real imports: a few the package is known to have."""
    assert "tuner.trial.result" in imports["tuner.storages.trial_facts"]
    assert "tuner.kernels.cpu.library" in imports["tuner.backends.cpu"]
    assert "tuner.backends" in imports["tuner.runner.trial_network"]
