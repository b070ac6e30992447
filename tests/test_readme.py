"""Every example in the README runs as written.

The ```python blocks run in order in one real kernel, after a first cell that makes the data the
examples assume a user has (``x_train``, ``evaluate``, a figure, ...). The ```bash blocks' nbtrack
commands then run against the store those examples filled. A README example that no longer
works fails here, naming the block.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

README = Path(__file__).parent.parent / "README.md"
NBTRACK = [sys.executable, "-m", "nbtrack.cli"]

#: what a user's notebook holds before the README's examples: their data, model and helpers
USER_DATA = """
import numpy as np, pandas as pd
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.linear_model import Lasso, Ridge
rng = np.random.default_rng(0)
x_train = pd.DataFrame(rng.normal(size=(80, 3)), columns=["distance", "hour", "passengers"])
y_train = x_train @ np.array([3.0, 0.5, 0.1]) + rng.normal(size=80)
x_test = x_train.head(5)
trips_df = x_train.assign(fare=y_train)
fig, _ax = plt.subplots()
def evaluate(model):
    return float(np.sqrt(((model.predict(x_train) - y_train) ** 2).mean()))
def loss_at(epoch):
    return 1.0 / (epoch + 1)
"""

#: commands whose placeholders stand for the user's own things, and what stands in for them
PLACEHOLDERS = {
    "NOTEBOOK.ipynb": "notebooks/quickstart.ipynb",
    "-p name=value": "-p n_trips=500 -e readme",
}
#: commands that do not run here, and why
NOT_RUN = {
    "pip install": "installs packages: the Quick start is what CI itself runs",
    "python3 -m venv": "installs packages: the Quick start is what CI itself runs",
    "runs delete": "needs run ids; run below with ids from the store",
    "runs restore": "needs run ids; run below with ids from the store",
    "nbtrack ui": "starts a server until Ctrl-C; tests/test_ui.py covers it",
    "nbtrack team": "needs a PostgreSQL server; tests/test_team_roles.py covers it",
    "nbtrack push": "needs a team store; tests/test_push.py covers it",
}


def blocks(language: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of the README's fenced blocks in ``language``."""
    text = README.read_text(encoding="utf-8")
    found = []
    for match in re.finditer(rf"^```{language}\n(.*?)^```", text, re.S | re.M):
        found.append((text[: match.start()].count("\n") + 1, match.group(1)))
    return found


def commands(block: str) -> list[str]:
    """The ``nbtrack ...`` lines of a bash block, without their trailing comments."""
    lines = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line.startswith("nbtrack ") or line.startswith(".venv/bin/nbtrack "):
            lines.append(line)
    return lines


@pytest.mark.slow
def test_the_readme_examples_run(tmp_path, kernel_name):
    """The python examples in a kernel, then the commands on the store they filled."""
    run_python_examples(tmp_path, kernel_name)
    run_commands(tmp_path)


def run_python_examples(folder: Path, kernel_name: str) -> None:
    examples = blocks("python")
    assert len(examples) >= 5, "the README's python examples were not found"
    cells = [f"import os\nos.chdir({str(folder)!r})\n" + USER_DATA]
    cells += [text for _, text in examples]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    client = NotebookClient(nb, timeout=300, kernel_name=kernel_name, allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    for (line, _), cell in zip([(0, ""), *examples], nb.cells, strict=True):
        errors = [o for o in cell.outputs if o["output_type"] == "error"]
        assert not errors, (f"README block at line {line} failed: {errors[0]['ename']}: "
                            f"{errors[0]['evalue']}")


def run_commands(folder: Path) -> None:
    import shutil

    # commands run where a user runs them: in a checkout, with its notebooks/ folder
    shutil.copytree(README.parent / "notebooks", folder / "notebooks")
    ran, skipped = 0, []
    for line, block in blocks("bash"):
        for command in commands(block):
            reason = next((why for key, why in NOT_RUN.items() if key in command), None)
            if reason:
                skipped.append((command, reason))
                continue
            for placeholder, stand_in in PLACEHOLDERS.items():
                command = command.replace(placeholder, stand_in)
            result = subprocess.run([*NBTRACK, *shlex.split(command)[1:]], cwd=folder,
                                    capture_output=True, text=True, timeout=600)
            assert result.returncode == 0, (
                f"README line {line}: `{command}` exited {result.returncode}:\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            ran += 1
    assert ran >= 10, f"only {ran} README commands ran; skipped: {skipped}"
    # delete and restore, with ids the store really has
    ids = subprocess.run([*NBTRACK, "sql", "SELECT run_id FROM runs LIMIT 2"], cwd=folder,
                         capture_output=True, text=True, check=True).stdout
    run_ids = re.findall(r"\b[0-9a-f]{32}\b", ids)
    assert len(run_ids) == 2, ids
    for verb in ("delete", "restore"):
        subprocess.run([*NBTRACK, "runs", verb, *(r[:8] for r in run_ids)], cwd=folder,
                       check=True, capture_output=True)
