"""`nbtrack run`: headless execution with parameters, as a parent run with nested cell runs."""

import nbformat
import pytest

import nbtrack
from nbtrack.cli import main
from nbtrack.exceptions import InvalidValueError
from nbtrack.runner.notebook import inject_parameters, parse_parameters


def write_notebook(path, cells):
    nb = nbformat.v4.new_notebook()
    for source, tags in cells:
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"tags": tags}))
    nbformat.write(nb, path)
    return path


def test_parse_parameters():
    assert parse_parameters(["alpha=0.1", "model=lasso", "layers=[64, 32]", "flag=True",
                             "name='quoted'"]) == {
        "alpha": 0.1, "model": "lasso", "layers": [64, 32], "flag": True, "name": "quoted"}
    with pytest.raises(InvalidValueError, match="name=value"):
        parse_parameters(["alpha"])
    with pytest.raises(InvalidValueError, match="name=value"):
        parse_parameters(["not a name=1"])


def test_parameters_go_after_the_tagged_cell_or_first():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import x"),
        nbformat.v4.new_code_cell("alpha = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("use(alpha)"),
    ])
    assert inject_parameters(nb, {"alpha": 0.5}) == 2
    assert "alpha = 0.5" in nb.cells[2].source
    plain = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("use(alpha)")])
    assert inject_parameters(plain, {"alpha": 2}) == 0


def test_run_records_a_parent_with_nested_cell_runs(tmp_path, store_dir, kernel_name,
                                                     capsys):
    notebook = write_notebook(tmp_path / "taxi.ipynb", [
        ("%load_ext nbtrack", []),
        ("alpha = 1.0\nmodel = 'ridge'", ["parameters"]),
        ("%%track -n fit --params alpha,model\nscore = alpha * 2", []),
        ("%%track -n second\nimport nbtrack\nnbtrack.log_metric('m', 1.0)", []),
    ])
    code = main(["run", str(notebook), "-p", "alpha=0.5", "-p", "model=lasso", "-e", "headless",
                 "--kernel", kernel_name, "--no-progress", "-o", str(tmp_path / "out.ipynb")])
    assert code == 0, capsys.readouterr().err
    frame = nbtrack.search_runs(experiment_names=["headless"], order_by=["start_time"])
    assert list(frame["run_name"]) == ["taxi", "fit", "second"]
    parent_id = frame["run_id"][0]
    assert list(frame["parent_run_id"][1:]) == [parent_id, parent_id]
    assert set(frame["status"]) == {"FINISHED"}
    parent = nbtrack.get_run(parent_id)
    assert parent.data.params == {"alpha": "0.5", "model": "lasso"}
    assert parent.source.type == "NOTEBOOK" and parent.source.name == str(notebook)
    child = nbtrack.get_run(frame["run_id"][1])
    assert child.data.params == {"alpha": "0.5", "model": "lasso"}
    assert child.source.name == str(notebook)
    files = [f.path for f in nbtrack.Client().list_artifacts(parent_id)]
    assert files == ["taxi.executed.ipynb"]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "injected-parameters" in executed.cells[2].metadata["tags"]
    # nobody watches a headless run: no live chart widget, only the summary
    second = executed.cells[-1]["outputs"]
    assert [o["output_type"] for o in second] == ["display_data"]
    assert "application/vnd.jupyter.widget-view+json" not in second[0]["data"]


def test_notebook_without_tracked_cells_is_a_single_run(tmp_path, store_dir, kernel_name):
    notebook = write_notebook(tmp_path / "plain.ipynb", [
        ("import nbtrack\nnbtrack.log_metric('rmse', 3.5)", []),
    ])
    assert main(["run", str(notebook), "--kernel", kernel_name, "--no-progress"]) == 0
    frame = nbtrack.search_runs(search_all_experiments=True)
    assert len(frame) == 1
    assert frame["metrics.rmse"][0] == 3.5 and frame["status"][0] == "FINISHED"


def test_failing_notebook_exits_nonzero_and_names_the_cell(tmp_path, store_dir, kernel_name,
                                                          capsys):
    notebook = write_notebook(tmp_path / "broken.ipynb", [
        ("x = 1", []),
        ("raise ValueError('bad data')", []),
        ("never = True", []),
    ])
    assert main(["run", str(notebook), "--kernel", kernel_name, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "failed in cell 2 (code cell 2):\n    raise ValueError('bad data')\n" in err
    assert "ValueError: bad data" in err
    frame = nbtrack.search_runs(search_all_experiments=True)
    assert list(frame["status"]) == ["FAILED"]
    files = [f.path for f in nbtrack.Client().list_artifacts(frame["run_id"][0])]
    assert files == ["broken.executed.ipynb"]


def test_missing_notebook_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.ipynb"), "--no-progress"]) == 1
    assert "No notebook at" in capsys.readouterr().err


def test_failure_report_counts_the_users_cells_and_shows_the_line(tmp_path, store_dir,
                                                                  kernel_name, capsys):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A title"),
        nbformat.v4.new_code_cell("%load_ext nbtrack\nrows = 10",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_markdown_cell("Now the fit"),
        nbformat.v4.new_code_cell("%%track -n fit\nimport math\n"
                                  "def check(n):\n    return math.sqrt(n)\ncheck(rows)"),
    ])
    notebook = tmp_path / "numbered.ipynb"
    nbformat.write(nb, notebook)
    assert main(["run", str(notebook), "-p", "rows=-1", "--kernel", kernel_name,
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    # the injected parameters cell is not counted; markdown cells are, as the notebook shows them
    assert "failed in cell 4 (code cell 2):\n    return math.sqrt(n)\nValueError: math domain " \
           "error" in err
    assert "\x1b[" not in err  # no colour codes when stderr is not a terminal


def test_parameters_need_a_parameters_cell_unless_inject_at_top(tmp_path, store_dir,
                                                                kernel_name, capsys):
    notebook = write_notebook(tmp_path / "untagged.ipynb", [
        ("import nbtrack\nx = 1", []),
        ("nbtrack.log_metric('x', x)", []),
    ])
    assert main(["run", str(notebook), "-p", "x=5", "--kernel", kernel_name,
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "has no cell tagged 'parameters'" in err and "--inject-at-top" in err
    assert nbtrack.search_runs(search_all_experiments=True).empty  # nothing ran
    assert main(["run", str(notebook), "-p", "x=5", "--inject-at-top", "--kernel",
                 kernel_name, "--no-progress"]) == 0
    frame = nbtrack.search_runs(search_all_experiments=True)
    # as promised: the value goes in first, and the notebook's own x = 1 overrides it
    assert frame["params.x"][0] == "5" and frame["metrics.x"][0] == 1.0


def test_a_cell_that_times_out_is_named(tmp_path, store_dir, kernel_name, capsys):
    notebook = write_notebook(tmp_path / "slow.ipynb", [
        ("x = 1", []),
        ("import threading\nthreading.Event().wait(60)", []),
    ])
    assert main(["run", str(notebook), "--timeout", "2", "--kernel", kernel_name,
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    # nbclient interrupts the kernel, so the cell's line is known too
    assert "failed in cell 2 (code cell 2):\n    threading.Event().wait(60)\n" \
           "CellTimeoutError: A cell timed out while it was being executed, after 2 seconds." in err
    assert list(nbtrack.search_runs(search_all_experiments=True)["status"]) == ["FAILED"]
