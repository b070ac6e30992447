// Parallel-coordinates axes: numbers, log-scaled numbers, or categories; and their brushes.
import { columnLabel } from "./columns.js";
import { formatNumber } from "./format.js";

const MAX_TICKS = 25;
const LOG_SPAN = 100; // positive values spanning two decades or more may get a log axis
const LOG_SKEW = 0.2; // ... when their median sits in the lowest fifth of a linear axis

function asNumbers(raw) {
  const out = new Float64Array(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const v = raw[i];
    if (v === null || v === undefined || v === "") {
      out[i] = NaN;
      continue;
    }
    const n = typeof v === "number" ? v : Number(v);
    if (typeof v !== "number" && !Number.isFinite(n)) return null; // text: a category axis
    out[i] = n;
  }
  return out;
}

/** Whether most values crowd the bottom of a linear axis (as learning rates do). */
function skewed(finite, lo, hi) {
  const sorted = Float64Array.from(finite).sort();
  const median = sorted[Math.floor(sorted.length / 2)];
  return (median - lo) / (hi - lo) < LOG_SKEW;
}

/** One axis from a column: `{name, label, kind, values, tickvals?, ticktext?, raw}`. */
export function axisFor(name, raw) {
  const label = columnLabel(name);
  const numbers = asNumbers(raw);
  if (numbers) {
    const finite = numbers.filter(Number.isFinite);
    const lo = Math.min(...finite);
    const hi = Math.max(...finite);
    if (finite.length && lo > 0 && hi / lo >= LOG_SPAN && skewed(finite, lo, hi)) {
      const values = numbers.map((v) => (v > 0 ? Math.log10(v) : NaN));
      const powers = [];
      for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) powers.push(p);
      return { name, label: `${label} (log)`, kind: "log", values, raw,
        tickvals: powers, ticktext: powers.map((p) => formatNumber(10 ** p)) };
    }
    return { name, label, kind: "numeric", values: numbers, raw };
  }
  const categories = [...new Set(Array.from(raw).filter((v) => v != null))].map(String).sort();
  const index = new Map(categories.map((c, i) => [c, i]));
  const values = Float64Array.from(raw, (v) => (v == null ? NaN : index.get(String(v))));
  const step = Math.max(1, Math.ceil(categories.length / MAX_TICKS));
  const tickvals = categories.map((_, i) => i).filter((i) => i % step === 0);
  return { name, label, kind: "category", values, raw, categories,
    tickvals, ticktext: tickvals.map((i) => categories[i]) };
}

const inRanges = (v, ranges) => ranges.some(([lo, hi]) => v >= lo && v <= hi);

/** Normalize plotly's constraintrange (one `[lo, hi]` or a list of them) to a list. */
export function rangesOf(constraint) {
  if (!constraint || constraint.length === 0) return [];
  return Array.isArray(constraint[0]) ? constraint : [constraint];
}

/**
 * The brush to send to the kernel for one axis, or null for no brush.
 * Metrics get value ranges; params, tags and names get the set of values inside the ranges
 * (they are text in the store, so a numeric range cannot be asked of them directly).
 */
export function brushFor(axis, constraint) {
  const ranges = rangesOf(constraint);
  if (ranges.length === 0) return null;
  if (axis.name.startsWith("metrics.") && axis.kind !== "category") {
    const real = axis.kind === "log" ? ranges.map(([lo, hi]) => [10 ** lo, 10 ** hi]) : ranges;
    return { ranges: real };
  }
  const picked = new Set();
  for (let i = 0; i < axis.values.length; i++) {
    if (inRanges(axis.values[i], ranges) && axis.raw[i] != null) picked.add(String(axis.raw[i]));
  }
  return { values: [...picked].sort() };
}
