import { tableFromArrays, tableToIPC } from "@uwdata/flechette";
import { describe, expect, it } from "vitest";
import { asBytes, decodeTable } from "../src/arrow.js";
import { columnLabel, groupColumns, toggleColumn } from "../src/columns.js";
import { cellTitle, formatCell, formatDuration, formatNumber, numericText } from "../src/format.js";
import { currentSort, keyExpression, nextOrder } from "../src/order.js";
import { clickSelect } from "../src/selection.js";
import { visibleRange } from "../src/virtual.js";

describe("arrow", () => {
  it("decodes IPC bytes from a DataView into columns", () => {
    const bytes = tableToIPC(tableFromArrays({ run_id: ["a", "b"], "metrics.rmse": [1.5, null] }),
      { format: "stream" });
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const table = decodeTable(view);
    expect(table.names).toEqual(["run_id", "metrics.rmse"]);
    expect(table.numRows).toBe(2);
    expect(Array.from(table.columns.run_id)).toEqual(["a", "b"]);
    expect(table.columns["metrics.rmse"][0]).toBe(1.5);
    expect(table.columns["metrics.rmse"][1]).toBeNull();
  });
  it("reads single cells without decoding a column, and decodes a column once", () => {
    const bytes = tableToIPC(tableFromArrays({ run_id: ["a", "b", "c"], x: [1, 2, 3] }),
      { format: "stream" });
    const table = decodeTable(bytes);
    expect(table.valueAt("run_id", 2)).toBe("c");
    expect(Object.getOwnPropertyDescriptor(table.columns, "run_id").get).toBeDefined();
    expect(table.valueAt("nope", 0)).toBeUndefined();
    const ids = table.columns.run_id;
    expect(Array.from(ids)).toEqual(["a", "b", "c"]);
    expect(table.columns.run_id).toBe(ids);
    expect(table.valueAt("run_id", 1)).toBe("b");
    expect(Object.keys(table.columns)).toEqual(["run_id", "x"]);
    expect(decodeTable(null).valueAt("x", 0)).toBeUndefined();
  });
  it("treats an empty payload as an empty table", () => {
    expect(decodeTable(new DataView(new ArrayBuffer(0))).numRows).toBe(0);
    expect(asBytes(null).byteLength).toBe(0);
  });
});

describe("format", () => {
  it("keeps about four significant digits", () => {
    expect(formatNumber(3.14159265)).toBe("3.142");
    expect(formatNumber(1234567)).toBe("1.235e+6");
    expect(formatNumber(0.0001234)).toBe("1.234e-4");
    expect(formatNumber(0)).toBe("0");
    expect(formatNumber(NaN)).toBe("NaN");
    expect(formatNumber(-Infinity)).toBe("-∞");
    expect(formatNumber(null)).toBe("");
  });
  it("formats durations and cells", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(12_300)).toBe("12.3 s");
    expect(formatDuration(252_000)).toBe("4.2 min");
    expect(formatCell("params.model", "lasso")).toBe("lasso");
    expect(formatCell("start_time", 0)).toMatch(/^19(69|70)-/);
    expect(formatCell("metrics.rmse", undefined)).toBe("");
  });
  it("shows numeric params as numbers, with the full value on hover", () => {
    expect(formatCell("params.lr", "0.04281332398")).toBe("0.04281");
    expect(cellTitle("params.lr", "0.04281332398")).toBe("0.04281332398");
    expect(formatCell("params.batch", "256")).toBe("256");
    expect(formatCell("params.l2", "1e-05")).toBe("1.000e-5");
    expect(formatCell("params.model", "lasso")).toBe("lasso");
    expect(formatCell("params.version", "1.2.3")).toBe("1.2.3");
    expect(formatCell("params.x", "")).toBe("");
    expect(formatCell("params.x", "NaN")).toBe("NaN");
    expect(formatCell("tags.batch", "0.123456")).toBe("0.123456");
    expect(numericText("  -3.5e2 ")).toBe(-350);
    expect(numericText("0x10")).toBeNull();
    expect(numericText("Infinity")).toBeNull();
    expect(cellTitle("metrics.rmse", 0.123456789)).toBe("0.123456789");
    expect(cellTitle("params.x", null)).toBe("");
  });
});

