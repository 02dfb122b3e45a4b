// Small statistics for the report: medians across runs and percentiles of samples.

export function median(values) {
  const xs = values.filter((v) => typeof v === 'number' && Number.isFinite(v)).sort((a, b) => a - b);
  if (xs.length === 0) return undefined;
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** The median of every numeric field across runs; other fields come from the first run. */
export function medianOfRuns(runs) {
  const out = {};
  for (const key of new Set(runs.flatMap((r) => Object.keys(r)))) {
    const values = runs.map((r) => r[key]);
    out[key] = values.some((v) => typeof v === 'number') ? median(values) : values.find((v) => v !== undefined);
  }
  return out;
}

export function percentile(samples, p) {
  if (samples.length === 0) return undefined;
  const sorted = Float64Array.from(samples).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Seconds between two monotonic nanosecond stamps; NaN when one is missing (nothing arrived). */
export function seconds(fromNs, toNs) {
  const from = BigInt(fromNs);
  const to = BigInt(toNs);
  return from === 0n || to === 0n ? Number.NaN : Number(to - from) / 1e9;
}

/** 12345.6 -> "12,346"; small values keep a decimal or two. */
export function fmt(value, digits) {
  if (value === undefined || value === null || Number.isNaN(value)) return '—';
  const d = digits ?? (Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2);
  return value.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
