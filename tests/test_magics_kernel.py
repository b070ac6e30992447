"""The magics in real kernels (nbclient, jupyter_client, a Jupyter server): outputs, capture."""

import queue
import time

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
    # the live chart, the cell's own output, then its value, then the summary
    assert kinds(good) == ["display_data", "stream", "execute_result", "display_data"]
    assert "application/vnd.jupyter.widget-view+json" in good["outputs"][0]["data"]
    assert good["outputs"][1]["text"] == "hello\n"
    assert good["outputs"][2]["data"]["text/plain"] == "1.0"
    assert "nbtrack-summary" in good["outputs"][3]["data"]["text/html"]
    assert "FINISHED" in good["outputs"][3]["data"]["text/plain"]
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


def _run_code(client, code):
    """Execute ``code`` in a kernel; return its outputs' text, failing on an error."""
    texts = []

    def collect(msg):
        content = msg["content"]
        texts.append(content.get("text") or content.get("data", {}).get("text/plain", ""))

    reply = client.execute_interactive(code, timeout=120, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(texts)


def test_notebook_path_from_the_servers_sessions_api(tmp_path, kernel_name, monkeypatch):
    """Older servers tell the path only through /api/sessions, matched by the kernel's id."""
    from servers import jupyter_server

    monkeypatch.delenv("NBTRACK_NOTEBOOK_PATH", raising=False)
    root, store = tmp_path / "root", tmp_path / "store"
    (root / "work").mkdir(parents=True)
    with jupyter_server(root, tmp_path / "runtime") as server:
        session = server.api("/api/sessions", {
            "path": "work/taxi.ipynb", "name": "taxi.ipynb", "type": "notebook",
            "kernel": {"name": kernel_name},
        })
        client = server.kernel_client(session["kernel"]["id"])
        try:
            # the newer routes are there; take them away so only the server's API is left
            told = _run_code(client, "import os\nprint(os.environ.get('JPY_SESSION_NAME'))")
            assert told.strip().endswith("taxi.ipynb")
            _run_code(client, "os.environ.pop('JPY_SESSION_NAME', None)\n"
                              "globals().pop('__session__', None)")
            _run_code(client, f"%load_ext nbtrack\n%track_config --tracking-uri {store}")
            _run_code(client, "%%track -n via-api\nx = 1")
            _run_code(client, "import nbtrack\nnbtrack.flush()")
        finally:
            client.stop_channels()
            server.api(f"/api/sessions/{session['id']}", method="DELETE")
    nbtrack.set_tracking_uri(store)
    (run,) = nbtrack.search_runs(output_format="list", search_all_experiments=True)
    assert run.info.run_name == "via-api"
    assert run.source.type == "NOTEBOOK"
    assert run.source.name == str(root / "work" / "taxi.ipynb")


def test_keyboard_interrupt_in_a_real_kernel_ends_the_run_killed(tmp_path, kernel_name):
    from jupyter_client.manager import start_new_kernel

    store = tmp_path / "store"
    manager, client = start_new_kernel(kernel_name=kernel_name, cwd=str(tmp_path))
    try:
        _run_code(client, f"%load_ext nbtrack\n%track_config --tracking-uri {store}")
        msg_id = client.execute(
            "%%track -e interrupt -n stopped\nimport time, nbtrack\n"
            "for step in range(100_000):\n"
            "    nbtrack.log_metric('loss', 1 / (step + 1), step=step)\n"
            "    if step == 3:\n        print('training', flush=True)\n"
            "    time.sleep(0.01)\n")
        outputs, reply = [], None
        interrupted = False
        deadline = time.monotonic() + 120
        while reply is None and time.monotonic() < deadline:
            try:
                msg = client.get_iopub_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            outputs.append(msg)
            if msg["msg_type"] == "stream" and "training" in msg["content"]["text"]:
                manager.interrupt_kernel()
                interrupted = True
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                reply = client.get_shell_msg(timeout=30)
        assert interrupted and reply is not None
        assert reply["content"]["status"] == "error"
        assert reply["content"]["ename"] == "KeyboardInterrupt"
        shown = [m["content"]["data"]["text/plain"] for m in outputs
                 if m["msg_type"] == "display_data"]
        assert any("KILLED" in text for text in shown)  # the summary still shows
        _run_code(client, "nbtrack.flush()")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    nbtrack.set_tracking_uri(store)
    (run,) = nbtrack.search_runs(experiment_names=["interrupt"], output_format="list")
    assert run.info.status == "KILLED" and run.info.end_time is not None
    history = nbtrack.Client().get_metric_history(run.info.run_id, "loss")
    assert len(history) >= 4  # every value logged before the interrupt is kept
    assert [m.step for m in history][:4] == [0, 1, 2, 3]


def _execute_collecting(client, code, timeout=120):
    """Run ``code``; return its iopub messages, in order, up to the kernel going idle."""
    msg_id = client.execute(code)
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = client.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        messages.append(msg)
        if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"):
            return messages
    raise AssertionError("the cell did not finish")


def test_live_chart_updates_while_the_cell_runs(tmp_path, kernel_name):
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=kernel_name, cwd=str(tmp_path))
    try:
        _run_code(client, f"%load_ext nbtrack\n%track_config --tracking-uri {tmp_path / 's'}")
        messages = _execute_collecting(client, (
            "%%track -n live\nimport time, nbtrack\n"
            "for step in range(30):\n"
            "    nbtrack.log_metric('loss', 1 / (step + 1), step=step)\n"
            "    time.sleep(0.05)\n"
            "print('trained')"))
        opened = [m for m in messages if m["msg_type"] == "comm_open"
                  and "series" in m["content"]["data"]["state"]]
        assert len(opened) == 1
        chart = opened[0]["content"]["comm_id"]
        updates = [m["content"]["data"]["state"] for m in messages
                   if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == chart
                   and m["content"]["data"].get("method") == "update"]
        printed = next(i for i, m in enumerate(messages) if m["msg_type"] == "stream")
        # points arrived while the loop was still running, before the cell printed
        early = [m for m in messages[:printed] if m["msg_type"] == "comm_msg"
                 and "series" in m["content"]["data"].get("state", {})]
        assert early, "no live update reached the front end while the cell ran"
        assert any(u.get("running") is False for u in updates)
        # the final points arrive with the run's last write (at most a moment later)
        deadline = time.monotonic() + 10
        final = [u["series"] for u in updates if "series" in u]
        while (not final or len(final[-1]["loss"]["step"]) < 30) and time.monotonic() < deadline:
            try:
                msg = client.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            state = msg["content"].get("data", {}).get("state", {})
            if msg["msg_type"] == "comm_msg" and "series" in state:
                final.append(state["series"])
        assert final[-1]["loss"]["step"] == list(range(30))

        quiet = _execute_collecting(client, "%%track -n quiet\nx = 1")
        quiet_open = {m["content"]["comm_id"] for m in quiet if m["msg_type"] == "comm_open"
                      and "series" in m["content"]["data"]["state"]}
        closed = {m["content"]["comm_id"] for m in quiet if m["msg_type"] == "comm_close"}
        assert len(quiet_open) == 1 and quiet_open <= closed  # no metrics: the chart goes

        off = _execute_collecting(client, "%%track --no-live -n off\nnbtrack.log_metric('a', 1)")
        assert not [m for m in off if m["msg_type"] == "comm_open"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_a_failing_tracked_cell_shows_its_own_line(tmp_path, kernel_name):
    import re

    nb = run_notebook(tmp_path / "fail.ipynb", [
        f"%load_ext nbtrack\n%track_config --tracking-uri {tmp_path / 'store'} --no-live",
        "%%track -n bad\nx = 1\ndef check(v):\n    raise ValueError(f'bad {v}')\ncheck(x)",
    ], kernel_name)
    error = next(o for o in nb.cells[1]["outputs"] if o["output_type"] == "error")
    text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error["traceback"]))
    # numbered as the notebook shows the cell (the %%track line is line 1)
    assert "----> 5 check(x)" in text
    assert "----> 4     raise ValueError(f'bad {v}')" in text
    assert "track.py" not in text and "cell_runner.py" not in text  # the magic's frames hidden


def test_a_magic_error_in_a_kernel_is_one_message_and_stops_the_notebook(tmp_path, kernel_name):
    import pytest
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in (
        f"%load_ext nbtrack\n%track_config --tracking-uri {tmp_path / 'store'}",
        '%track_runs -f "metrics.rmse <"',
        "print('never')",
    )])
    client = NotebookClient(nb, timeout=180, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(CellExecutionError) as failed:
        client.execute()
    assert failed.value.ename == "MagicError"
    (shown,) = nb.cells[1]["outputs"]
    assert shown["name"] == "stderr"
    assert shown["text"].startswith("UsageError: %track_runs: Expected a number")
    assert "Traceback" not in shown["text"]
    assert nb.cells[2]["outputs"] == []
