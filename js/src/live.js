// The live chart under a running %%track cell: one small line chart per metric.
// Plain SVG, kept tiny on purpose: one of these is shown under every tracked cell that logs.
import { formatNumber } from "./format.js";

const W = 220;
const H = 90;
const PAD = 4;

/** An SVG path through the points, scaled into a W x H box. */
export function linePath(steps, values) {
  const finite = values.map((v, i) => [steps[i], v]).filter(([, v]) => Number.isFinite(v));
  if (finite.length === 0) return "";
  const xs = finite.map(([s]) => s);
  const ys = finite.map(([, v]) => v);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const sx = (x) => PAD + ((x - x0) / (x1 - x0 || 1)) * (W - 2 * PAD);
  const sy = (y) => H - PAD - ((y - y0) / (y1 - y0 || 1)) * (H - 2 * PAD);
  return finite.map(([x, y], i) => `${i ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
}

function chart(key, { step, value }) {
  const box = document.createElement("div");
  box.className = "nbt-live-chart";
  const last = value[value.length - 1];
  const title = document.createElement("div");
  title.className = "nbt-live-title";
  title.textContent = `${key}  ${formatNumber(last)}  (step ${step[step.length - 1]})`;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", linePath(step, value));
  svg.append(path);
  box.append(title, svg);
  return box;
}

function render({ model, el }) {
  el.classList.add("nbtrack-live");
  const draw = () => {
    const series = model.get("series");
    const keys = Object.keys(series);
    el.hidden = keys.length === 0;
    el.classList.toggle("nbt-live-running", model.get("running"));
    el.replaceChildren(...keys.map((key) => chart(key, series[key])));
  };
  model.on("change:series", draw);
  model.on("change:running", draw);
  draw();
  return () => {
    model.off("change:series", draw);
    model.off("change:running", draw);
  };
}

export default { render };
