"""``nbtrack run``: execute a notebook headless with parameters, as one tracked parent run.

Parameters are injected papermill-style, in a new cell after the cell tagged ``parameters``.
A notebook without that cell is refused unless ``inject_at_top`` (its own assignments would
silently override the values). The kernel inherits the store, the experiment, the notebook's
path and the parent run's id, so the runs of its ``%%track`` cells nest under the parent; a
notebook without ``%%track`` cells logs into the parent run itself.
"""

from __future__ import annotations

import ast
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbtrack
from nbtrack.capture.entry_point import EntryPoint, set_notebook_provider
from nbtrack.exceptions import InvalidValueError, NbtrackError

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_CELL_FRAME = re.compile(r"^\s*Cell In\[\d+\], line (\d+)")
_ARROW = re.compile(r"^-+>\s*\d+\s?(.*)$")


@dataclass(frozen=True)
class NotebookResult:
    """What ``run_notebook`` did: the parent run, and the failing cell if any.

    ``failed_cell`` counts the cells of the user's notebook from 1 (markdown included, the
    injected parameters left out); ``failed_code_cell`` counts only its code cells.
    """

    run_id: str
    status: str
    failed_cell: int | None = None
    error: str | None = None  # "ValueError: boom"
    failed_code_cell: int | None = None
    source_line: str | None = None  # the failing line of the cell's source, if known

    def describe_failure(self) -> str:
        """``in cell 5 (code cell 3):`` then the failing line and ``Type: message``."""
        where = "in a cell"
        if self.failed_cell is not None:
            where = f"in cell {self.failed_cell} (code cell {self.failed_code_cell})"
        lines = [f"{where}:"]
        if self.source_line:
            lines.append(f"    {self.source_line.strip()}")
        lines.append(self.error or "the kernel stopped")
        return "\n".join(lines)


def failing_line(traceback: list[str]) -> str | None:
    """The line of the cell's source where an IPython traceback says the error happened.

    The last frame in a notebook cell wins (an error in a function that the cell defines points
    into that function); a SyntaxError shows the line under its header.
    """
    lines = [ANSI.sub("", part) for text in traceback for part in text.splitlines()]
    found = None
    for index, line in enumerate(lines):
        if not _CELL_FRAME.match(line):
            continue
        block = []
        for following in lines[index + 1:]:
            if not following.strip() or _CELL_FRAME.match(following):
                break
            block.append(following)
        arrows = [m.group(1) for m in (_ARROW.match(b.strip()) for b in block) if m]
        if arrows:
            found = arrows[0]
        elif block:  # a SyntaxError: the source line, then the caret
            found = block[0]
    if found and "run_cell_magic(" in found:
        return None
    return found.rstrip() if found else None


