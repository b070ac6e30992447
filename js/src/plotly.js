// plotly.js with only the traces nbtrack draws: lines (scatter) and bar. The parallel
// coordinates have their own canvas renderer (parcoords.js): plotly's took seconds at 10k runs.
import Plotly from "plotly.js/lib/core";
import bar from "plotly.js/lib/bar";

Plotly.register([bar]);

export default Plotly;