describe("order", () => {
  it("quotes keys that need it", () => {
    expect(keyExpression("metrics.rmse")).toBe("metrics.rmse");
    expect(keyExpression("metrics.val loss")).toBe("metrics.`val loss`");
    expect(keyExpression("params.a`b")).toBe("params.`a``b`");
    expect(keyExpression("start_time")).toBe("start_time");
  });
  it("cycles descending, ascending, default", () => {
    const cols = ["metrics.val loss"];
    let order = nextOrder(["start_time DESC"], "metrics.val loss", cols);
    expect(order).toEqual(["metrics.`val loss` DESC"]);
    expect(currentSort(order, cols)).toEqual({ column: "metrics.val loss", ascending: false });
    order = nextOrder(order, "metrics.val loss", cols);
    expect(order).toEqual(["metrics.`val loss` ASC"]);
    expect(nextOrder(order, "metrics.val loss", cols)).toEqual(["start_time DESC"]);
    expect(currentSort([], cols)).toBeNull();
  });
});

describe("selection", () => {
  const ids = ["a", "b", "c", "d"];
  it("toggles one row", () => {
    expect(clickSelect([], ids, 1, null, false)).toEqual(["b"]);
    expect(clickSelect(["b"], ids, 1, 1, false)).toEqual([]);
  });
  it("selects a range with shift", () => {
    expect(clickSelect(["a"], ids, 2, 0, true)).toEqual(["a", "b", "c"]);
    expect(clickSelect([], ids, 0, 3, true)).toEqual(["a", "b", "c", "d"]);
  });
});

describe("virtual rows", () => {
  it("renders the rows in view plus a margin", () => {
    expect(visibleRange(0, 260, 26, 10_000, 5)).toEqual([0, 15]);
    expect(visibleRange(26_000, 260, 26, 10_000, 5)).toEqual([995, 1015]);
    expect(visibleRange(260_000, 260, 26, 10_000, 5)).toEqual([9995, 10_000]);
    expect(visibleRange(0, 260, 26, 0, 5)).toEqual([0, 0]);
  });
});

describe("columns", () => {
  it("groups keys by kind and toggles them", () => {
    const groups = groupColumns(["metrics.rmse", "params.alpha", "tags.team", "metrics.mae"]);
    expect(groups).toEqual({ metrics: ["metrics.rmse", "metrics.mae"], params: ["params.alpha"],
      tags: ["tags.team"] });
    expect(toggleColumn(["metrics.rmse"], "params.alpha")).toEqual(["metrics.rmse", "params.alpha"]);
    expect(toggleColumn(["metrics.rmse"], "metrics.rmse")).toEqual([]);
    expect(columnLabel("metrics.val loss")).toBe("val loss");
    expect(columnLabel("run_name")).toBe("run name");
  });
});

import { axisFor, brushFor, rangesOf } from "../src/axes.js";

