"""A saved notebook stays lean: the dashboards' front end is not stored in each widget's state.

A notebook with three dashboards (two compare, one registry) and ten tracked cells is executed
in a real kernel by nbclient, with the widget state saved as JupyterLab saves it; the saved file
must grow by less than 300 KB over the unexecuted one.
"""

from __future__ import annotations

import json
import time

import pytest

from nbtrack.widgets import frontend

pytestmark = pytest.mark.slow

LIMIT = 300_000

SETUP = """\
import nbtrack
from sklearn.linear_model import Ridge
%load_ext nbtrack
nbtrack.set_tracking_uri({uri!r})
nbtrack.set_experiment("lean")
"""

TRACKED = """\
%%track -e lean -n cell{i}
alpha = {alpha}
for step in range(20):
    nbtrack.log_metric("loss", alpha / (step + 1), step=step)
nbtrack.log_metric("rmse", 10 - alpha)
"""

REGISTER = """\
import numpy as np
import nbtrack.sklearn
with nbtrack.start_run(run_name="model"):
    model = Ridge().fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))
    nbtrack.log_metric("rmse", 1.0)
    nbtrack.sklearn.log_model(model, "model")
    run_id = nbtrack.active_run().info.run_id
nbtrack.register_model(f"runs:/{run_id}/model", "lean-model")
"""


def _notebook(store) -> dict:
    import nbformat

    cells = [nbformat.v4.new_code_cell(SETUP.format(uri=str(store)))]
    cells += [nbformat.v4.new_code_cell(TRACKED.format(i=i, alpha=i / 10)) for i in range(10)]
    cells += [
        nbformat.v4.new_code_cell("nbtrack.compare('lean')"),
        nbformat.v4.new_code_cell("nbtrack.compare('lean', filter='metrics.rmse < 9.5')"),
        nbformat.v4.new_code_cell(REGISTER),
        nbformat.v4.new_code_cell("nbtrack.registry('lean-model')"),
    ]
    return nbformat.v4.new_notebook(cells=cells)


def _size(notebook) -> int:
    import nbformat

    return len(nbformat.writes(notebook).encode())


def test_three_dashboards_and_ten_tracked_cells_grow_the_notebook_by_under_300kb(
        tmp_path, kernel_name):
    from nbclient import NotebookClient

    notebook = _notebook(tmp_path / "store")
    before = _size(notebook)
    NotebookClient(notebook, kernel_name=kernel_name, timeout=300, store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    after = _size(notebook)
    (tmp_path / "executed.ipynb").write_text(json.dumps(notebook))

    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    models = {key: value["state"] for key, value in state.items()}
    compares = [s for s in models.values() if "_nbtrack_frontend" in s]
    assert len(compares) == 2
    biggest = max(len(json.dumps(s)) for s in models.values())
    print(f"saved notebook: {before} bytes before running, {after} after "
          f"(+{after - before}); {len(models)} widget models, the largest {biggest} bytes")
    assert after - before < LIMIT
    # the front end is fetched from the kernel, not stored: the bundles are in no widget's state
    assert all(len(s.get("_esm", "")) < 10_000 for s in compares)
    for name in ("compare.js", "charts.js"):
        bundle = frontend.bundle(name)
        assert not any(bundle.data[:200].decode() in json.dumps(s) for s in models.values())
    assert all(s["_nbtrack_extras"] == {"charts.js": frontend.bundle("charts.js").id}
               for s in compares)


# --- the same notebook in JupyterLab 4 and Notebook 7 (headless Chromium) ---------------------
# The page, the server and the front ends come from test_browser's fixtures.
from test_browser import CHROMIUM, front_end, lab, page  # noqa: E402, F401


@pytest.fixture
def notebook(lab):  # noqa: F811
    """The notebook above, written beside the server's example notebooks."""
    import nbformat

    content = _notebook(lab.root.parent / "store")
    content.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}
    nbformat.write(content, lab.root / "lean.ipynb")
    return "lean.ipynb"


ROWS = "i => document.querySelectorAll('.nbtrack-compare')[i]?.dataset.rows"
FRONTENDS = "() => [...(globalThis[Symbol.for('nbtrack.frontends')]?.keys() ?? [])]"


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_the_dashboards_work_in_the_browser_with_the_front_end_fetched_once(
        page, front_end, notebook):  # noqa: F811
    page.wait_for_selector(".jp-Notebook", state="visible")
    deadline = time.monotonic() + 60
    while page.lab.api(f"/api/kernels/{page.kernel_id}")["connections"] < 1:
        assert time.monotonic() < deadline, "the page did not connect to its kernel"
        page.wait_for_timeout(200)
    page.locator(".jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    # both compare dashboards render from the one fetched bundle: 10 runs, then the 4 of the filter
    page.locator(".nbtrack-registry").first.wait_for(state="visible", timeout=300_000)
    page.wait_for_function(f"() => ({ROWS})(0) === '10' && ({ROWS})(1) === '4'")
    # and the charts' bundle, fetched once the page was idle: one of each per page
    charts = frontend.bundle("charts.js").id
    page.wait_for_function(f"() => ({FRONTENDS})().includes('{charts}')")
    assert page.evaluate(FRONTENDS) == [frontend.bundle("compare.js").id, charts]
    assert page.locator(".nbtrack-loading").count() == 0

    # and they are live: a sort in the second one is answered by the kernel
    widget = page.locator(".nbtrack-compare").nth(1)
    answered = int(widget.get_attribute("data-table-version") or 0)
    widget.locator(".nbt-header [data-column='metrics.rmse']").click()
    page.wait_for_function(
        "n => Number(document.querySelectorAll('.nbtrack-compare')[1].dataset.tableVersion)"
        " >= n", arg=answered + 1)
    # the kernel re-ran the search: now with the model run (rmse 1) logged after the widget
    values = [float(v) for v in
              widget.locator(".nbt-body-row .nbt-col-metrics-rmse").all_inner_texts()]
    assert len(values) == int(widget.get_attribute("data-rows")) == 5
    arrow = widget.locator(".nbt-header [data-column='metrics.rmse']").inner_text()[-1]
    assert values == sorted(values, reverse=arrow == "▼")
