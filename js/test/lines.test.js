import { describe, expect, it } from "vitest";
import { axisFor } from "../src/axes.js";
import {
  MAX_LINES, axisTicks, brushedIndexes, colorFor, domainOf, lineAlpha, linesNote, niceTicks,
  sampleIndexes, spacedTicks,
} from "../src/lines.js";

describe("parallel-coordinates lines", () => {
  it("draws every line when there are few, an even sample of at most MAX_LINES otherwise", () => {
    expect(sampleIndexes(3)).toEqual([0, 1, 2]);
    const sample = sampleIndexes(10_000);
    expect(sample.length).toBe(MAX_LINES);
    expect(MAX_LINES).toBeLessThanOrEqual(3000);
    expect(sample[0]).toBe(0);
    expect(sample[1]).toBe(5);
    expect(sample.at(-1)).toBe(9995);
    expect(new Set(sample).size).toBe(sample.length);
    expect(sampleIndexes(0)).toEqual([]);
  });
  it("makes lines fainter the more there are (opacity by density)", () => {
    expect(lineAlpha(1)).toBe(0.8);
    expect(lineAlpha(48)).toBeGreaterThan(lineAlpha(2000));
    expect(lineAlpha(2000)).toBeGreaterThanOrEqual(0.04);
    expect(lineAlpha(2000)).toBeLessThan(0.15);
    expect(lineAlpha(10 ** 9)).toBe(0.04);
  });
  it("finds the runs inside every brush", () => {
    const axes = [axisFor("metrics.rmse", [1, 2, 3, 4]), axisFor("params.model",
      ["a", "b", "a", null])];
    expect(brushedIndexes(axes, {})).toBeNull();
    expect(brushedIndexes(axes, { 0: [1.5, 4] })).toEqual([1, 2, 3]);
    expect(brushedIndexes(axes, { 0: [1.5, 4], 1: [-0.5, 0.5] })).toEqual([2]); // "a" is 0
    expect(brushedIndexes(axes, { 0: [10, 20] })).toEqual([]);
  });
  it("notes how many lines are shown", () => {
    expect(linesNote(48, 48)).toBe("");
    expect(linesNote(2000, 10_000)).toBe("Showing 2,000 of 10,000 runs as lines (an even " +
      "sample); brushed and selected runs are always drawn.");
  });
  it("scales axes and picks readable ticks", () => {
    expect(domainOf(axisFor("metrics.rmse", [5, 5]))).toEqual([4, 6]);
    expect(domainOf(axisFor("metrics.rmse", [null, null]))).toEqual([0, 1]);
    expect(domainOf(axisFor("params.model", ["a", "b", "c"]))).toEqual([-0.5, 2.5]);
    const [lo, hi] = domainOf(axisFor("metrics.rmse", [0, 1]));
    expect(lo).toBeCloseTo(-0.02);
    expect(hi).toBeCloseTo(1.02);
    expect(niceTicks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(-0.02, 1.02)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(niceTicks(1, 1)).toEqual([]);
    const log = axisFor("params.lr", ["0.0001", "0.001", "0.1"]);
    expect(axisTicks(log, domainOf(log)).map((t) => t.text)).toEqual(["1.000e-4", "0.001",
      "0.01", "0.1"]);
    const model = axisFor("params.model", ["lasso", "ridge"]);
    expect(axisTicks(model, domainOf(model))).toEqual([{ value: 0, text: "lasso" },
      { value: 1, text: "ridge" }]);
  });
  it("drops tick labels that would overlap", () => {
    const ticks = [0, 1, 2, 3].map((v) => ({ value: v, text: String(v) }));
    expect(spacedTicks(ticks, (v) => v * 5, 12).map((t) => t.value)).toEqual([3, 0]);
    expect(spacedTicks(ticks, (v) => v * 20, 12).length).toBe(4);
  });
  it("colours by viridis, grey for missing values", () => {
    expect(colorFor(0)).toBe("#440154");
    expect(colorFor(1)).toBe("#b5de2b");
    expect(colorFor(NaN)).toBe("#8c959f");
  });
});
