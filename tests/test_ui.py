"""``nbtrack ui``: the dashboards served by Voilà, on localhost, stopped by Ctrl-C.

The fast tests check what it says and refuses; the slow one starts it as a user would, drives it
in headless Chromium (runs shown, sorted, filtered, a version promoted), then sends SIGINT and
checks that it and its kernels are gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import nbtrack
from nbtrack.cli import main
from nbtrack.ui import launch

CHROMIUM = os.environ.get("NBTRACK_CHROMIUM") or shutil.which("chromium") or shutil.which(
    "chromium-browser")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-screenshots"


def _log_runs(n: int = 6) -> None:
    nbtrack.set_experiment("ui")
    for i in range(n):
        with nbtrack.start_run(run_name=f"trial-{i}"):
            nbtrack.log_param("alpha", i / 10)
            nbtrack.log_metric("rmse", 10.0 - i)
    nbtrack.flush()


def test_no_store_is_an_error_and_creates_none(tmp_path, capsys):
    where = tmp_path / "nowhere"
    assert main(["--tracking-uri", str(where), "ui", "--no-browser"]) == 1
    assert "No nbtrack store at" in capsys.readouterr().err
    assert not where.exists()


def test_unknown_experiment_is_an_error(store_dir, capsys):
    _log_runs(1)
    assert main(["ui", "--tracking-uri", str(store_dir), "-e", "nope", "--no-browser"]) == 1
    assert "No experiment named 'nope'" in capsys.readouterr().err


def test_without_voila_it_says_how_to_install_it(store_dir, capsys, monkeypatch):
    _log_runs(1)
    monkeypatch.setattr(launch, "voila_installed", lambda: False)
    assert main(["ui", "--tracking-uri", str(store_dir), "--no-browser"]) == 1
    err = capsys.readouterr().err
    assert 'pip install "nbtrack[ui]"' in err and "Voilà" in err


def test_localhost_only_unless_told_and_it_says_so(tmp_path):
    local = launch.plan("/s", None, "127.0.0.1", 9999, _fresh(tmp_path / "a"))
    assert "--Voila.ip=127.0.0.1" in local.argv and "--port=9999" in local.argv
    assert local.url == "http://127.0.0.1:9999/"
    assert not any(a.startswith("--Voila.token") for a in local.argv)
    text = launch.describe("/s", None, local)
    assert "only on this machine (localhost)" in text and "--host 0.0.0.0" in text
    assert "Ctrl-C" in text
    # the notebook's kernel is this Python, whatever kernels the machine has
    spec = Path(local.env["JUPYTER_PATH"].split(os.pathsep)[0], "kernels", launch.KERNEL)
    assert sys.executable in (spec / "kernel.json").read_text()

    everywhere = launch.plan("/s", "exp", "0.0.0.0", 9999, _fresh(tmp_path / "b"))
    assert "--Voila.ip=0.0.0.0" in everywhere.argv
    assert "?token=" in everywhere.url
    assert any(a.startswith("--Voila.token=") for a in everywhere.argv)
    assert "anyone with the URL" in launch.describe("/s", "exp", everywhere)
    assert everywhere.env["NBTRACK_UI_EXPERIMENT"] == "exp"


def _fresh(folder: Path) -> Path:
    folder.mkdir()
    return folder


def test_the_dashboard_notebook_is_shipped_and_shows_both_dashboards(store_dir, monkeypatch):
    """What the served notebook runs, run here: the compare widget and the registry's note."""
    import json

    from nbtrack.ui import page
    from nbtrack.widgets.compare import CompareWidget

    cell = json.loads(launch.DASHBOARD.read_text())["cells"][0]
    assert "dashboard()" in "".join(cell["source"])
    _log_runs(3)
    assert isinstance(page.runs_view("ui"), CompareWidget)
    assert isinstance(page.runs_view(None), CompareWidget)
    assert "No model is registered" in page.registry_view().value
    # an error is a line of text on the page (Voilà would say only that a cell failed)
    assert "No experiment named &#x27;nope&#x27;" in page.shown(page.runs_view, "nope").value


