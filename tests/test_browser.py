"""The compare widget in real JupyterLab 4 and Notebook 7, in headless Chromium (Playwright).

The front end runs on a loopback port; the example notebook runs in it; the dashboard must
show its rows, re-sort them when a metric header is clicked, and narrow them when an axis of
the parallel-coordinates plot is brushed. A screenshot is saved under ``test-screenshots/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from servers import jupyter_server

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("NBTRACK_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
SCREENSHOTS = ROOT / "test-screenshots"

_MISSING = ("Chromium is not installed: `apt-get install chromium` (bash .ci/run does), or set "
            "NBTRACK_CHROMIUM to a Chromium binary.")
if CHROMIUM is None and os.environ.get("NBTRACK_REQUIRE_BROWSER"):
    raise RuntimeError(_MISSING + " NBTRACK_REQUIRE_BROWSER is set, so this cannot be skipped.")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=_MISSING)


# front end -> (server module, URL path of a notebook)
FRONT_ENDS = {"jupyterlab": ("jupyterlab", "/lab/tree/"),
              "notebook7": ("notebook", "/notebooks/")}


@pytest.fixture
def notebook():
    """The example notebook the page opens (tests may parametrize it)."""
    return "compare.ipynb"


@pytest.fixture(params=sorted(FRONT_ENDS))
def front_end(request):
    return request.param


@pytest.fixture
def lab(tmp_path, front_end):
    root = tmp_path / "lab"
    root.mkdir()
    for name in ("compare.ipynb", "registry.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, root / name)
    env = {"NBTRACK_TRACKING_URI": str(tmp_path / "store")}
    app = FRONT_ENDS[front_end][0]
    with jupyter_server(root, tmp_path / "runtime", app=app, extra_env=env) as server:
        yield server


@pytest.fixture
def page(lab, front_end, notebook):
    """A Chromium page on the example notebook (``page.lab`` is the server).

    The notebook's kernel is started through the server before the page opens, and the page
    connects to it. Left to start one itself, the front end asks "Select Kernel" in a dialog
    whenever the kernel specs are slower to load than the sessions (a busy machine).
    """
    from playwright.sync_api import sync_playwright

    spec = json.loads((lab.root / notebook).read_text())["metadata"]["kernelspec"]["name"]
    session = lab.api("/api/sessions", {"path": notebook, "name": notebook, "type": "notebook",
                                        "kernel": {"name": spec}})
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_page(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        context.goto(f"{lab.url}{FRONT_ENDS[front_end][1]}{notebook}?token={lab.token}")
        context.lab = lab
        context.kernel_id = session["kernel"]["id"]
        context.store = tmp_path_store(lab)
        yield context
        SCREENSHOTS.mkdir(exist_ok=True)  # the page as the test left it: first stop on a failure
        context.screenshot(path=str(SCREENSHOTS / f"last-page-{front_end}-{notebook}.png"))
        browser.close()


# the scrolling boxes around the first dashboard that scroll sideways (none should)
H_SCROLLED = """() => {
  const out = [];
  for (let e = document.querySelector('.nbtrack-compare'); e; e = e.parentElement) {
    const style = getComputedStyle(e).overflowX;
    const scrolls = ['auto', 'scroll'].includes(style) || e === document.documentElement;
    if (scrolls && e.scrollWidth > e.clientWidth + 1) out.push(e.className || e.tagName);
  }
  return out;
}"""

_HEADER = ("document.querySelector(\".nbtrack-compare .nbt-header "
           "[data-column='metrics.rmse']\").textContent")
ARROW_GONE = f"() => !/[▲▼]$/.test({_HEADER})"
ARROW_DOWN = f"() => {_HEADER}.endsWith('▼')"


def _rmse_column(page) -> list[float]:
    cells = page.locator(".nbtrack-compare >> nth=0").locator(".nbt-body-row .nbt-col-metrics-rmse")
    return [float(text) for text in cells.all_inner_texts()]


def test_compare_widget_in_the_browser(page, front_end):
    _run_all(page)

    # the last cell shows a second dashboard: once it is there, every cell has run
    page.locator(".nbtrack-compare").nth(1).wait_for(state="visible", timeout=180_000)
    widget = page.locator(".nbtrack-compare").first
    page.wait_for_function(
        "() => document.querySelector('.nbtrack-compare')?.dataset.rows === '48'")
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == "48 runs"
    assert widget.locator(".nbt-body-row").count() > 10  # virtualized: the rows in view

    # the notebook sorted it from Python (metrics.rmse ASC): the browser shows that order
    header = widget.locator(".nbt-header [data-column='metrics.rmse']")
    assert header.inner_text().endswith("▲")
    ascending = _rmse_column(page)
    assert ascending == sorted(ascending) and len(ascending) > 10

    # params are numbers with 4 significant digits, the full value on hover
    lr = widget.locator(".nbt-body-row .nbt-col-params-lr").first
    full = lr.get_attribute("title")
    assert len(full.replace(".", "").lstrip("0")) > 4  # stored with more digits than shown
    assert float(lr.inner_text()) == float(f"{float(full):.4g}")

    # the plot is drawn once the rows are shown; a re-sort never draws it again
    plot = widget.locator(".nbt-parcoords")
    page.wait_for_function(
        "() => Number(document.querySelector('.nbtrack-compare .nbt-parcoords')"
        "?.dataset.draws) > 0")
    _settle(page)
    draws = plot.get_attribute("data-draws")

    # clicking the header cycles: default order, then descending (DuckDB in the kernel sorts)
    answered = int(widget.get_attribute("data-table-version") or 0)
    header.click()
    page.wait_for_function(ARROW_GONE)
    header.click()
    page.wait_for_function(ARROW_DOWN)
    # the arrow changes at the click; the rows come when the kernel has answered both clicks
    page.wait_for_function(
        "n => Number(document.querySelector('.nbtrack-compare').dataset.tableVersion) >= n",
        arg=answered + 2)
    descending = _rmse_column(page)
    assert descending == sorted(descending, reverse=True)
    assert descending[0] > ascending[0]
    _settle(page)
    assert plot.get_attribute("data-draws") == draws  # three sorts, no redraw of the plot

    # the last axis' tick labels sit right of it, where no line runs, inside the plot
    _check_axis_labels(widget)

    # the column chooser's menu opens inside the output: no horizontal scroll
    widget.locator(".nbt-columns summary").click()
    menu = widget.locator(".nbt-column-menu").bounding_box()
    assert menu["x"] >= widget.bounding_box()["x"]
    assert menu["x"] + menu["width"] <= widget.bounding_box()["x"] + widget.bounding_box()["width"]
    assert page.evaluate(H_SCROLLED) == []
    widget.locator(".nbt-columns summary").click()

    # brushing the first axis of the parallel-coordinates plot narrows the table
    _brush(page, widget, 0, 0.05, 0.5)
    page.wait_for_function(
        "() => { const n = Number(document.querySelector('.nbtrack-compare').dataset.rows);"
        " return n > 0 && n < 48; }", timeout=30_000)
    narrowed = int(widget.get_attribute("data-rows"))
    assert 0 < narrowed < 48
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == f"{narrowed} runs"
    # the plot draws the same runs on top as the kernel's table holds
    page.wait_for_function("n => document.querySelector('.nbtrack-compare .nbt-parcoords')"
                           ".dataset.brushed === String(n)", arg=narrowed)

    SCREENSHOTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(SCREENSHOTS / f"compare-widget-{front_end}.png"))

    # select two rows (click, shift-click): their curves and their diff come from the kernel
    rows = widget.locator(".nbt-body-row")
    rows.nth(0).click()
    rows.nth(1).click(modifiers=["Shift"])
    assert widget.locator(".nbt-body-row.nbt-selected").count() == 2
    widget.locator(".nbt-tabs [data-tab='diff']").click()
    widget.locator(".nbt-diff-table").first.wait_for(state="visible")
    assert widget.locator(".nbt-code-title").first.inner_text().startswith("code: trial-")
    # a code diff with no lines ("identical", "no code recorded") has no empty box under it
    empty = 0
    for block in widget.locator(".nbt-code-diff").all():
        title = block.locator(".nbt-code-title").inner_text()
        if title.endswith(("(identical)", "(no code recorded)")):
            assert block.locator("pre").count() == 0, title
            empty += 1
    assert empty > 0  # the notebook's runs share one cell: no lines differ
    # the charts come in a bundle of their own (plotly), fetched from the kernel once per page
    widget.locator(".nbt-tabs [data-tab='curves']").click()
    widget.locator(".nbt-curves .main-svg").first.wait_for(state="visible")
    assert widget.locator(".nbt-curves .scatterlayer .trace").count() == 2
    _check_painted(widget.locator(".nbt-curves .scatterlayer .trace path.js-line").first)
    # the notebook asked for the importance of the params for metrics.rmse: two bars each
    widget.locator(".nbt-tabs [data-tab='importance']").click()
    importance = widget.locator(".nbt-pane[data-pane='importance']")
    importance.locator(".main-svg").first.wait_for(state="visible")
    assert importance.locator("select").input_value() == "metrics.rmse"
    assert importance.locator(".barlayer .trace").count() == 2
    assert importance.locator(".barlayer .point").count() >= 4  # 4 params, two bars each
    _check_painted(importance.locator(".barlayer .point path").first)
    assert widget.locator(".nbt-chart-note").count() == 0  # no "loading" note left behind
    assert page.evaluate(FRONTENDS) == [_bundle_id("compare.js"), _bundle_id("charts.js")]


FRONTENDS = "() => [...(globalThis[Symbol.for('nbtrack.frontends')]?.keys() ?? [])]"


def _bundle_id(name: str) -> str:
    """The id (name and content digest) of the bundle ``static/<name>``."""
    from nbtrack.widgets.frontend import bundle

    return bundle(name).id


def _check_painted(shape) -> None:
    """``shape`` (an SVG element of a chart) is laid out with a size: drawn, not blank."""
    box = shape.bounding_box()
    assert box is not None and box["width"] > 1 and box["height"] > 1, box


def _settle(page) -> None:
    """Wait until the page has drawn a frame and run the tasks queued before it."""
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))")


def _brush(page, widget, axis: int, start: float, end: float) -> None:
    """Drag along the plot's axis number ``axis`` from ``start`` to ``end`` (0 is the top)."""
    hit = widget.locator(".nbt-parcoords .nbt-axis-hit").nth(axis)
    hit.scroll_into_view_if_needed()
    box = hit.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + start * box["height"])
    page.mouse.down()
    page.mouse.move(x, box["y"] + end * box["height"], steps=12)
    page.mouse.up()


