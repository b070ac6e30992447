// What the parallel-coordinates canvas draws: which lines, how opaque, on which scale.
// Pure functions (no DOM), so that they can be tested without a browser.
import { formatNumber } from "./format.js";

export const MAX_LINES = 2000; // lines drawn at most as context; more is a solid block

/** Indexes `0..n-1` thinned evenly to at most `max` (all of them when there are few). */
export function sampleIndexes(n, max = MAX_LINES) {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const step = n / max;
  return Array.from({ length: max }, (_, k) => Math.floor(k * step));
}

/** Opacity of one line among `count` drawn: dense bundles darken, single lines stay faint. */
export function lineAlpha(count, { min = 0.04, max = 0.8, k = 4 } = {}) {
  if (count <= 0) return max;
  return Math.min(max, Math.max(min, k / Math.sqrt(count)));
}

/** `[lo, hi]` of an axis' finite values, widened when they are all one value. */
export function domainOf(axis) {
  if (axis.kind === "category") return [-0.5, Math.max(0.5, axis.categories.length - 0.5)];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of axis.values) {
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo === Infinity) return [0, 1];
  if (lo === hi) return [lo - 1, hi + 1];
  const pad = (hi - lo) * 0.02;
  return [lo - pad, hi + pad];
}

/** Round tick values inside `[lo, hi]`, about `count` of them. */
export function niceTicks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0) || !Number.isFinite(span)) return [];
  const raw = span / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

/** `[{value, text}]` ticks of an axis (its own ticks for log and category axes). */
export function axisTicks(axis, domain) {
  if (axis.tickvals) return axis.tickvals.map((v, i) => ({ value: v, text: axis.ticktext[i] }))
    .filter(({ value }) => value >= domain[0] && value <= domain[1]);
  return niceTicks(domain[0], domain[1]).map((v) => ({ value: v, text: formatNumber(v) }));
}

/** Drop ticks whose labels would overlap: keep those at least `gap` pixels apart. */
export function spacedTicks(ticks, toPixel, gap = 12) {
  const kept = [];
  let last = -Infinity;
  for (const tick of [...ticks].sort((a, b) => toPixel(b.value) - toPixel(a.value))) {
    const y = toPixel(tick.value);
    if (Math.abs(y - last) >= gap) {
      kept.push(tick);
      last = y;
    }
  }
  return kept;
}

/**
 * Indexes of the lines that pass every brushed axis. `brushes` maps an axis index to one
 * `[lo, hi]` range in that axis' values; `null` when nothing is brushed.
 */
export function brushedIndexes(axes, brushes) {
  const active = Object.entries(brushes).filter(([, r]) => r);
  if (active.length === 0) return null;
  const n = axes[0]?.values.length ?? 0;
  const out = [];
  for (let i = 0; i < n; i++) {
    let inside = true;
    for (const [a, [lo, hi]] of active) {
      const v = axes[a].values[i];
      if (!(v >= lo && v <= hi)) {
        inside = false;
        break;
      }
    }
    if (inside) out.push(i);
  }
  return out;
}

/** The sentence under the plot when not every line is drawn. */
export function linesNote(drawn, total) {
  if (drawn >= total) return "";
  return `Showing ${drawn.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} runs ` +
    "as lines (an even sample); brushed and selected runs are always drawn.";
}

// viridis without its palest yellow, which vanishes on a white page
const PALETTE = ["#440154", "#414487", "#2a788e", "#22a884", "#5ec962", "#b5de2b"];

/** A colour from viridis for `t` in [0, 1] (grey for a missing value). */
export function colorFor(t) {
  if (!Number.isFinite(t)) return "#8c959f";
  const i = Math.min(PALETTE.length - 1, Math.max(0, Math.round(t * (PALETTE.length - 1))));
  return PALETTE[i];
}
