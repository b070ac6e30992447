"""The magics in real kernels, executed headless with nbclient: outputs, order, capture."""

import nbformat
from nbclient import NotebookClient

import nbtrack


def run_notebook(path, cells, kernel_name):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbformat.write(nb, path)
    client = NotebookClient(nb, timeout=180, kernel_name=kernel_name, allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def kinds(cell):
    return [o["output_type"] for o in cell["outputs"]]


def test_tracked_cells_in_a_real_kernel(tmp_path, kernel_name, monkeypatch):
    store = tmp_path / "store"
    notebook = tmp_path / "taxi.ipynb"
    monkeypatch.setenv("NBTRACK_NOTEBOOK_PATH", str(notebook))
    nb = run_notebook(notebook, [
        f"%load_ext nbtrack\n%track_config --tracking-uri {store}",
        "%%track -e kernel-test -n good\nalpha = 0.1\nimport nbtrack\n"
        "nbtrack.log_metric('m', 1.0)\nprint('hello')\nalpha * 10",
        "%%track -n bad\nnbtrack.log_metric('x', 2.0)\nraise ValueError('boom')",
        "def doubled():\n    return alpha * 2\ndoubled()",
        "%track_runs -o 'start_time ASC'",
    ], kernel_name)
    good, bad, later, table = nb.cells[1], nb.cells[2], nb.cells[3], nb.cells[4]
    # the cell's own output first, then its value, then the summary
    assert kinds(good) == ["stream", "execute_result", "display_data"]
    assert good["outputs"][0]["text"] == "hello\n"
    assert good["outputs"][1]["data"]["text/plain"] == "1.0"
    assert "nbtrack-summary" in good["outputs"][2]["data"]["text/html"]
    assert "FINISHED" in good["outputs"][2]["data"]["text/plain"]
    # a failing cell still shows the user's exception, and its run is FAILED
    assert "error" in kinds(bad)
    error = next(o for o in bad["outputs"] if o["output_type"] == "error")
    assert error["ename"] == "ValueError" and error["evalue"] == "boom"
    assert any("FAILED" in o.get("data", {}).get("text/plain", "") for o in bad["outputs"])
    assert later["outputs"][0]["data"]["text/plain"] == "0.2"
    assert "text/html" in table["outputs"][0]["data"]  # a DataFrame, rich in a notebook

    nbtrack.set_tracking_uri(store)
    frame = nbtrack.search_runs(experiment_names=["kernel-test"], order_by=["start_time"])
    assert list(frame["run_name"]) == ["good", "bad"]
    assert list(frame["status"]) == ["FINISHED", "FAILED"]
    assert frame["params.alpha"][0] == "0.1"
    assert frame["metrics.x"][1] == 2.0
    run = nbtrack.get_run(frame["run_id"][0])
    assert run.source.type == "NOTEBOOK" and run.source.name == str(notebook)
    assert run.source.code.startswith("alpha = 0.1")
    assert run.data.tags["nbtrack.execution_count"] == "2"


def test_notebook_path_from_the_jupyter_server_session_name(tmp_path, kernel_name,
                                                            monkeypatch):
    store = tmp_path / "store"
    monkeypatch.delenv("NBTRACK_NOTEBOOK_PATH", raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "from-server.ipynb"))
    run_notebook(tmp_path / "nb.ipynb", [
        f"%load_ext nbtrack\n%track_config --tracking-uri {store}",
        "%%track -n session\nx = 1",
    ], kernel_name)
    nbtrack.set_tracking_uri(store)
    (run,) = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert run.source.name == str(tmp_path / "from-server.ipynb")


def test_headless_kernel_without_a_path_still_tracks(tmp_path, kernel_name, monkeypatch):
    store = tmp_path / "store"
    monkeypatch.delenv("NBTRACK_NOTEBOOK_PATH", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    run_notebook(tmp_path / "nb.ipynb", [
        f"%load_ext nbtrack\n%track_config --tracking-uri {store}",
        "%%track -n anonymous\nx = 1",
    ], kernel_name)
    nbtrack.set_tracking_uri(store)
    (run,) = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.status == "FINISHED" and run.data.params == {"x": "1"}
    assert run.source.type == "INTERACTIVE" and run.source.code == "x = 1"
