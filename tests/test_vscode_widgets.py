"""The dashboards in VS Code's widget host: its widget manager on a real kernel, in Chromium.

VS Code itself cannot run here, but what draws widgets in its notebooks can: the Jupyter
extension's webview runs the widget manager published as ``@vscode/jupyter-ipywidgets8``
(``dist/ipywidgets.js``), with requirejs on the page loading third-party widget modules (here
anywidget's) from the kernel environment's ``share/jupyter/nbextensions``. The harness page
(``tests/vscode_host/``) runs that manager on a kernel of a real Jupyter server, over
``@jupyterlab/services``' websocket connection, and renders each widget output as VS Code's
renderer does. The kernel tracks runs and shows the compare and registry dashboards; the page must
paint their rows, sort on a header click, and fetch the compare bundle over the widget's own
messages when it does not hold it.

What this does not show: VS Code's own webview (its content security policy, its theme's CSS
variables) and the extension host between the page and the kernel, which carries the same kernel
messages through its own channel instead of a websocket.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from servers import jupyter_server

ROOT = Path(__file__).resolve().parent.parent
HOST = Path(__file__).resolve().parent / "vscode_host"
NODE_MODULES = ROOT / "js" / "node_modules"
SCREENSHOTS = ROOT / "test-screenshots"
NBEXTENSIONS = Path(sys.prefix) / "share" / "jupyter" / "nbextensions"  # the kernel's environment
CHROMIUM = os.environ.get("NBTRACK_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
# the page's files that come from npm (js/package.json's devDependencies)
FROM_NPM = {"ipywidgets.js": NODE_MODULES / "@vscode/jupyter-ipywidgets8/dist/ipywidgets.js",
            "require.js": NODE_MODULES / "requirejs/require.js"}
ESBUILD = NODE_MODULES / "esbuild/bin/esbuild"
# modules VS Code's widget manager defines itself: never loaded from an nbextension
BUILT_IN = {"jupyter-js-widgets", "@jupyter-widgets/base", "@jupyter-widgets/controls",
            "@jupyter-widgets/output"}


def _missing() -> str | None:
    if CHROMIUM is None:
        return ("Chromium is not installed: `apt-get install chromium` (bash .ci/run does), or "
                "set NBTRACK_CHROMIUM to a Chromium binary.")
    absent = [str(p.relative_to(ROOT)) for p in [*FROM_NPM.values(), ESBUILD,
                                                  NODE_MODULES / "@jupyterlab/services"]
              if not p.exists()]
    if absent:
        return (f"VS Code's widget host needs js/'s npm packages ({', '.join(absent)} missing): "
                "run `cd js && npm ci` (bash .ci/run does).")
    return None


_REASON = _missing()
if _REASON and os.environ.get("NBTRACK_REQUIRE_BROWSER"):
    raise RuntimeError(_REASON + " NBTRACK_REQUIRE_BROWSER is set, so this cannot be skipped.")
needs_the_host = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")

_MAPPING = re.compile(r"""["']?([@\w./-]+)["']?\s*:\s*["'](nbextensions/[^"']+)["']""")


def widget_sources(nbextensions: Path, base: str) -> dict[str, str]:
    """Module name -> script URL, as VS Code finds them: each nbextension's ``extension.js``
    maps module names to scripts for requirejs (``anywidget: "nbextensions/anywidget/index"``),
    relative to the folder above ``nbextensions``."""
    sources = {}
    for entry in sorted(nbextensions.glob("*/extension.js")):
        for module, script in _MAPPING.findall(entry.read_text(errors="replace")):
            if module not in BUILT_IN:
                sources[module] = f"{base}/{script}.js"
    return sources


def test_anywidget_ships_the_nbextension_vscode_loads():
    """VS Code loads anywidget's front end from this mapping; without it nothing renders."""
    sources = widget_sources(NBEXTENSIONS, "/x")
    assert sources.get("anywidget") == "/x/nbextensions/anywidget/index.js"
    assert (NBEXTENSIONS / "anywidget" / "index.js").is_file()


@pytest.fixture
def site(tmp_path) -> Path:
    """The page's files, served by the Jupyter server under ``/static/vscode-host/``: the harness
    (``host.js`` bundled with ``@jupyterlab/services``), requirejs, VS Code's ``ipywidgets.js``
    and the kernel environment's nbextensions, as VS Code serves them to its webview."""
    static = tmp_path / "static"
    folder = static / "vscode-host"
    folder.mkdir(parents=True)
    subprocess.run([str(ESBUILD), str(HOST / "host.js"), "--bundle", "--format=esm",
                    "--platform=browser", "--target=es2020", "--log-level=warning",
                    "--define:global=globalThis", f"--outfile={folder / 'host.js'}"],
                   check=True, env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
    shutil.copy(HOST / "index.html", folder)
    for name, path in FROM_NPM.items():
        shutil.copy(path, folder / name)
    shutil.copytree(NBEXTENSIONS, folder / "nbextensions")
    return static


@pytest.fixture
def server(tmp_path, kernel_name, site):
    root = tmp_path / "root"
    root.mkdir()
    env = {"NBTRACK_TRACKING_URI": str(tmp_path / "store")}
    with jupyter_server(root, tmp_path / "runtime", extra_env=env,
                        extra_args=(f"--ServerApp.extra_static_paths={site}",)) as running:
        running.kernel = running.api("/api/kernels", {"name": kernel_name})
        yield running


@pytest.fixture
def host(server):
    """The harness page, connected to the server's kernel through VS Code's widget manager."""
    from playwright.sync_api import sync_playwright

    base = f"{server.url}/static/vscode-host"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{base}/index.html")
        page.wait_for_function("() => window.vscodeHost")
        page.evaluate("options => vscodeHost.start(options)", {
            "baseUrl": server.url + "/", "token": server.token,
            "kernelId": server.kernel["id"], "kernelName": server.kernel["name"],
            "sources": widget_sources(NBEXTENSIONS, base)})
        try:
            yield page
        finally:
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "vscode-host-last-page.png"), full_page=True)
            browser.close()


def run_cell(page, code: str) -> str:
    """Run ``code`` in the kernel from the page; the id of the element holding its outputs."""
    result = page.evaluate("code => vscodeHost.run(code)", code)
    assert result["status"] == "ok", "\n".join(result["errors"])
    return result["cell"]


def shown(page, selector: str, timeout: float = 120_000) -> None:
    """Wait until ``selector`` is in the page; fail at once, with the page's log, when the widget
    manager reports a failure (a widget module not loaded, a view not rendered)."""
    page.wait_for_function("s => document.querySelector(s) || vscodeHost.problems.length",
                           arg=selector, timeout=timeout)
    if page.query_selector(selector) is None:
        pytest.fail(f"{selector} is not shown in VS Code's widget host:\n"
                    + "\n".join(page.evaluate("() => [...vscodeHost.problems, ...vscodeHost.log]")))


def _painted_names(widget) -> list[str]:
    """The run names of the rows in view, after the page has drawn a frame."""
    widget.page.evaluate(
        "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    cells = widget.locator(".nbt-body-row .nbt-col-run-name")
    for cell in cells.all():
        box = cell.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        assert cell.is_visible()
    return cells.all_inner_texts()


TRACK = """
import nbtrack
nbtrack.set_experiment("vscode")
for name, rmse, lr in [("alpha", 0.3, 0.1), ("bravo", 0.1, 0.01), ("charlie", 0.2, 0.001)]:
    with nbtrack.start_run(run_name=name):
        nbtrack.log_param("lr", lr)
        nbtrack.log_metric("rmse", rmse)
"""


@pytest.mark.slow
@needs_the_host
def test_the_compare_dashboard_in_vscode_widget_host(host):
    run_cell(host, TRACK)
    cell = run_cell(host, 'dash = nbtrack.compare("vscode")\ndash')
    widget = host.locator(f"#{cell} .nbtrack-compare")
    shown(host, f"#{cell} .nbtrack-compare[data-rows='3']")
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == "3 runs"
    assert sorted(_painted_names(widget)) == ["alpha", "bravo", "charlie"]

    # a header click: the kernel sorts, descending first, then ascending
    header = widget.locator(".nbt-header [data-column='metrics.rmse']")
    for expected in (["alpha", "charlie", "bravo"], ["bravo", "charlie", "alpha"]):
        version = int(widget.get_attribute("data-table-version") or 0)
        header.click()
        host.wait_for_function(
            "([id, n]) => Number(document.querySelector(`#${id} .nbtrack-compare`)"
            ".dataset.tableVersion) > n", arg=[cell, version])
        assert _painted_names(widget) == expected
    SCREENSHOTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(SCREENSHOTS / "compare-widget-vscode-host.png"))

    # a page without the bundle (as a reloaded window): the widget asks the kernel for it over
    # its own messages, and the kernel sends it as a binary buffer
    host.evaluate("() => globalThis[Symbol.for('nbtrack.frontends')].clear()")
    assert host.evaluate("() => vscodeHost.frontEnd") == {"asked": 0, "answers": 0, "bytes": 0}
    again = run_cell(host, "assert dash._nbtrack_bundle == b''\ndash")
    shown(host, f"#{again} .nbtrack-compare[data-rows='3']")
    assert _painted_names(host.locator(f"#{again} .nbtrack-compare")) == [
        "bravo", "charlie", "alpha"]
    bundle = (ROOT / "nbtrack" / "static" / "compare.js").stat().st_size
    assert host.evaluate("() => vscodeHost.frontEnd") == {"asked": 1, "answers": 1,
                                                           "bytes": bundle}
    assert host.evaluate("() => vscodeHost.problems") == []


REGISTRY = """
client = nbtrack.Client()
client.create_registered_model("vscode-model")
for run in nbtrack.search_runs(experiment_names=["vscode"], order_by=["metrics.rmse DESC"],
                               output_format="list"):
    client.create_model_version("vscode-model", f"runs:/{run.info.run_id}/model", run.info.run_id)
client.transition_model_version_stage("vscode-model", 3, "Production")
nbtrack.registry("vscode-model")
"""


@pytest.mark.slow
@needs_the_host
def test_the_registry_dashboard_in_vscode_widget_host(host):
    run_cell(host, TRACK)
    cell = run_cell(host, REGISTRY)
    widget = host.locator(f"#{cell} .nbtrack-registry")
    shown(host, f"#{cell} .nbtrack-registry tr.nbt-version[data-version='3']")
    rows = {row.get_attribute("data-version"): (row.locator("td").nth(2).inner_text(),
                                                row.locator(".nbt-stage").inner_text())
            for row in widget.locator("tr.nbt-version").all()}
    assert rows == {"1": ("alpha", "None"), "2": ("charlie", "None"),
                    "3": ("bravo", "Production")}
    assert widget.locator(".nbt-history tbody tr").count() == 5

    # a promotion from the page: a message to the kernel, which moves the stages and says so
    widget.locator("tr.nbt-version[data-version='2'] .nbt-promote").click()
    widget.locator(".nbt-confirm-yes").click()
    widget.locator(".nbt-message.nbt-ok").wait_for(state="visible", timeout=30_000)
    assert widget.locator("tr.nbt-version[data-version='2'] .nbt-stage").inner_text() == \
        "Production"
    assert widget.locator("tr.nbt-version[data-version='3'] .nbt-stage").inner_text() == \
        "Archived"
    run_cell(host, 'assert client.get_model_version("vscode-model", 2).current_stage == '
                   '"Production"')
    SCREENSHOTS.mkdir(exist_ok=True)
    widget.screenshot(path=str(SCREENSHOTS / "registry-widget-vscode-host.png"))
    assert host.evaluate("() => vscodeHost.problems") == []