def _check_axis_labels(widget) -> None:
    """The last axis' tick labels are right of its line and inside the plot's box."""
    plot = widget.locator(".nbt-parcoords").bounding_box()
    last = widget.locator(".nbt-parcoords .nbt-axis").last
    line = last.locator("line").first.bounding_box()
    ticks = last.locator(".nbt-tick")
    assert ticks.count() >= 2
    for tick in ticks.all():
        box = tick.bounding_box()
        assert box["x"] > line["x"] + line["width"]
        assert box["x"] + box["width"] <= plot["x"] + plot["width"]


def tmp_path_store(lab) -> Path:
    """The store the notebooks' kernels write to."""
    return lab.root.parent / "store"


_STARTED = ("() => [...document.querySelectorAll('.jp-InputPrompt')]"
            ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")


def _wait_for_the_kernel_connection(page, timeout: float = 60) -> None:
    """Wait until the page is connected to its kernel (the server counts its websocket).

    The toolbar's execution indicator says idle before the page has any kernel at all, so it
    cannot tell; cells run before the connection exists are not run.
    """
    deadline = time.monotonic() + timeout
    while page.lab.api(f"/api/kernels/{page.kernel_id}")["connections"] < 1:
        assert time.monotonic() < deadline, "the page did not connect to its kernel"
        page.wait_for_timeout(200)


def _run_all(page) -> None:
    """Run every cell once the page is connected to its kernel."""
    page.wait_for_selector(".jp-Notebook", state="visible")
    _wait_for_the_kernel_connection(page)
    page.locator(".jp-Notebook").first.click()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(_STARTED)


@pytest.mark.parametrize(("front_end", "notebook"), [("jupyterlab", "registry.ipynb")])
def test_promote_from_the_registry_widget(page, front_end, notebook):
    import nbtrack
    from nbtrack.store import registry

    _run_all(page)
    widget = page.locator(".nbtrack-registry").first
    widget.wait_for(state="visible", timeout=180_000)
    row = widget.locator("tr.nbt-version[data-version='2']")
    row.wait_for(state="visible")
    assert row.locator(".nbt-stage").inner_text() == "None"
    row.locator(".nbt-promote").click()
    confirm = widget.locator(".nbt-confirm")
    assert confirm.inner_text().startswith("Move version 2 of nyc-taxi-regressor to Production")
    widget.locator(".nbt-confirm-yes").click()
    widget.locator(".nbt-message.nbt-ok").wait_for(state="visible", timeout=30_000)
    assert confirm.is_hidden()
    assert widget.locator("tr.nbt-version[data-version='2'] .nbt-stage").inner_text() == \
        "Production"
    headers = widget.locator(".nbt-history thead th").all_inner_texts()
    assert headers == ["when", "who", "action", "version", "change", "comment"]
    assert widget.locator(".nbt-history tbody tr").count() > 0
    SCREENSHOTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(SCREENSHOTS / "registry-widget.png"))
    # the store says the same, read by another process (this one)
    registry.forget_stores()
    nbtrack.set_tracking_uri(page.store)
    client = nbtrack.Client()
    assert client.get_model_version("nyc-taxi-regressor", 2).current_stage == "Production"
    assert client.get_model_version("nyc-taxi-regressor", 3).current_stage == "Archived"
    assert client.get_registry_events("nyc-taxi-regressor")["action"].iloc[-1] == \
        "transition_stage"


