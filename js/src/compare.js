// The compare dashboard: an anywidget view over the CompareWidget model.
import { decodeTable } from "./arrow.js";
import { nextOrder } from "./order.js";
import { createTable } from "./table.js";
import { createToolbar } from "./toolbar.js";

function render({ model, el }) {
  el.classList.add("nbtrack-compare");
  const top = document.createElement("div");
  const body = document.createElement("div");
  body.className = "nbt-table";
  el.append(top, body);

  const save = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  let data = decodeTable(model.get("table"));

  const toolbar = createToolbar(top, {
    onFilter: (text) => {
      if (text !== model.get("filter")) save("filter", text);
    },
    onRefresh: () => model.send({ type: "refresh" }),
    onColumns: (columns) => save("columns", columns),
  });
  const table = createTable(body, {
    onSort: (column) => save("order_by", nextOrder(model.get("order_by"), column, model.get("columns"))),
    onSelect: (ids) => save("selected_run_ids", ids),
  });

  function draw() {
    toolbar.update({
      filter: model.get("filter"),
      filterError: model.get("filter_error"),
      available: model.get("available_columns"),
      columns: model.get("columns"),
      status: model.get("status"),
    });
    table.update(data, {
      columns: model.get("columns").filter((c) => data.names.includes(c)),
      order: model.get("order_by"),
      selected: model.get("selected_run_ids"),
    });
    el.dataset.rows = String(data.numRows);
  }

  const onTable = () => {
    data = decodeTable(model.get("table"));
    draw();
  };
  const events = ["change:filter", "change:filter_error", "change:columns", "change:order_by",
    "change:selected_run_ids", "change:status", "change:available_columns"];
  model.on("change:table", onTable);
  for (const event of events) model.on(event, draw);
  draw();
  return () => {
    model.off("change:table", onTable);
    for (const event of events) model.off(event, draw);
    table.destroy();
  };
}

export default { render };
