// A tab whose chart code lives in a bundle fetched on first use (`charts.js`: plotly and the
// Curves and Importance panels), so that the dashboard's first paint never waits for it.
import { node } from "./dom.js";

const SLOW_MS = 8000; // then say why the chart is not there yet

/**
 * A panel in `el`, made by `create(module, el)` once `load()` has given the bundle's module.
 * Returns `{update(state)}`: the first update starts the load and shows a note meanwhile; the
 * last state is drawn when the panel exists. A failed load says why in the tab, and the next
 * update tries again.
 */
export function lazyPanel(el, load, create) {
  const note = node("div", { className: "nbt-note nbt-chart-note" });
  let panel = null;
  let loading = false;
  let last;

  function start() {
    loading = true;
    note.textContent = "Loading the charts from the kernel…";
    el.append(note);
    const slow = setTimeout(() => {
      note.textContent = "No answer from the kernel for the charts (it is busy, or this output " +
        "is no longer connected to it): they show once it answers; after a restart of the " +
        "kernel, run the cell again.";
    }, SLOW_MS);
    Promise.resolve().then(load).then((module) => {
      clearTimeout(slow);
      note.remove();
      panel = create(module, el);
      if (last !== undefined) panel.update(last);
    }, (error) => {
      clearTimeout(slow);
      loading = false;
      note.textContent = `The charts could not be loaded: ${error?.message ?? error}. ` +
        "Run the cell again to retry.";
    });
  }

  return {
    update(state) {
      last = state;
      if (panel) panel.update(state);
      else if (!loading) start();
    },
  };
}
