"""``nbtrack run``: execute a notebook headless with parameters, as one tracked parent run.

Parameters are injected papermill-style, in a new cell after the cell tagged ``parameters``
(or at the top when there is none). The kernel inherits the store, the experiment, the notebook's
path and the parent run's id, so the runs of its ``%%track`` cells nest under the parent; a
notebook without ``%%track`` cells logs into the parent run itself.
"""

from __future__ import annotations

import ast
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbtrack
from nbtrack.capture.entry_point import EntryPoint, set_notebook_provider
from nbtrack.exceptions import InvalidValueError, NbtrackError


@dataclass(frozen=True)
class NotebookResult:
    """What ``run_notebook`` did: the parent run, and the failing cell if any."""

    run_id: str
    status: str
    failed_cell: int | None = None
    error: str | None = None


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


def inject_parameters(nb, params: dict[str, object]) -> int:
    """Insert a cell assigning ``params`` after the ``parameters`` cell; return its index."""
    import nbformat

    source = "# Parameters injected by nbtrack run\n" + "".join(
        f"{name} = {value!r}\n" for name, value in params.items()
    )
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    position = 0
    for index, existing in enumerate(nb.cells):
        if "parameters" in existing.get("metadata", {}).get("tags", []):
            position = index + 1
            break
    nb.cells.insert(position, cell)
    return position


def _has_tracked_cells(nb) -> bool:
    return any(c.cell_type == "code" and c.source.lstrip().startswith("%%track")
               for c in nb.cells)


def run_notebook(path: str | os.PathLike, params: dict[str, object],
                 experiment: str | None = None, kernel_name: str = "python3",
                 timeout: int = 3600, output: str | os.PathLike | None = None,
                 progress: bool = True) -> NotebookResult:
    """Execute a notebook headless as a parent run; return what happened."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
        from tqdm.auto import tqdm
    except ImportError as exc:
        raise NbtrackError(
            f"nbtrack run needs {exc.name}: pip install 'nbtrack[run]'."
        ) from None
    notebook = Path(path).resolve()
    if not notebook.is_file():
        raise NbtrackError(f"No notebook at {str(path)!r}. Give the path of an .ipynb file.")
    nb = nbformat.read(notebook, as_version=4)
    if params:
        inject_parameters(nb, params)
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
    bar = tqdm(total=code_cells, desc=notebook.name, unit="cell", disable=not progress)
    runner = NotebookClient(
        nb, timeout=timeout, kernel_name=kernel_name,
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_executed=lambda **_: bar.update(1),
    )
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits these
    failed, error, status = None, None, "FINISHED"
    try:
        runner.execute()
    except CellExecutionError as exc:
        status = "FAILED"
        failed = next((i for i, c in enumerate(nb.cells) if c.cell_type == "code" and any(
            o.get("output_type") == "error" for o in c.get("outputs", []))), None)
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
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
    return NotebookResult(run_id, status, failed, error)