def _kill_kernel(lab) -> None:
    """Kill the notebook's kernel process outright, as a crash would."""
    import psutil

    (session,) = lab.api("/api/sessions")
    marker = f"kernel-{session['kernel']['id']}.json"
    for proc in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in proc.info["cmdline"] or []):
            proc.kill()
            return
    raise AssertionError("the kernel process was not found")


@pytest.mark.parametrize("front_end", ["jupyterlab"])
def test_a_widget_that_loses_its_kernel_keeps_its_data(page, front_end):
    _run_all(page)
    page.locator(".nbtrack-compare").nth(1).wait_for(state="visible", timeout=180_000)
    widget = page.locator(".nbtrack-compare").first
    _kill_kernel(page.lab)
    page.get_by_role("dialog").get_by_role("button", name="Ok").click()  # "kernel died"
    widget.locator(".nbt-header [data-column='metrics.rmse']").click()  # ask; no answer comes
    note = widget.locator(".nbt-kernel-note")
    note.wait_for(state="visible", timeout=20_000)
    assert note.inner_text().startswith("No answer from the kernel")
    assert widget.get_attribute("data-rows") == "48"  # the last data stays
    assert widget.locator(".nbt-body-row").count() > 10
    widget.screenshot(path=str(SCREENSHOTS / "compare-widget-no-kernel.png"))


