// Above the table: the filter box (search grammar, errors inline), refresh, columns, count.
import { columnLabel, groupColumns, toggleColumn } from "./columns.js";

/** Build the toolbar in `el`; returns `{update(state)}`. */
export function createToolbar(el, { onFilter, onRefresh, onColumns, onAuto }) {
  const bar = document.createElement("div");
  bar.className = "nbt-toolbar";
  const input = document.createElement("input");
  input.className = "nbt-filter";
  input.placeholder = "filter, e.g. metrics.rmse < 4 AND (params.model = 'lasso' OR tags.best = 'yes')";
  input.spellcheck = false;
  const refresh = document.createElement("button");
  refresh.className = "nbt-refresh";
  refresh.textContent = "↻ Refresh";
  refresh.title = "Read the store again";
  const auto = document.createElement("label");
  auto.className = "nbt-auto";
  auto.title = "Refresh whenever the store changes";
  const autoBox = document.createElement("input");
  autoBox.type = "checkbox";
  autoBox.onchange = () => onAuto(autoBox.checked);
  auto.append(autoBox, " auto");
  const chooser = document.createElement("details");
  chooser.className = "nbt-columns";
  const summary = document.createElement("summary");
  summary.textContent = "Columns";
  const menu = document.createElement("div");
  menu.className = "nbt-column-menu";
  chooser.append(summary, menu);
  const status = document.createElement("span");
  status.className = "nbt-status";
  bar.append(input, refresh, auto, chooser, status);
  const error = document.createElement("div");
  error.className = "nbt-filter-error";
  el.append(bar, error);

  let chosen = [];
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") onFilter(input.value);
  });
  input.addEventListener("blur", () => onFilter(input.value));
  refresh.onclick = () => onRefresh();

  function renderMenu(available) {
    menu.replaceChildren();
    for (const [kind, names] of Object.entries(groupColumns(available))) {
      if (names.length === 0) continue;
      const title = document.createElement("div");
      title.className = "nbt-column-kind";
      title.textContent = kind;
      menu.append(title);
      for (const name of names) {
        const label = document.createElement("label");
        const box = document.createElement("input");
        box.type = "checkbox";
        box.checked = chosen.includes(name);
        box.dataset.column = name;
        box.onchange = () => onColumns(toggleColumn(chosen, name));
        label.append(box, ` ${columnLabel(name)}`);
        menu.append(label);
      }
    }
  }

  return {
    update({ filter, filterError, available, columns, status: text, autoRefresh }) {
      autoBox.checked = autoRefresh;
      if (document.activeElement !== input) input.value = filter;
      error.textContent = filterError;
      error.hidden = !filterError;
      input.classList.toggle("nbt-invalid", Boolean(filterError));
      chosen = columns;
      renderMenu(available);
      status.textContent = text;
    },
  };
}
