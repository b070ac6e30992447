// Plotly needs its container in the page with a size; widget views are built before that.

/**
 * Run `draw` now if `el` is laid out, else once it is (replacing any draw still waiting).
 * Returns a function that cancels the wait.
 */
export function whenVisible(el, draw) {
  el._nbtWaiting?.disconnect();
  if (el.isConnected && el.clientWidth > 0) {
    draw();
    return () => {};
  }
  const observer = new ResizeObserver(() => {
    if (el.isConnected && el.clientWidth > 0) {
      observer.disconnect();
      el._nbtWaiting = null;
      draw();
    }
  });
  observer.observe(el);
  el._nbtWaiting = observer;
  return () => observer.disconnect();
}
