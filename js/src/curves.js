// Metric history of the selected runs: step or time on x, smoothing, a log y axis.
import { getPlotly, purge } from "./plotly.js";
import { seriesByRun, smooth } from "./smoothing.js";
import { whenVisible } from "./visible.js";

/**
 * Build the curves panel in `el`; returns `{update(model)}`, where `model.history` is the
 * decoded table of metric histories (step, timestamp, value by run).
 */
export function createCurves(el, { onMetric }) {
  const controls = document.createElement("div");
  controls.className = "nbt-controls";
  const metric = document.createElement("select");
  const xAxis = document.createElement("select");
  xAxis.innerHTML = "<option value='step'>x: step</option><option value='time'>x: time</option>";
  const smoothing = document.createElement("input");
  Object.assign(smoothing, { type: "range", min: 0, max: 0.99, step: 0.01, value: 0 });
  smoothing.title = "smoothing";
  const logY = document.createElement("label");
  const logBox = document.createElement("input");
  logBox.type = "checkbox";
  logY.append(logBox, " log y");
  controls.append(metric, xAxis, "smoothing", smoothing, logY);
  const note = document.createElement("div");
  note.className = "nbt-note";
  const plot = document.createElement("div");
  plot.className = "nbt-curves";
  el.append(controls, note, plot);
  let last = null;

  metric.onchange = () => onMetric(metric.value);

  function draw() {
    if (!last) return;
    const { history: data, names, available, chosen } = last;
    metric.replaceChildren(...available.map((name) => new Option(name.slice(8), name)));
    metric.value = chosen;
    if (data.numRows === 0) {
      purge(plot);
      note.textContent = "Select runs in the table to see their curves.";
      return;
    }
    note.textContent = "";
    const alpha = Number(smoothing.value);
    const traces = [];
    for (const [id, s] of seriesByRun(data.columns, data.numRows)) {
      const x = xAxis.value === "step" ? s.step : s.time.map((t) => new Date(t));
      traces.push({ type: "scatter", mode: "lines", name: names.get(id) ?? id.slice(0, 8),
        x, y: smooth(s.value, alpha) });
    }
    whenVisible(plot, () => getPlotly().react(plot, traces, {
      height: 300, margin: { l: 50, r: 20, t: 20, b: 40 },
      xaxis: { title: { text: xAxis.value } },
      yaxis: { title: { text: chosen.slice(8) }, type: logBox.checked ? "log" : "linear" },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11 },
    }, { displaylogo: false, responsive: true }));
  }
  for (const input of [xAxis, smoothing, logBox]) input.addEventListener("input", draw);

  return {
    update(next) {
      last = next;
      draw();
    },
  };
}