def parse_parameters(items: list[str]) -> dict[str, object]:
    """``["alpha=0.1", "model=lasso"]`` -> ``{"alpha": 0.1, "model": "lasso"}``.

    Values are Python literals where they parse as one, and strings otherwise.
    """
    params: dict[str, object] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier():
            raise InvalidValueError(
                f"-p takes name=value with a variable name, e.g. -p alpha=0.1; got {item!r}."
            )
        try:
            params[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[name] = text
    return params


def parameters_cell(nb) -> int | None:
    """The index of the cell tagged ``parameters``, if any."""
    for index, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            return index
    return None


def inject_parameters(nb, params: dict[str, object]) -> int:
    """Insert a cell assigning ``params`` after the ``parameters`` cell (else first).

    Returns the new cell's index.
    """
    import nbformat

    source = "# Parameters injected by nbtrack run\n" + "".join(
        f"{name} = {value!r}\n" for name, value in params.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    tagged = parameters_cell(nb)
    position = 0 if tagged is None else tagged + 1
    nb.cells.insert(position, cell)
    return position


def _has_tracked_cells(nb) -> bool:
    return any(c.cell_type == "code" and c.source.lstrip().startswith("%%track")
               for c in nb.cells)


def run_notebook(path: str | os.PathLike, params: dict[str, object],
                 experiment: str | None = None, kernel_name: str = "python3",
                 timeout: int = 3600, output: str | os.PathLike | None = None,
                 progress: bool = True, inject_at_top: bool = False) -> NotebookResult:
    """Execute a notebook headless as a parent run; return what happened.

    ``params`` go into a new cell after the cell tagged ``parameters``; a notebook without one
    is refused unless ``inject_at_top``, as papermill does.
    """
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise NbtrackError(
            f"nbtrack run needs {exc.name}: pip install 'nbtrack[run]'."
        ) from None
    notebook = Path(path).resolve()
    if not notebook.is_file():
        raise NbtrackError(f"No notebook at {str(path)!r}. Give the path of an .ipynb file.")
    nb = nbformat.read(notebook, as_version=4)
    injected = None
    if params:
        if parameters_cell(nb) is None and not inject_at_top:
            raise NbtrackError(
                f"{notebook.name} has no cell tagged 'parameters', so -p values would go in at "
                "the top and the notebook's own assignments would silently override them. Tag "
                "the cell that sets the defaults 'parameters' (JupyterLab: the property "
                "inspector, gear icon; Notebook 7: View > Cell toolbar > Tags), or pass "
                "--inject-at-top.")
        injected = inject_parameters(nb, params)
    if experiment:
        nbtrack.set_experiment(experiment)
    set_notebook_provider(lambda: EntryPoint("NOTEBOOK", str(notebook),
                                             folder=str(notebook.parent)))
    try:
        parent = nbtrack.start_run(run_name=notebook.stem, tags={"nbtrack.runner": "nbtrack run"})
    finally:
        set_notebook_provider(None)
    client, run_id = parent.client, parent.run_id
    if params:
        nbtrack.log_params(params)
    client.flush()
    env = {
        "NBTRACK_TRACKING_URI": nbtrack.get_tracking_uri(),
        "NBTRACK_NOTEBOOK_PATH": str(notebook),
        "NBTRACK_EXPERIMENT_ID": parent.info.experiment_id,
        "NBTRACK_LIVE": "0",  # nobody watches a headless run: no live charts
        "NBTRACK_PARENT_RUN_ID" if _has_tracked_cells(nb) else "NBTRACK_RUN_ID": run_id,
    }
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    started: dict[str, int | None] = {"index": None}  # the cell now running
    bar = tqdm(total=code_cells, desc=notebook.name, unit="cell", disable=not progress)
    runner = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name,
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_executed=lambda **_: bar.update(1),
        on_cell_start=lambda cell_index, **_: started.__setitem__("index", cell_index),
    )
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits these
    failure: dict = {}
    status = "FINISHED"
    try:
        runner.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        status = "FAILED"
        failure = _failure(nb, injected, exc, started["index"])
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        bar.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with tempfile.TemporaryDirectory() as scratch:
            executed = Path(scratch) / f"{notebook.stem}.executed.ipynb"
            nbformat.write(nb, executed)
            client.log_artifact(run_id, executed)
        if output:
            nbformat.write(nb, output)
        nbtrack.end_run(status)
        client.flush()
    return NotebookResult(run_id, status, **failure)


def _failure(nb, injected: int | None, exc, running: int | None) -> dict:
    """Where and how the notebook failed, numbered as the user's notebook numbers its cells.

    An error in a cell is found by its error output; a timeout or a dead kernel is put on the
    cell that was running (``running``, an index into ``nb.cells``).
    """
    ename = getattr(exc, "ename", None)
    if ename:
        error = f"{ename}: {exc.evalue}"
    else:
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    failed, source_line = running, None
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if cell.cell_type == "code" and index != injected and errors:
            failed, source_line = index, failing_line(errors[0].get("traceback", []))
            break
    if failed is None or failed == injected:
        return {"error": error}
    before = nb.cells[:failed]
    skip = 1 if injected is not None and injected < failed else 0
    code_cells = sum(1 for c in before if c.cell_type == "code") - skip + 1
    return {"failed_cell": failed + 1 - skip, "failed_code_cell": code_cells, "error": error,
            "source_line": source_line}
