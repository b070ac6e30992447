// Parallel coordinates on a canvas: at most MAX_LINES lines of context, with opacity by
// density; brushed and selected runs drawn on top in full colour. Axes, labels and brushes are
// SVG above the lines, so labels are never under them. Dragging along an axis brushes it (a
// click clears it); the brush is sent to the kernel, which narrows the table.
import { axisFor, brushFor } from "./axes.js";
import { node } from "./dom.js";
import {
  MAX_LINES, axisTicks, brushedIndexes, colorFor, domainOf, lineAlpha, linesNote, sampleIndexes,
  spacedTicks,
} from "./lines.js";
import { whenVisible } from "./visible.js";

const MAX_AXES = 12;
const HEIGHT = 320;
const M = { top: 30, bottom: 14, left: 64, right: 76 };
const SLICE_MS = 25; // axes built per task, at most about this long
const GRAB = 14; // pixels either side of an axis where a drag brushes it
const SVG = "http://www.w3.org/2000/svg";
const GREY = "#8c959f";
const SELECTED = "#cf222e";

function svgNode(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Build the plot in `el`; returns `{update(data, columns, selected, fresh), showError, destroy}`. */
export function createParcoords(el, { onBrush }) {
  const note = node("div", { className: "nbt-note nbt-lines-note" });
  const error = node("div", { className: "nbt-brush-error", hidden: true });
  const box = node("div", { className: "nbt-parcoords" });
  const canvas = node("canvas", { className: "nbt-lines" });
  const svg = svgNode("svg", { class: "nbt-axes" });
  box.append(canvas, svg);
  el.append(error, box, note);
  box.dataset.draws = "0";

  let axes = [];
  let ids = () => []; // the run ids, decoded only when some are selected
  let tone = null; // per row: the colour scale's position (first metric), or null
  let sample = [];
  let domains = [];
  let xs = [];
  let width = 0;
  let selected = new Set();
  let brushes = {}; // axis index -> [lo, hi] in the axis' values
  let drag = null;
  let building = 0;
  let buildTimer = null;
  let shownData = null;
  let shownColumns = "";
  let seenWidth = 0;
  let cancelWait = () => {};
  let frame = 0;

  const plotHeight = HEIGHT - M.top - M.bottom;
  const yOf = (a, v) => {
    const [lo, hi] = domains[a];
    return M.top + (1 - (v - lo) / (hi - lo)) * plotHeight;
  };
  const valueAt = (a, y) => {
    const [lo, hi] = domains[a];
    const t = 1 - (Math.min(Math.max(y, M.top), M.top + plotHeight) - M.top) / plotHeight;
    return lo + t * (hi - lo);
  };

  function stroke(ctx, indexes, styleOf, alpha, lineWidth) {
    const groups = new Map();
    for (const i of indexes) {
      const style = styleOf(i);
      if (!groups.has(style)) groups.set(style, []);
      groups.get(style).push(i);
    }
    ctx.globalAlpha = alpha;
    ctx.lineWidth = lineWidth;
    for (const [style, rows] of groups) {
      ctx.strokeStyle = style;
      ctx.beginPath();
      for (const i of rows) {
        let pen = false;
        for (let a = 0; a < axes.length; a++) {
          const v = axes[a].values[i];
          if (!Number.isFinite(v)) {
            pen = false;
            continue;
          }
          const y = yOf(a, v);
          if (pen) ctx.lineTo(xs[a], y);
          else ctx.moveTo(xs[a], y);
          pen = true;
        }
      }
      ctx.stroke();
    }
  }

  function drawLines() {
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(HEIGHT * ratio);
    canvas.style.width = `${width}px`;
    canvas.style.height = `${HEIGHT}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    ctx.lineJoin = "round";
    const colored = (i) => (tone ? colorFor(tone[i]) : "#0969da");
    const hits = brushedIndexes(axes, brushes);
    const context = lineAlpha(sample.length);
    if (hits === null) {
      stroke(ctx, sample, colored, context, 1);
    } else {
      stroke(ctx, sample, () => GREY, context * 0.5, 1);
      const shown = sampleIndexes(hits.length).map((k) => hits[k]);
      stroke(ctx, shown, colored, lineAlpha(shown.length, { min: 0.3, max: 1, k: 8 }), 1.2);
    }
    const picked = [];
    if (selected.size) ids().forEach((id, i) => selected.has(id) && picked.push(i));
    stroke(ctx, picked, () => SELECTED, 1, 2);
    box.dataset.lines = String(sample.length);
    box.dataset.brushed = hits === null ? "" : String(hits.length);
    box.dataset.selected = String(picked.length);
  }

  function drawAxes() {
    const spacing = axes.length > 1 ? xs[1] - xs[0] : width;
    const chars = Math.max(6, Math.floor((spacing - 8) / 6.5));
    const children = [];
    axes.forEach((axis, a) => {
      const x = xs[a];
      const last = a === axes.length - 1;
      const g = svgNode("g", { class: "nbt-axis", "data-axis": axis.name });
      const label = axis.label.length > chars ? `${axis.label.slice(0, chars - 1)}…` : axis.label;
      const title = svgNode("text", { x, y: 14, "text-anchor": "middle", class: "nbt-axis-label" },
        label);
      title.append(svgNode("title", {}, axis.name));
      g.append(title, svgNode("line", { x1: x, x2: x, y1: M.top, y2: M.top + plotHeight,
        class: "nbt-axis-line" }));
      for (const tick of spacedTicks(axisTicks(axis, domains[a]), (v) => yOf(a, v))) {
        const y = yOf(a, tick.value);
        g.append(svgNode("line", { x1: x - 3, x2: x + 3, y1: y, y2: y, class: "nbt-axis-line" }));
        // tick labels beside the axis, on the right of the last one: never under its lines
        g.append(svgNode("text", { x: last ? x + 6 : x - 6, y: y + 4, class: "nbt-tick",
          "text-anchor": last ? "start" : "end" }, tick.text));
      }
      const range = brushes[a];
      if (range) {
        const [top, bottom] = [yOf(a, range[1]), yOf(a, range[0])];
        g.append(svgNode("rect", { x: x - 6, width: 12, y: top, height: Math.max(1, bottom - top),
          class: "nbt-brush" }));
      }
      g.append(svgNode("rect", { x: x - GRAB, width: 2 * GRAB, y: M.top, height: plotHeight,
        class: "nbt-axis-hit", "data-axis": axis.name }));
      children.push(g);
    });
    svg.replaceChildren(...children);
  }

  function layout() {
    width = box.clientWidth;
    seenWidth = width;
    svg.setAttribute("width", width);
    svg.setAttribute("height", HEIGHT);
    const inner = width - M.left - M.right;
    xs = axes.map((_, a) => M.left + (axes.length > 1 ? (a * inner) / (axes.length - 1) : 0));
  }

  function draw() {
    layout();
    drawLines();
    drawAxes();
    box.dataset.draws = String(Number(box.dataset.draws) + 1);
  }

  function redraw() {
    if (axes.length < 2) return;
    cancelWait();
    cancelWait = whenVisible(box, draw);
  }

  function emit() {
    const brush = {};
    for (const [a, range] of Object.entries(brushes)) {
      const found = brushFor(axes[a], [range]);
      if (found) brush[axes[a].name] = found;
    }
    onBrush(brush);
  }

  function pointer(event) {
    const rect = svg.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  svg.addEventListener("pointerdown", (event) => {
    const [x, y] = pointer(event);
    const a = xs.findIndex((ax) => Math.abs(ax - x) <= GRAB);
    if (a < 0 || y < M.top - 4 || y > M.top + plotHeight + 4) return;
    drag = { a, y0: y, moved: false };
    svg.setPointerCapture?.(event.pointerId);
    event.preventDefault();
  });
  svg.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const [, y] = pointer(event);
    if (Math.abs(y - drag.y0) < 3 && !drag.moved) return;
    drag.moved = true;
    const [v0, v1] = [valueAt(drag.a, drag.y0), valueAt(drag.a, y)];
    brushes[drag.a] = [Math.min(v0, v1), Math.max(v0, v1)];
    cancelAnimationFrame(frame);
    frame = requestAnimationFrame(draw);
  });
  const finish = () => {
    if (!drag) return;
    if (!drag.moved) delete brushes[drag.a]; // a click on an axis clears its brush
    drag = null;
    cancelAnimationFrame(frame);
    draw();
    emit();
  };
  svg.addEventListener("pointerup", finish);
  svg.addEventListener("pointercancel", finish);

  const resize = new ResizeObserver(() => {
    if (axes.length < 2 || box.clientWidth === seenWidth || box.clientWidth === 0) return;
    seenWidth = box.clientWidth;
    if (Number(box.dataset.draws) > 0) {
      layout();
      drawLines();
      drawAxes();
      box.dataset.resizes = String(Number(box.dataset.resizes ?? 0) + 1);
    }
  });
  resize.observe(box);

  /** Draw `data` on `built` axes from scratch (its brushes are gone with its rows). */
  function show(data, built) {
    ids = () => data.columns.run_id ?? [];
    axes = built;
    brushes = {};
    if (axes.length < 2 || data.numRows === 0) {
      axes = [];
      cancelWait();
      svg.replaceChildren();
      canvas.width = 0;
      box.hidden = true;
      note.textContent = data.numRows === 0 ? "No runs to draw."
        : "Choose at least two params or metrics.";
      return;
    }
    box.hidden = false;
    domains = axes.map(domainOf);
    const metric = axes.findIndex((a) => a.name.startsWith("metrics.") && a.kind !== "category");
    tone = null;
    if (metric >= 0) {
      const [lo, hi] = domains[metric];
      tone = Float64Array.from(axes[metric].values, (v) => (v - lo) / (hi - lo));
    }
    sample = sampleIndexes(data.numRows);
    note.textContent = linesNote(sample.length, data.numRows);
    box.dataset.total = String(data.numRows);
    redraw();
  }

  return {
    /** `fresh`: new rows, drawn from scratch; otherwise only a new selection, if any. */
    update(data, columns, nextSelected, fresh) {
      const before = selected;
      selected = new Set(nextSelected);
      const key = columns.join("\n");
      if (fresh && data === shownData && key === shownColumns) fresh = false; // a tab switch
      if (fresh) {
        shownData = data;
        shownColumns = key;
        const chosen = columns.filter((c) => !c.startsWith("tags.")).slice(0, MAX_AXES);
        // axes are built a few at a time, each batch in its own task: decoding 10k params
        // at once would block the page; a newer update abandons an older build
        const build = ++building;
        const built = [];
        const step = () => {
          if (build !== building) return;
          const start = performance.now();
          while (built.length < chosen.length && performance.now() - start < SLICE_MS) {
            const name = chosen[built.length];
            built.push(axisFor(name, data.columns[name] ?? []));
          }
          if (built.length < chosen.length) buildTimer = setTimeout(step, 0);
          else show(data, built);
        };
        clearTimeout(buildTimer);
        step();
      } else if (before.size !== selected.size || [...selected].some((id) => !before.has(id))) {
        redraw();
      }
    },
    /** An error about the brush from the kernel, shown above the plot ("" hides it). */
    showError(text) {
      error.textContent = text;
      error.hidden = !text;
    },
    destroy() {
      building += 1;
      clearTimeout(buildTimer);
      cancelWait();
      cancelAnimationFrame(frame);
      resize.disconnect();
      el.replaceChildren();
    },
  };
}

export { MAX_LINES };
