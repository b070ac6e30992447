// The compare dashboard: an anywidget view over the CompareWidget model. The Curves and
// Importance charts (plotly) are in a bundle of their own, `charts.js`, fetched through
// `loadBundle` (from the loader) when first shown, or when the page is idle after the rows.
import { decodeTable } from "./arrow.js";
import { createDiff } from "./diffview.js";
import { lazyPanel } from "./lazypanel.js";
import { nextOrder } from "./order.js";
import { createParcoords } from "./parcoords.js";
import { createTable } from "./table.js";
import { watchKernel } from "./status.js";
import { createToolbar } from "./toolbar.js";

const TABS = [
  ["parcoords", "Parallel coordinates"],
  ["curves", "Curves"],
  ["diff", "Diff"],
  ["importance", "Importance"],
];

function tabs(el, onShow) {
  const bar = document.createElement("div");
  bar.className = "nbt-tabs";
  const panes = {};
  for (const [id, label] of TABS) {
    const button = document.createElement("button");
    button.textContent = label;
    button.dataset.tab = id;
    button.onclick = () => show(id);
    bar.append(button);
    panes[id] = document.createElement("div");
    panes[id].className = "nbt-pane";
    panes[id].dataset.pane = id;
  }
  el.append(bar, ...Object.values(panes));
  function show(id) {
    for (const [key, pane] of Object.entries(panes)) pane.hidden = key !== id;
    for (const button of bar.children) button.classList.toggle("nbt-active", button.dataset.tab === id);
    onShow(id);
  }
  return { panes, show };
}

const CHARTS = "charts.js";

/** Once the page is idle (never before the rows and the plot are painted), run `task`. */
function whenIdle(task) {
  if (globalThis.requestIdleCallback) return requestIdleCallback(task, { timeout: 10_000 });
  return setTimeout(task, 1000);
}

function render({ model, el, loadBundle }) {
  el.classList.add("nbtrack-compare");
  const top = document.createElement("div");
  const body = document.createElement("div");
  body.className = "nbt-table";
  const bottom = document.createElement("div");
  el.append(top, body, bottom);

  const kernel = watchKernel(model, el);
  const save = (name, value) => {
    model.set(name, value);
    model.save_changes();
    kernel.expect();
  };
  let data = decodeTable(model.get("table"));
  let plotData = data;
  let active = "parcoords";
  let panelTimer = null;
  let panelFrame = 0;
  // the charts wait for the frame that shows the table: rows are painted first
  const afterPaint = (draw) => {
    cancelAnimationFrame(panelFrame);
    clearTimeout(panelTimer);
    panelFrame = requestAnimationFrame(() => {
      panelTimer = setTimeout(draw, 0);
    });
  };

  const toolbar = createToolbar(top, {
    onFilter: (text) => {
      if (text !== model.get("filter")) save("filter", text);
    },
    onRefresh: () => {
      model.send({ type: "refresh" });
      kernel.expect();
    },
    onColumns: (columns) => save("columns", columns),
    onAuto: (on) => {
      model.set("auto_refresh", on);
      model.save_changes();
    },
  });
  const table = createTable(body, {
    onSort: (column) => save("order_by", nextOrder(model.get("order_by"), column, model.get("columns"))),
    onSelect: (ids) => save("selected_run_ids", ids),
  });
  let shownOnce = false;
  const { panes, show } = tabs(bottom, (id) => {
    active = id;
    if (shownOnce) drawPanel(true);
    else afterPaint(() => drawPanel(true));
    shownOnce = true;
  });
  const parcoords = createParcoords(panes.parcoords, { onBrush: (brush) => save("brush", brush) });
  const charts = () => (loadBundle ? loadBundle(CHARTS)
    : Promise.reject(new Error("this page has no loader for the charts' bundle")));
  const curves = lazyPanel(panes.curves, charts, (module, pane) => module.createCurves(pane, {
    onMetric: (m) => save("curve_metric", m),
  }));
  const diff = createDiff(panes.diff);
  const importance = lazyPanel(panes.importance, charts, (module, pane) =>
    module.createImportance(pane, { onMetric: (m) => save("importance_metric", m) }));
  let prefetch = null;
  const metrics = () => model.get("available_columns").filter((c) => c.startsWith("metrics."));

  function drawPanel(fresh) {
    const selected = model.get("selected_run_ids");
    if (active === "parcoords") parcoords.update(plotData, model.get("columns"), selected, fresh);
    // the charts' bundle is fetched once the page is idle after the first draw
    prefetch ??= whenIdle(() => charts().catch(() => {}));
    if (active === "curves") {
      const names = new Map();
      const ids = data.columns.run_id ?? [];
      ids.forEach((id, i) => names.set(id, data.columns.run_name[i]));
      curves.update({ history: decodeTable(model.get("history")), names, available: metrics(),
        chosen: model.get("curve_metric") });
    }
    if (active === "diff") diff.update(model.get("diff"));
    if (active === "importance") {
      importance.update({ available: metrics(), chosen: model.get("importance_metric"),
        importance: model.get("importance") });
    }
  }

  function drawTable() {
    toolbar.update({
      filter: model.get("filter"),
      filterError: model.get("filter_error"),
      available: model.get("available_columns"),
      columns: model.get("columns"),
      status: model.get("status"),
      autoRefresh: model.get("auto_refresh"),
    });
    table.update(data, {
      columns: model.get("columns").filter((c) => data.names.includes(c)),
      order: model.get("order_by"),
      selected: model.get("selected_run_ids"),
    });
    el.dataset.rows = String(data.numRows);
  }

  const handlers = {
    "change:table": () => {
      data = decodeTable(model.get("table"));
      el.dataset.tableVersion = String(Number(el.dataset.tableVersion ?? 0) + 1);
      drawTable();
      // the same rows in a new order: nothing in the charts changes, so nothing is redrawn
      if (model.get("table_reason") === "order") return;
      // a brush narrows the table, never the plot's lines (the plot shows the brush itself)
      const brush = model.get("brush");
      const fresh = !(brush && typeof brush === "object" && Object.keys(brush).length);
      if (fresh) plotData = data;
      afterPaint(() => drawPanel(fresh));
    },
    "change:brush_error": () => parcoords.showError(model.get("brush_error")),
    "change:selected_run_ids": () => {
      drawTable();
      drawPanel(false);
    },
    "change:history": () => drawPanel(false),
    "change:diff": () => drawPanel(false),
    "change:importance": () => drawPanel(false),
  };
  for (const name of ["change:filter", "change:filter_error", "change:columns", "change:order_by",
    "change:status", "change:available_columns", "change:auto_refresh"]) handlers[name] = drawTable;
  const answering = Object.fromEntries(Object.entries(handlers).map(([event, handler]) => [
    event, (...args) => {
      kernel.answered();
      handler(...args);
    }]));
  for (const [event, handler] of Object.entries(answering)) model.on(event, handler);
  drawTable();
  show("parcoords");
  parcoords.showError(model.get("brush_error") ?? "");
  return () => {
    for (const [event, handler] of Object.entries(answering)) model.off(event, handler);
    kernel.stop();
    clearTimeout(panelTimer);
    cancelAnimationFrame(panelFrame);
    if (globalThis.cancelIdleCallback) cancelIdleCallback(prefetch);
    else clearTimeout(prefetch);
    parcoords.destroy();
    table.destroy();
  };
}

export default { render };