describe("parallel-coordinates axes", () => {
  it("reads numbers, including numbers stored as text", () => {
    const axis = axisFor("params.alpha", ["0.1", "1.0", null, "0.5"]);
    expect(axis.kind).toBe("numeric");
    expect(Array.from(axis.values)).toEqual([0.1, 1, NaN, 0.5]);
    expect(axis.label).toBe("alpha");
  });
  it("uses a log axis for positive values spanning three decades", () => {
    const axis = axisFor("params.lr", [0.0001, 0.01, 0.1]);
    expect(axis.kind).toBe("log");
    expect(Array.from(axis.values)).toEqual([-4, -2, -1]);
    expect(axis.tickvals).toEqual([-4, -3, -2, -1]);
    expect(axis.ticktext[0]).toBe("1.000e-4");
  });
  it("keeps a linear axis for values spread evenly over decades", () => {
    const even = Array.from({ length: 1000 }, (_, i) => (i + 1) / 1000); // 0.001 .. 1
    expect(axisFor("metrics.rmse", even).kind).toBe("numeric");
    const lr = Array.from({ length: 1000 }, (_, i) => 10 ** (-4 + (3 * i) / 999));
    expect(axisFor("params.lr", lr).kind).toBe("log");
  });
  it("maps text to categories with labelled ticks", () => {
    const axis = axisFor("params.model", ["ridge", "lasso", "ridge", null]);
    expect(axis.kind).toBe("category");
    expect(axis.categories).toEqual(["lasso", "ridge"]);
    expect(Array.from(axis.values)).toEqual([1, 0, 1, NaN]);
    expect(axis.ticktext).toEqual(["lasso", "ridge"]);
  });
  it("turns brushes into value ranges for metrics and value sets otherwise", () => {
    expect(rangesOf([1, 2])).toEqual([[1, 2]]);
    expect(rangesOf([[1, 2], [3, 4]])).toEqual([[1, 2], [3, 4]]);
    expect(brushFor(axisFor("metrics.rmse", [3, 4, 5]), [3.5, 5])).toEqual({ ranges: [[3.5, 5]] });
    expect(brushFor(axisFor("metrics.loss", [0.001, 1, 10]), [-1, 0])).toEqual(
      { ranges: [[0.1, 1]] });
    expect(brushFor(axisFor("params.alpha", ["0.1", "1.0", "0.5"]), [0, 0.6])).toEqual(
      { values: ["0.1", "0.5"] });
    expect(brushFor(axisFor("params.model", ["ridge", "lasso"]), [[0.5, 1.5]])).toEqual(
      { values: ["ridge"] });
    expect(brushFor(axisFor("metrics.rmse", [1]), [])).toBeNull();
  });
});

import { seriesByRun, smooth } from "../src/smoothing.js";

describe("curves", () => {
  it("smooths with a debiased moving average and leaves gaps alone", () => {
    expect(smooth([1, 2, 3], 0)).toEqual([1, 2, 3]);
    const out = smooth([1, 1, 1, NaN, 1], 0.9);
    expect(out[0]).toBeCloseTo(1);
    expect(out[2]).toBeCloseTo(1);
    expect(Number.isNaN(out[3])).toBe(true);
    const step = smooth([0, 10], 0.5);
    expect(step[1]).toBeCloseTo((0.5 * 0.5 * 0 + 0.5 * 10) / 0.75);
  });
  it("splits a long history into one series per run", () => {
    const series = seriesByRun({ run_id: ["a", "a", "b"], step: [0, 1, 0],
      timestamp: [5, 6, 7], value: [1, 2, 3] }, 3);
    expect([...series.keys()]).toEqual(["a", "b"]);
    expect(series.get("a")).toEqual({ step: [0, 1], time: [5, 6], value: [1, 2] });
  });
});

import { describeRequest } from "../src/registry.js";
import { linePath } from "../src/live.js";

describe("registry confirmations", () => {
  it("says what will happen before it happens", () => {
    expect(describeRequest("taxi", { action: "transition", version: "3", stage: "Production",
      archive: true, require: "metrics.rmse <= current" })).toBe(
      "Move version 3 of taxi to Production if metrics.rmse <= current, archiving the versions now in Production?");
    expect(describeRequest("taxi", { action: "transition", version: "3", stage: "Archived",
      archive: true })).toBe("Move version 3 of taxi to Archived?");
    expect(describeRequest("taxi", { action: "set_alias", version: "2", alias: "champion" }))
      .toBe("Point @champion at version 2 of taxi?");
    expect(describeRequest("taxi", { action: "delete_alias", alias: "champion" }))
      .toBe("Remove @champion from taxi?");
  });
});

describe("live chart", () => {
  it("draws a path through finite points, scaled to its box", () => {
    expect(linePath([0, 1, 2], [1, NaN, 3])).toBe("M4.0,86.0L216.0,4.0");
    expect(linePath([], [])).toBe("");
    expect(linePath([5], [2])).toBe("M4.0,86.0");
  });
});
