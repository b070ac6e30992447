// Parallel coordinates of the chosen params and metrics; brushing an axis filters the table.
import { axisFor, brushFor, lineColor } from "./axes.js";
import Plotly from "./plotly.js";
import { whenVisible } from "./visible.js";

const MAX_AXES = 12;

/** Build the plot in `el`; returns `{update(data, columns, selected, fresh), destroy()}`. */
export function createParcoords(el, { onBrush }) {
  const note = document.createElement("div");
  note.className = "nbt-note";
  const div = document.createElement("div");
  div.className = "nbt-parcoords";
  el.append(note, div);
  let axes = [];
  let ids = [];
  let timer = null;

  function readBrush() {
    const dims = div.data?.[0]?.dimensions ?? [];
    const brush = {};
    dims.forEach((dim, i) => {
      const found = axes[i] && brushFor(axes[i], dim.constraintrange);
      if (found) brush[axes[i].name] = found;
    });
    onBrush(brush);
  }

  return {
    /** `fresh` redraws from scratch (new rows); otherwise only the line colors change. */
    update(data, columns, selected, fresh) {
      if (fresh) {
        ids = data.columns.run_id ?? [];
        const chosen = columns.filter((c) => !c.startsWith("tags.")).slice(0, MAX_AXES);
        axes = chosen.map((name) => axisFor(name, data.columns[name] ?? []));
        if (axes.length < 2 || data.numRows === 0) {
          Plotly.purge(div);
          note.textContent = axes.length < 2 ? "Choose at least two params or metrics." : "";
          return;
        }
        note.textContent = "";
        const dimensions = axes.map((a) => ({
          label: a.label, values: a.values, tickvals: a.tickvals, ticktext: a.ticktext,
        }));
        const line = lineColor(ids, selected, axes);
        whenVisible(div, () => {
          Plotly.react(div, [{ type: "parcoords", dimensions, line }], {
            margin: { l: 60, r: 40, t: 40, b: 20 }, height: 320,
            paper_bgcolor: "rgba(0,0,0,0)", font: { size: 11 },
          }, { displaylogo: false, responsive: true });
          div.removeAllListeners?.("plotly_restyle");
          div.on("plotly_restyle", () => {
            clearTimeout(timer);
            timer = setTimeout(readBrush, 150);
          });
        });
      } else if (axes.length >= 2 && div.data) {
        const line = lineColor(ids, selected, axes);
        Plotly.restyle(div, { line: [line] });
      }
    },
    destroy() {
      clearTimeout(timer);
      Plotly.purge(div);
    },
  };
}
