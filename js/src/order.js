// Sorting requests: header clicks become order-by keys in the search grammar.

const PLAIN = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A column name as a search key: `metrics.rmse`, or `metrics.\`my key\`` when needed. */
export function keyExpression(column) {
  const dot = column.indexOf(".");
  if (dot < 0) return column;
  const prefix = column.slice(0, dot);
  const key = column.slice(dot + 1);
  if (PLAIN.test(key)) return column;
  return `${prefix}.\`${key.replaceAll("`", "``")}\``;
}

/** Which column and direction `order` (e.g. `["metrics.rmse ASC"]`) sorts by, if one. */
export function currentSort(order, columns) {
  if (!order || order.length === 0) return null;
  const text = order[0].trim();
  const match = text.match(/^(.*?)(?:\s+(ASC|DESC))?$/i);
  const expression = match[1];
  const column = columns.find((c) => keyExpression(c) === expression) ?? expression;
  return { column, ascending: (match[2] ?? "ASC").toUpperCase() === "ASC" };
}

/** The order after clicking a header: descending first, then ascending, then the default. */
export function nextOrder(order, column, columns) {
  const now = currentSort(order, columns);
  if (!now || now.column !== column) return [`${keyExpression(column)} DESC`];
  if (!now.ascending) return [`${keyExpression(column)} ASC`];
  return ["start_time DESC"];
}
