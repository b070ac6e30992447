"""The layering rules of ARCHITECTURE.md, checked on the source (a linter for what ruff cannot).

- nothing imports or reads a private name (``_x``) of another nbtrack module;
- no import cycles between nbtrack modules, counting imports inside functions;
- the store imports nothing above it, and only the Client reaches the store;
- no module is longer than about 500 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "nbtrack"
MAX_LINES = 520
#: what the store layer may import from the rest of nbtrack
STORE_MAY_IMPORT = ("nbtrack.store", "nbtrack.entities", "nbtrack.exceptions", "nbtrack.search",
                    "nbtrack.capture", "nbtrack.clock", "nbtrack._version")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> list[tuple[str, int, str | None]]:
    """``(imported module, line, imported name or None)`` for every nbtrack import."""
    tree = ast.parse(MODULES[module].read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, None) for a in node.names
                      if a.name.split(".")[0] == "nbtrack"]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, node)
            if source.split(".")[0] != "nbtrack":
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((sub, node.lineno, None) if sub in MODULES
                             else (source, node.lineno, alias.name))
    return found


def _target(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def test_no_private_name_crosses_a_module():
    problems = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        bound: dict[str, str] = {}  # local name -> nbtrack module it stands for
        for source, line, name in _imports(module):
            target = _target(source)
            if name is not None and _is_private(name) and target != module:
                problems.append(f"{module}:{line} imports {name} from {target}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _resolve(module, node).startswith("nbtrack"):
                for alias in node.names:
                    full = f"{_resolve(module, node)}.{alias.name}"
                    if full in MODULES:
                        bound[alias.asname or alias.name] = full
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in MODULES and alias.asname:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and _is_private(node.attr)
                    and bound[node.value.id] != module):
                problems.append(f"{module}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert not problems, "\n".join(problems)


def _cycles() -> list[list[str]]:
    graph = {m: sorted({_target(s) for s, _, _ in _imports(m)} - {m}) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles (counting imports inside functions):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_store_imports_nothing_above_it():
    problems = [f"{module}:{line} imports {source}"
                for module in MODULES if module.startswith("nbtrack.store")
                for source, line, _ in _imports(module)
                if not source.startswith(STORE_MAY_IMPORT)]
    assert not problems, "\n".join(problems)


def test_only_the_client_reaches_the_store():
    allowed = ("nbtrack.store", "nbtrack.tracking.client", "nbtrack.tracking.registry_client")
    problems = []
    for module, path in MODULES.items():
        if module.startswith(allowed):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("store", "_store"):
                problems.append(f"{module}:{node.lineno} reaches .{node.attr}")
    assert not problems, "\n".join(problems)


def test_modules_stay_small():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
