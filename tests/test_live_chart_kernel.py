"""The live chart's saved form in a real kernel: the executed notebook shows the final values."""

import pytest

from tests.test_magics_kernel import run_notebook

pytestmark = pytest.mark.slow  # real kernels

WIDGET = "application/vnd.jupyter.widget-view+json"


def test_saved_chart_shows_final_values_not_no_metrics_yet(tmp_path, kernel_name, monkeypatch):
    monkeypatch.delenv("NBTRACK_LIVE", raising=False)
    store = tmp_path / "store"
    nb = run_notebook(tmp_path / "live.ipynb", [
        f"%load_ext nbtrack\n%track_config --tracking-uri {store}",
        "%%track -n steps\nimport nbtrack\nfor step in range(200):\n"
        "    nbtrack.log_metric('loss', 1.0 / (step + 1), step=step)\n"
        "nbtrack.log_metric('rmse', 4.25)",
        "%%track -n quiet\nx = 1",
    ], kernel_name)
    steps, quiet = nb.cells[1], nb.cells[2]
    chart = steps["outputs"][0]
    assert WIDGET in chart["data"]
    text = chart["data"]["text/plain"]
    assert "no metrics yet" not in text
    assert "loss=0.005" in text and "rmse=4.25" in text
    assert "rmse" in chart["data"]["text/html"]
    assert chart["data"]["text/html"].count("<svg") == 1  # loss's curve, as a small picture
    # a cell that logs no metric leaves no chart and no stale text
    assert not any("no metrics yet" in o.get("data", {}).get("text/plain", "")
                   for o in quiet["outputs"])