# --- in a browser ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process, timeout: float = 120) -> None:
    """Wait until the server accepts connections (a TCP connect: a GET would start a kernel)."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, "nbtrack ui exited early"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline, "nbtrack ui did not start listening"
            time.sleep(0.2)


def _kernels_of(pid: int) -> list:
    import psutil

    return [p for p in psutil.Process(pid).children(recursive=True)
            if "ipykernel_launcher" in " ".join(p.cmdline())]


def _register_two_versions() -> None:
    import numpy as np
    from sklearn.linear_model import Ridge

    import nbtrack.sklearn

    nbtrack.set_experiment("ui")
    for alpha in (1.0, 2.0):
        with nbtrack.start_run(run_name=f"model-{alpha}") as run:
            model = Ridge(alpha=alpha).fit(np.arange(10.0).reshape(-1, 1), np.arange(10.0))
            nbtrack.log_metric("rmse", alpha)
            nbtrack.sklearn.log_model(model, "model")
        nbtrack.register_model(f"runs:/{run.info.run_id}/model", "ui-model")
    nbtrack.flush()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("NBTRACK_REQUIRE_BROWSER"),
                    reason="Chromium is not installed (apt-get install chromium)")
def test_nbtrack_ui_in_the_browser_then_ctrl_c(store_dir, tmp_path):
    from playwright.sync_api import sync_playwright

    from nbtrack.store import registry

    _log_runs(6)
    _register_two_versions()
    registry.close_all()  # let go of the store file: the dashboard's kernel opens it

    port = _free_port()
    log = (tmp_path / "ui.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "nbtrack.cli", "ui", "--tracking-uri", str(store_dir),
         "--port", str(port), "--no-browser"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        _wait_for_port(port, process)
        said = (tmp_path / "ui.log").read_text()
        assert f"http://127.0.0.1:{port}/" in said and "only on this machine" in said

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/")
            try:
                _drive(page)
            finally:  # the page as the test left it: the first stop on a failure
                SCREENSHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SCREENSHOTS / "nbtrack-ui.png"), full_page=True)
            kernels = _kernels_of(process.pid)
            assert kernels, "the page's kernel is a child of nbtrack ui"
            browser.close()

        process.send_signal(signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0
        import psutil

        _, alive = psutil.wait_procs(kernels, timeout=30)
        assert alive == [], "Ctrl-C left kernels running"
        assert "nbtrack ui: stopped." in (tmp_path / "ui.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()

    # the promotion went to the store
    registry.forget_stores()
    nbtrack.set_tracking_uri(str(store_dir))
    assert nbtrack.Client().get_model_version("ui-model", 2).current_stage == "Production"


def _drive(page) -> None:
    """Runs shown, sorted by a header click, filtered by the filter box; a version promoted."""
    widget = page.locator(".nbtrack-compare").first
    widget.wait_for(state="visible")
    page.wait_for_function(
        "() => document.querySelector('.nbtrack-compare')?.dataset.rows === '8'")
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == "8 runs"

    column = widget.locator(".nbt-body-row .nbt-col-metrics-rmse")
    answered = int(widget.get_attribute("data-table-version") or 0)
    widget.locator(".nbt-header [data-column='metrics.rmse']").click()
    page.wait_for_function(
        "n => Number(document.querySelector('.nbtrack-compare').dataset.tableVersion) >= n",
        arg=answered + 1)
    arrow = widget.locator(".nbt-header [data-column='metrics.rmse']").inner_text()[-1]
    values = [float(v) for v in column.all_inner_texts() if v.strip()]
    assert len(values) == 8
    assert values == sorted(values, reverse=arrow == "▼"), (arrow, values)

    box = widget.locator(".nbt-filter")
    box.fill("metrics.rmse < 6")  # trial-5 and the two model runs
    box.press("Enter")
    page.wait_for_function(
        "() => document.querySelector('.nbtrack-compare').dataset.rows === '3'")
    assert widget.locator(".nbt-toolbar .nbt-status").inner_text() == "3 runs"
    assert all(float(v) < 6 for v in column.all_inner_texts() if v.strip())

    registry = page.locator(".nbtrack-registry").first
    row = registry.locator("tr.nbt-version[data-version='2']")
    row.wait_for(state="visible")
    row.locator(".nbt-promote").click()
    registry.locator(".nbt-confirm-yes").click()
    registry.locator(".nbt-message.nbt-ok").wait_for(state="visible", timeout=60_000)
    assert registry.locator("tr.nbt-version[data-version='2'] .nbt-stage").inner_text() == \
        "Production"
