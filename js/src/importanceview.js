// Parameter importance against a chosen metric: correlation and model-based importance.
import { getPlotly, purge } from "./plotly.js";
import { whenVisible } from "./visible.js";

/** Build the importance panel in `el`; returns `{update(model)}`. */
export function createImportance(el, { onMetric }) {
  const metric = document.createElement("select");
  const note = document.createElement("div");
  note.className = "nbt-note";
  const plot = document.createElement("div");
  el.append(metric, note, plot);
  metric.onchange = () => onMetric(metric.value);

  return {
    update({ available, chosen, importance }) {
      const options = [new Option("choose a metric…", ""),
        ...available.map((name) => new Option(name.slice(8), name))];
      metric.replaceChildren(...options);
      metric.value = chosen;
      note.textContent = importance.note ?? "";
      const rows = importance.rows ?? [];
      if (rows.length === 0) {
        purge(plot);
        return;
      }
      const labels = rows.map((r) => r.param.slice(7)).reverse();
      whenVisible(plot, () => getPlotly().react(plot, [
        { type: "bar", orientation: "h", name: "importance", y: labels,
          x: rows.map((r) => r.importance ?? null).reverse() },
        { type: "bar", orientation: "h", name: "correlation (r or η)", y: labels,
          x: rows.map((r) => r.correlation).reverse() },
      ], {
        height: 60 + 28 * rows.length, barmode: "group", margin: { l: 120, r: 20, t: 10, b: 30 },
        paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { size: 11 },
        xaxis: { range: [-1, 1] },
      }, { displaylogo: false, responsive: true }));
    },
  };
}
