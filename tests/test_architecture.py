"""The import graph of the project: no circles, and every arrow points down the layers.

Layers, bottom first: the project package ``credtool`` (settings, Celery app,
crypto, masking), ``runs`` (the life of background runs), ``audit``,
``accounts``, ``workflows``, ``integrations``, ``exports``, ``api``. A module may import its own app
and the layers below it, never above; development tools (``devtools``,
``bench``) and tests are never imported by the app. Imports inside functions
count: a lazy import that breaks a loop is a loop still.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["credtool", "audit", "profiles", "runs", "accounts", "workflows", "integrations", "exports", "api"]
NOT_FOR_THE_APP = {"devtools", "bench", "tests"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[module_name(path)] = path
    return modules


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules that ``name`` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # "from package import submodule" needs the submodule; a name from the package needs the package.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def test_no_module_imports_another_in_a_circle():
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_imports_point_down_the_layers():
    upward = []
    for module, targets in import_graph().items():
        layer = LAYERS.index(module.split(".")[0])
        for target in targets:
            if LAYERS.index(target.split(".")[0]) > layer:
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that point up: " + ", ".join(sorted(upward))


def test_the_app_never_imports_development_tools():
    offending = []
    for top in LAYERS:
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                offending += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in NOT_FOR_THE_APP]
    assert not offending, offending


def test_pure_modules_import_no_django():
    pure = ["credtool/masking.py", "workflows/bindings.py", "workflows/outputs.py", "workflows/sandbox"]
    for entry in pure:
        paths = [ROOT / entry] if entry.endswith(".py") else list((ROOT / entry).rglob("*.py"))
        for path in paths:
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "django" for n in names), path
