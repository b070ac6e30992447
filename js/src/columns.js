// The column chooser's model: keys grouped by kind, with the chosen ones marked.

const KINDS = ["metrics", "params", "tags"];

/** `{metrics: [...], params: [...], tags: [...]}` of the available key columns. */
export function groupColumns(available) {
  const groups = Object.fromEntries(KINDS.map((k) => [k, []]));
  for (const name of available) {
    const kind = name.slice(0, name.indexOf("."));
    if (kind in groups) groups[kind].push(name);
  }
  return groups;
}

/** `chosen` with `name` added (at the end) or removed. */
export function toggleColumn(chosen, name) {
  return chosen.includes(name) ? chosen.filter((c) => c !== name) : [...chosen, name];
}

/** The header label of a column: the key without its prefix. */
export function columnLabel(name) {
  const dot = name.indexOf(".");
  return dot < 0 ? name.replaceAll("_", " ") : name.slice(dot + 1);
}
