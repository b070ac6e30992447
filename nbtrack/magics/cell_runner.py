"""Run a cell's code in the user's namespace exactly as IPython would without the magic."""

from __future__ import annotations

import ast


def run_cell_body(shell, source: str, number: int, offset: int = 1) -> None:
    """Execute ``source`` in ``shell``'s namespace; display its last expression as ``Out[n]``.

    IPython syntax inside the cell (``!ls``, ``%time``) is transformed first, exactly as in a
    plain cell. The code is registered with IPython's compiler cache under cell ``number``, so a
    traceback shows its lines as ``Cell In[n], line k``; ``offset`` blank lines go first so that
    ``k`` counts lines as the notebook shows them (the ``%%track`` line is line 1). Exceptions
    propagate unchanged to the caller.
    """
    __tracebackhide__ = True
    code = "\n" * offset + shell.transform_cell(source)
    cell_id = shell.compile.cache(code, number, raw_code="\n" * offset + source)
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
