"""The live chart's model without a front end: what it sends, whichever thread sends it."""

import threading

import traitlets

from nbtrack.widgets.live import LiveChart


class FakeClient:
    """The Client methods a live chart uses; ``write`` hands rows over as a durable batch."""

    def __init__(self) -> None:
        self.listeners = []

    def follow_writes(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def write(self, rows) -> None:
        for listener in list(self.listeners):
            listener(rows)

    def sync_soon(self) -> None:
        pass

    def has_unsynced(self) -> bool:
        return False


def _rows(steps):
    return [("run", "loss", 1.0 / (s + 1), s, 0) for s in steps]


class HeldChart(LiveChart):
    """Polled only by the thread named ``held``, whose push is held after it gathered points."""

    gathered = threading.Event()
    release = threading.Event()

    def poll(self) -> None:
        if threading.current_thread().name == "held":  # not the process's poller thread
            super().poll()

    @traitlets.validate("series")
    def _hold(self, proposal):
        if threading.current_thread().name == "held":
            HeldChart.gathered.set()
            HeldChart.release.wait(10)
        return proposal["value"]


def test_a_push_that_was_overtaken_never_sends_older_points_last():
    client = FakeClient()
    chart = HeldChart(client, "run", "live")
    try:
        client.write(_rows(range(10)))
        sent = []
        chart.observe(lambda change: sent.append(len(change["new"]["loss"]["step"])), "series")
        # the poller gathers ten points, then is held before it sends them
        poller = threading.Thread(target=chart.poll, name="held")
        poller.start()
        assert HeldChart.gathered.wait(10)
        client.write(_rows(range(10, 30)))
        ending = threading.Thread(target=chart.finish)  # the cell ends with all 30 points
        ending.start()
        ending.join(0.5)  # it may send now, or wait for the held push
        HeldChart.release.set()
        poller.join(10)
        ending.join(10)
        assert sent and sent[-1] == 30  # the last update the front end gets has every point
        assert len(chart.series["loss"]["step"]) == 30
    finally:
        HeldChart.release.set()
        chart.close()


class FakeHandle:
    """A display handle that keeps what the output was updated to."""

    def __init__(self) -> None:
        self.updates = []

    def update(self, obj, raw=False):
        assert raw
        self.updates.append(obj)


def test_the_saved_form_shows_the_final_values_when_the_cell_ends():
    client = FakeClient()
    chart = LiveChart(client, "run", "fit")
    chart._handle = handle = FakeHandle()
    try:
        assert "no metrics yet" in repr(chart)
        client.write(_rows(range(200)))
        chart.finish({"loss": 1.0 / 200, "rmse": 4.25})
        (bundle,) = handle.updates
        text = bundle["text/plain"]
        assert "no metrics yet" not in text
        assert "loss=0.005 (step 199)" in text and "rmse=4.25" in text
        assert "<td>rmse</td>" in bundle["text/html"].replace(" style='text-align:left'", "")
        assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == chart.model_id
        assert repr(chart) == f"<{text[1:-1]}>"
    finally:
        chart.close()


def test_a_cell_without_metrics_leaves_an_empty_output():
    chart = LiveChart(FakeClient(), "run", "quiet")
    chart._handle = handle = FakeHandle()
    try:
        chart.finish({})
        assert handle.updates == [{"text/plain": ""}]
    finally:
        chart.close()


def test_the_saved_form_draws_a_small_curve_per_metric():
    from nbtrack.widgets.live import sparkline

    client = FakeClient()
    chart = LiveChart(client, "run", "fit")
    chart._handle = handle = FakeHandle()
    try:
        client.write(_rows(range(500)))
        chart.finish({"loss": 1.0 / 500, "rmse": 4.25})
        page = handle.updates[0]["text/html"]
        assert page.count("<svg") == 1  # loss has a curve; rmse, one value, has none
        assert len(page) < 3000
    finally:
        chart.close()
    assert sparkline([1.0]) == "" and sparkline([float("nan"), 1.0]) == ""
    line = sparkline([3.0, 2.0, 1.0], width=100, height=24)
    assert "points='0.0,2.0 50.0,12.0 100.0,22.0'" in line
    assert sparkline([2.0, 2.0]).count(",22.0") == 2  # a flat line sits at the bottom
