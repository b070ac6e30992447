// plotly.js with only the traces nbtrack draws: lines (scatter), parcoords and bar.
import Plotly from "plotly.js/lib/core";
import bar from "plotly.js/lib/bar";
import parcoords from "plotly.js/lib/parcoords";

Plotly.register([parcoords, bar]);

export default Plotly;
