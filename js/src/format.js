// How values look in the table: short numbers, readable times, nothing for missing.

/** A number with about four significant digits, or scientific for very large/small. */
export function formatNumber(value) {
  if (value === null || value === undefined) return "";
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  const size = Math.abs(value);
  if (size !== 0 && (size >= 1e6 || size < 1e-3)) return value.toExponential(3);
  return Number(value.toPrecision(4)).toString();
}

/** Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` in local time. */
export function formatTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in milliseconds, e.g. `850 ms`, `12.3 s`, `4.2 min`. */
export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

const NUMERIC = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;

/** A param's text as a number, when it is one (params are stored as text); else null. */
export function numericText(value) {
  if (typeof value !== "string" || !NUMERIC.test(value)) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

/** The text of one cell of column `name`. */
export function formatCell(name, value) {
  if (value === null || value === undefined) return "";
  if (name === "start_time" || name === "end_time") return formatTime(value);
  if (typeof value === "number") return formatNumber(value);
  if (name.startsWith("params.")) {
    const number = numericText(value);
    if (number !== null) return formatNumber(number);
  }
  return String(value);
}

/** The full value of a cell, shown on hover ("" for an empty cell). */
export function cellTitle(name, value) {
  if (value === null || value === undefined) return "";
  if (name === "start_time" || name === "end_time") return formatTime(value);
  return String(value);
}
