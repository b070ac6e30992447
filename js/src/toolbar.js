// Above the table: the filter box (search grammar, errors inline), refresh, columns, count.
import { columnLabel, groupColumns, toggleColumn } from "./columns.js";
import { node } from "./dom.js";

/** Build the toolbar in `el`; returns `{update(state)}`. */
export function createToolbar(el, { onFilter, onRefresh, onColumns, onAuto }) {
  const input = node("input", {
    className: "nbt-filter", spellcheck: false,
    placeholder: "filter, e.g. metrics.rmse < 4 AND (params.model = 'lasso' OR tags.best = 'yes')",
  });
  const refresh = node("button", { className: "nbt-refresh", textContent: "↻ Refresh",
    title: "Read the store again" });
  const autoBox = node("input", { type: "checkbox", onchange: () => onAuto(autoBox.checked) });
  const auto = node("label", { className: "nbt-auto",
    title: "Refresh whenever the store changes" }, autoBox, " auto");
  const menu = node("div", { className: "nbt-column-menu" });
  const chooser = node("details", { className: "nbt-columns" },
    node("summary", { textContent: "Columns" }), menu);
  const status = node("span", { className: "nbt-status" });
  const error = node("div", { className: "nbt-filter-error" });
  el.append(node("div", { className: "nbt-toolbar" }, input, refresh, auto, chooser, status),
    error);

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
