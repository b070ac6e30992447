// Row selection: click toggles one row; shift-click selects the range from the last click.

/** The new selection after clicking row `index` (ids in display order). */
export function clickSelect(selected, ids, index, anchor, shift) {
  const id = ids[index];
  if (shift && anchor !== null && anchor !== undefined && anchor < ids.length) {
    const [lo, hi] = anchor < index ? [anchor, index] : [index, anchor];
    const range = ids.slice(lo, hi + 1);
    return [...new Set([...selected, ...range])];
  }
  return selected.includes(id) ? selected.filter((s) => s !== id) : [...selected, id];
}
