// Curve smoothing, as TensorBoard does it: a debiased exponential moving average.

/** Smooth `values` with weight `alpha` in [0, 1) (0 leaves them as they are). */
export function smooth(values, alpha) {
  if (!alpha) return Array.from(values);
  const out = new Array(values.length);
  let last = 0;
  let weight = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = alpha * last + (1 - alpha) * v;
    weight = alpha * weight + (1 - alpha);
    out[i] = last / weight;
  }
  return out;
}

/** Split a long-format history (run_id, step, timestamp, value) into one series per run. */
export function seriesByRun(columns, numRows) {
  const byRun = new Map();
  for (let i = 0; i < numRows; i++) {
    const id = columns.run_id[i];
    if (!byRun.has(id)) byRun.set(id, { step: [], time: [], value: [] });
    const s = byRun.get(id);
    s.step.push(columns.step[i]);
    s.time.push(columns.timestamp[i]);
    s.value.push(columns.value[i]);
  }
  return byRun;
}