def _started(client, msg_id: str) -> None:
    """Wait until the kernel has started to run the request ``msg_id`` of ``client``."""
    while True:
        msg = client.get_iopub_msg(timeout=30)
        if msg["msg_type"] == "execute_input" and msg["parent_header"].get("msg_id") == msg_id:
            return


CHART_NOTE = ("([i, pane]) => document.querySelectorAll('.nbtrack-compare')[i]"
              ".querySelector(`[data-pane=${pane}] .nbt-chart-note`)?.textContent ?? ''")


@pytest.mark.parametrize("front_end", ["jupyterlab"])
def test_charts_not_yet_fetched_say_why_in_their_tab(page, front_end):
    """The charts' bundle not yet in the page: the tab says it waits, and why it cannot come."""
    _run_all(page)
    page.locator(".nbtrack-compare").nth(1).wait_for(state="visible", timeout=180_000)
    # the page fetches the charts' bundle once it is idle after the first rows
    charts = _bundle_id("charts.js")
    page.wait_for_function(f"() => ({FRONTENDS})().includes('{charts}')", timeout=60_000)
    page.evaluate(f"() => globalThis[Symbol.for('nbtrack.frontends')].get('{charts}').promise")
    widget = page.locator(".nbtrack-compare").nth(1)
    # forget it, as if it had not come in time, and open a chart's tab in the same task (so
    # that no fetch can slip in between)
    forget_and_open = (
        "([id, tab]) => { globalThis[Symbol.for('nbtrack.frontends')].delete(id);"
        " document.querySelectorAll('.nbtrack-compare')[1]"
        ".querySelector(`.nbt-tabs [data-tab=${tab}]`).click(); }")

    # a busy kernel answers after its cell: meanwhile the tab says it waits (and, past 8 s, why:
    # "No answer from the kernel for the charts…"), then the chart is drawn
    client = page.lab.kernel_client(page.kernel_id)
    try:
        _started(client, client.execute("import time; time.sleep(10)"))
        page.evaluate(forget_and_open, [charts, "curves"])
        assert page.evaluate(CHART_NOTE, [1, "curves"]) == "Loading the charts from the kernel…"
        widget.locator(".nbt-curves").wait_for(state="attached", timeout=40_000)
        assert page.evaluate(CHART_NOTE, [1, "curves"]) == ""
    finally:
        client.stop_channels()

    # a dead kernel: the other chart's tab says so at once
    _kill_kernel(page.lab)
    page.get_by_role("dialog").get_by_role("button", name="Ok").click()  # "kernel died"
    page.evaluate(forget_and_open, [charts, "importance"])
    page.wait_for_function(f"() => ({CHART_NOTE})([1, 'importance']).includes('could not')")
    assert page.evaluate(CHART_NOTE, [1, "importance"]).startswith(
        "The charts could not be loaded: this output is no longer connected to its kernel")
    widget.screenshot(path=str(SCREENSHOTS / "compare-widget-charts-no-kernel.png"))


