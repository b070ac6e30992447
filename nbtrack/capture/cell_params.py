"""Params a cell states plainly: top-level assignments of literals, found without running code.

``alpha = 0.1``, ``n_estimators = 200``, ``model_type = "lasso"`` and ``layers = (64, 32)`` are
params; anything computed is not. A name that the cell binds again later in any other way
(``alpha = alpha * 2``, ``alpha += 1``, ``for alpha in ...``) is dropped, since its literal is no
longer what the cell ended with.
"""

from __future__ import annotations

import ast

_SCALARS = (bool, int, float, str, type(None))


def _is_plain(value: object) -> bool:
    if isinstance(value, _SCALARS):
        return True
    if isinstance(value, (tuple, list)):
        return all(isinstance(v, _SCALARS) for v in value)
    return False


def _bound_names(node: ast.AST) -> set[str]:
    """Names that a statement (re)binds at the top level, in any way."""
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and isinstance(child.ctx, (ast.Store, ast.Del)):
            names.add(child.id)
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(child.name)
        elif isinstance(child, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in child.names)
    return names


def literal_assignments(source: str) -> dict[str, object]:
    """``{name: value}`` for the cell's top-level literal assignments (private names skipped).

    Returns an empty dict for source that does not parse.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}
    found: dict[str, object] = {}
    for statement in tree.body:
        target, value_node = None, None
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target, value_node = statement.targets[0], statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target, value_node = statement.target, statement.value
        if (isinstance(target, ast.Name) and not target.id.startswith("_")
                and value_node is not None):
            try:
                value = ast.literal_eval(value_node)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                value = _NOT_LITERAL
            if value is not _NOT_LITERAL and _is_plain(value):
                found[target.id] = value
                continue
        for name in _bound_names(statement):
            found.pop(name, None)
    return found


_NOT_LITERAL = object()


def referenced_names(source: str) -> list[str]:
    """Every variable name the cell reads or writes, in order of first use."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    seen: dict[str, None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            seen.setdefault(node.id, None)
    return list(seen)
