// The charts that need plotly (the Curves and Importance tabs), a bundle of their own: the
// compare dashboard's core paints its rows without waiting for plotly's megabyte, and fetches
// this bundle (`static/charts.js`) from the kernel when a chart is first needed.
export { createCurves } from "./curves.js";
export { createImportance } from "./importanceview.js";
