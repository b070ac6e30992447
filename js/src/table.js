// The run table: sortable headers, virtualized rows, click (and shift-click) to select.
import { columnLabel } from "./columns.js";
import { node } from "./dom.js";
import { cellTitle, formatCell, formatDuration } from "./format.js";
import { currentSort } from "./order.js";
import { clickSelect } from "./selection.js";
import { visibleRange } from "./virtual.js";

const ROW_HEIGHT = 26;
const FIXED = ["run_name", "status", "start_time", "duration"];

function cellText(data, name, row) {
  if (name === "duration") {
    const end = data.valueAt("end_time", row);
    const start = data.valueAt("start_time", row);
    return end == null || start == null ? "running" : formatDuration(end - start);
  }
  return formatCell(name, data.valueAt(name, row));
}

/** Build the table in `el`; returns `{update(data, state), destroy()}`. */
export function createTable(el, { onSort, onSelect }) {
  const header = node("div", { className: "nbt-row nbt-header" });
  const spacer = node("div", { className: "nbt-spacer" });
  const viewport = node("div", { className: "nbt-viewport" }, spacer);
  el.append(header, viewport);

  let data = { names: [], numRows: 0, columns: {}, valueAt: () => undefined };
  let state = { columns: [], order: [], selected: [] };
  let anchor = null;

  const shown = () => [...FIXED, ...state.columns];
  const template = () => `28px 160px 90px 150px 80px repeat(${state.columns.length}, 120px)`;

  function renderHeader() {
    header.replaceChildren();
    header.style.gridTemplateColumns = template();
    header.append(document.createElement("span"));
    const sort = currentSort(state.order, state.columns);
    for (const name of shown()) {
      const cell = document.createElement("button");
      cell.className = "nbt-cell nbt-sort";
      cell.dataset.column = name;
      cell.title = name === "duration" ? "duration (sort by start time)" : name;
      const arrow = sort && sort.column === name ? (sort.ascending ? " ▲" : " ▼") : "";
      cell.textContent = columnLabel(name) + arrow;
      cell.onclick = () => onSort(name === "duration" ? "start_time" : name);
      header.append(cell);
    }
  }

  function renderRows() {
    spacer.style.height = `${data.numRows * ROW_HEIGHT}px`;
    const [first, last] = visibleRange(viewport.scrollTop, viewport.clientHeight || 360,
      ROW_HEIGHT, data.numRows);
    const rows = [];
    for (let i = first; i < last; i++) {
      const row = document.createElement("div");
      row.className = "nbt-row nbt-body-row";
      row.style.gridTemplateColumns = template();
      row.style.top = `${i * ROW_HEIGHT}px`;
      const id = data.valueAt("run_id", i);
      row.dataset.runId = id;
      const picked = state.selected.includes(id);
      row.classList.toggle("nbt-selected", picked);
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = picked;
      box.tabIndex = -1;
      row.append(box);
      for (const name of shown()) {
        const cell = document.createElement("span");
        cell.className = `nbt-cell nbt-col-${name.replace(/[^a-z]/gi, "-")}`;
        cell.textContent = cellText(data, name, i);
        if (name !== "duration") cell.title = cellTitle(name, data.valueAt(name, i));
        row.append(cell);
      }
      row.onclick = (event) => {
        const ids = data.columns.run_id ?? []; // decoded at the first click
        const next = clickSelect(state.selected, ids, i, anchor, event.shiftKey);
        anchor = i;
        onSelect(next);
      };
      rows.push(row);
    }
    spacer.replaceChildren(...rows);
  }

  viewport.addEventListener("scroll", () => requestAnimationFrame(renderRows));

  return {
    update(nextData, nextState) {
      data = nextData;
      state = nextState;
      renderHeader();
      renderRows();
    },
    destroy() {
      el.replaceChildren();
    },
  };
}