MANY = 2_500  # more runs than the plot draws as lines


@pytest.fixture
def many_runs(lab):
    """A store of MANY runs and a notebook ``many.ipynb`` that compares them."""
    import random

    import nbformat

    import nbtrack
    from nbtrack.entities import Metric, Param
    from nbtrack.store import registry

    client = nbtrack.Client(tracking_uri=tmp_path_store(lab))
    experiment = client.create_experiment("many")
    rng = random.Random(0)
    for i in range(MANY):
        run_id = client.create_run(experiment, run_name=f"r{i}").info.run_id
        client.log_batch(run_id, [Metric("rmse", rng.random(), 0, 0),
                                  Metric("mae", rng.random(), 0, 0)],
                         [Param("lr", repr(10 ** rng.uniform(-4, -1))),
                          Param("model", rng.choice(["lasso", "ridge", "tree"]))], [])
        client.set_terminated(run_id)
    client.flush()
    registry.forget_stores()  # the kernel opens the store next
    cells = [nbformat.v4.new_code_cell("import nbtrack"),
             nbformat.v4.new_code_cell('dash = nbtrack.compare("many")\ndash')]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, lab.root / "many.ipynb")


def _in_kernel(page, code: str) -> None:
    """Run ``code`` in the notebook's kernel from a second client (the page sees its effects)."""
    client = page.lab.kernel_client(page.kernel_id)
    try:
        reply = client.execute_interactive(code, timeout=60, output_hook=lambda _: None)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


