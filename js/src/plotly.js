// plotly.js with only the traces nbtrack draws: lines (scatter) and bar. The parallel
// coordinates have their own canvas renderer (parcoords.js): plotly's took seconds at 10k runs.
//
// plotly is evaluated the first time a chart needs it (the Curves or Importance tab), not when
// the bundle loads: evaluating it blocked the page for a few hundred milliseconds before the
// table could show. esbuild keeps a require() of a bundled CommonJS module lazy.
/* global require */

let plotly = null;

/** plotly, evaluated and set up on the first call. */
export function getPlotly() {
  if (!plotly) {
    plotly = require("plotly.js/lib/core");
    plotly.register([require("plotly.js/lib/bar")]);
  }
  return plotly;
}

/** Clear a chart, if plotly was ever loaded (otherwise there is nothing to clear). */
export function purge(el) {
  if (plotly) plotly.purge(el);
}
