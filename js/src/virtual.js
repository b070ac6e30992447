// Virtualized rows: only the rows in view (plus a margin) are in the DOM.

/** `[first, last)` row indexes to render for a scroll position. */
export function visibleRange(scrollTop, viewport, rowHeight, total, overscan = 10) {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(total, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  return [first, Math.max(first, last)];
}