@pytest.mark.parametrize(("front_end", "notebook"), [("jupyterlab", "many.ipynb")])
def test_the_dashboard_at_scale(many_runs, page, front_end, notebook):
    _run_all(page)
    widget = page.locator(".nbtrack-compare").first
    page.wait_for_function(
        f"() => document.querySelector('.nbtrack-compare')?.dataset.rows === '{MANY}'",
        timeout=180_000)
    plot = widget.locator(".nbt-parcoords")
    page.wait_for_function(
        "() => Number(document.querySelector('.nbtrack-compare .nbt-parcoords')"
        "?.dataset.draws) > 0")

    # at most a few thousand lines, and a note of how many
    assert plot.get_attribute("data-total") == str(MANY)
    assert plot.get_attribute("data-lines") == "2000"
    assert widget.locator(".nbt-lines-note").inner_text() == (
        f"Showing 2,000 of {MANY:,} runs as lines (an even sample); brushed and selected runs "
        "are always drawn.")
    _check_axis_labels(widget)

    # a sort re-orders the rows and leaves the plot alone
    _settle(page)
    draws = plot.get_attribute("data-draws")
    version = int(widget.get_attribute("data-table-version") or 0)
    widget.locator(".nbt-header [data-column='metrics.rmse']").click()
    page.wait_for_function(
        "n => Number(document.querySelector('.nbtrack-compare').dataset.tableVersion) > n",
        arg=version)
    rmse = _rmse_column(page)
    assert rmse == sorted(rmse, reverse=True)
    _settle(page)
    assert plot.get_attribute("data-draws") == draws

    # a brush: the kernel narrows the table; the plot draws the brushed runs on top
    axis = widget.locator(".nbt-axis-hit").all()
    rmse_axis = [a.get_attribute("data-axis") for a in axis].index("metrics.rmse")
    _brush(page, widget, rmse_axis, 0.3, 0.7)
    page.wait_for_function(
        f"() => {{ const n = Number(document.querySelector('.nbtrack-compare').dataset.rows);"
        f" return n > 0 && n < {MANY}; }}", timeout=30_000)
    narrowed = widget.get_attribute("data-rows")
    page.wait_for_function("n => document.querySelector('.nbtrack-compare .nbt-parcoords')"
                           ".dataset.brushed === n", arg=narrowed)
    SCREENSHOTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(SCREENSHOTS / "compare-widget-at-scale.png"))

    # a malformed brush, as a message from the front end: an inline error, not a traceback
    error = widget.locator(".nbt-brush-error")
    assert error.is_hidden()
    for brush, message in [('{"metrics.rmse": {"ranges": [[0]]}}', "is a pair [low, high]"),
                           ('{"metrics.rmse": {"ranges": [[{}, 1]]}}', "needs numbers, not {}")]:
        _in_kernel(page, f"dash.set_state({{'brush': {brush}}})")
        error.wait_for(state="visible")
        page.wait_for_function(
            "m => document.querySelector('.nbtrack-compare .nbt-brush-error')"
            ".textContent.includes(m)", arg=message)
        assert error.inner_text().startswith("The plot's brush was ignored: ")
        page.wait_for_function(  # the filter alone
            f"() => document.querySelector('.nbtrack-compare').dataset.rows === '{MANY}'")
    _in_kernel(page, "dash.set_state({'brush': {}})")
    error.wait_for(state="hidden")
