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

    # brushing the first axis of the parallel-coordinates plot narrows the table
    plot = widget.locator(".nbt-parcoords .main-svg").first
    plot.wait_for(state="visible")
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    x = box["x"] + 60  # the first axis sits at the left margin
    top, bottom = box["y"] + 40, box["y"] + 320 - 20
    page.mouse.move(x, top + 0.05 * (bottom - top))
    page.mouse.down()
    page.mouse.move(x, top + 0.5 * (bottom - top), steps=12)
    page.mouse.up()
    page.wait_for_function(
        "() => { const n = Number(document.querySelector('.nbtrack-compare').dataset.rows);"
        " return n > 0 && n < 48; }", timeout=30_000)
    narrowed = int(widget.get_attribute("data-rows"))
    assert 0 < narrowed < 48
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == f"{narrowed} runs"

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
    widget.locator(".nbt-tabs [data-tab='curves']").click()
    widget.locator(".nbt-curves .main-svg").first.wait_for(state="visible")
    assert widget.locator(".nbt-curves .scatterlayer .trace").count() == 2


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
