"""Run a cell's code in the user's namespace exactly as IPython would without the magic."""

from __future__ import annotations

import ast


def run_cell_body(shell, source: str, cell_id: str) -> None:
    """Execute ``source`` in ``shell``'s namespace; display its last expression as ``Out[n]``.

    IPython syntax inside the cell (``!ls``, ``%time``) is transformed first, exactly as in a
    plain cell. Exceptions propagate unchanged to the caller.
    """
    code = shell.transform_cell(source)
    tree = shell.compile.ast_parse(code, filename=cell_id)
    tree = shell.transform_ast(tree)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Interactive(body=[tree.body.pop()])
    namespace = shell.user_ns
    if tree.body:
        exec(shell.compile(tree, cell_id, "exec"), shell.user_global_ns, namespace)
    if last is not None:
        # 'single' mode hands the value to sys.displayhook: Out[n], _ and friends, as usual;
        # the trap makes that IPython's hook even when called outside run_cell
        with shell.display_trap:
            exec(shell.compile(last, cell_id, "single"), shell.user_global_ns, namespace)
