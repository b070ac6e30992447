"""The compare dashboard's front end is fetched by the page, not kept in the widget's state.

(The saved notebook's size and the browser side are in test_saved_notebook.py; the loader's
logic in js/test/loader.test.js.)
"""

import hashlib

import pytest
from IPython.testing import globalipapp

import nbtrack
from nbtrack.widgets import frontend
from nbtrack.widgets.compare import CompareWidget


@pytest.fixture
def shell(store_dir):
    globalipapp.start_ipython()
    ip = globalipapp.get_ipython()
    ip.user_ns["nbtrack"] = nbtrack
    nbtrack.set_experiment("fe")
    with nbtrack.start_run():
        nbtrack.log_metric("rmse", 1.0)
    return ip


@pytest.mark.parametrize("name", ["compare.js", "charts.js"])
def test_a_bundle_is_named_by_its_content(name):
    found = frontend.bundle(name)
    data = (frontend.STATIC / name).read_bytes()
    assert found.data == data
    assert found.id == f"{name}@{hashlib.sha256(data).hexdigest()[:16]}"
    assert len(frontend.LOADER.read_bytes()) < 3000


def test_plotly_is_in_the_charts_bundle_not_in_the_core():
    """The first paint waits for compare.js alone; plotly's charts come later, when needed."""
    core, charts = frontend.bundle("compare.js").data, frontend.bundle("charts.js").data
    assert b"plotly" not in core.lower()
    assert b"plotly" in charts.lower()
    assert len(core) < 100_000 < len(charts)


def test_the_widget_state_holds_the_loader_and_the_bundle_only_while_its_cell_runs(shell):
    result = shell.run_cell("w = nbtrack.compare('fe')\n"
                            "during = len(w._nbtrack_bundle)\n"
                            "esm = str(w._esm)")
    result.raise_error()
    widget = shell.user_ns["w"]
    assert isinstance(widget, CompareWidget)
    size = len(frontend.bundle("compare.js").data)
    assert shell.user_ns["during"] == size  # rides along while the cell runs
    assert widget._nbtrack_bundle == b""  # dropped when it ended
    assert shell.user_ns["esm"] == frontend.LOADER.read_text()
    assert widget._nbtrack_frontend == frontend.bundle("compare.js").id
    # the charts' bundle is named, never carried: the page fetches it when it needs it
    assert widget._nbtrack_extras == {"charts.js": frontend.bundle("charts.js").id}
    callbacks = shell.events.callbacks["post_run_cell"]
    assert not any(getattr(c, "__self__", None) is widget for c in callbacks)
    widget.close()


def test_the_kernel_answers_the_page_with_the_bundle(shell, monkeypatch):
    shell.run_cell("w = nbtrack.compare('fe')").raise_error()
    widget = shell.user_ns["w"]
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(
        (content, buffers)))
    widget._send_frontend(widget, {"type": "refresh"}, [])  # not ours: no answer
    core, charts = frontend.bundle("compare.js"), frontend.bundle("charts.js")
    for found in (core, charts):
        widget._send_frontend(widget, {"kind": frontend.KIND, "id": found.id}, [])
    assert sent == [({"kind": frontend.KIND, "id": core.id}, [core.data]),
                    ({"kind": frontend.KIND, "id": charts.id}, [charts.data])]
    widget.close()


def test_a_bundle_the_widget_does_not_have_is_refused_with_a_message(shell, monkeypatch):
    shell.run_cell("w = nbtrack.compare('fe')").raise_error()
    widget = shell.user_ns["w"]
    sent = []
    monkeypatch.setattr(widget, "send", lambda content, buffers=None: sent.append(
        (content, buffers)))
    widget._send_frontend(widget, {"kind": frontend.KIND, "id": "registry.js@0123"}, [])
    (content, buffers), = sent
    assert content["id"] == "registry.js@0123" and not buffers
    assert content["error"] == "this widget has no bundle 'registry.js': run its cell again"
    widget.close()
