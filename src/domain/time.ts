// Time in countersign is integer epoch milliseconds inside the process and the database (both
// dialects store BIGINT), and RFC 3339 UTC strings at the API edge.

let lastSecond = Number.NaN;
let lastIso = '';

/** `2025-12-18T12:00:00Z`: the seed documents timestamps to the second, without milliseconds. */
export function toIsoSeconds(ms: number): string {
  // Every publish answers with one, mostly of the same second as the one before.
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    const iso = new Date(second * 1000).toISOString();
    // Years past 9999 come out as ±YYYYYY-…; only the milliseconds go.
    lastIso = `${iso.slice(0, -5)}Z`;
    lastSecond = second;
  }
  return lastIso;
}

/** Full precision, for delivery logs where milliseconds matter. */
export function toIsoMillis(ms: number): string {
  return new Date(ms).toISOString();
}

/** Parses an RFC 3339 timestamp with an explicit offset; returns undefined when it is not one. */
export function parseTimestamp(value: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/i.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `250ms`, `5s`, `30m`, `2h`, `5d`; a bare number is seconds. Undefined when malformed. */
export function parseDuration(value: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/.exec(value);
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = match[2] ?? 's';
  return Math.round(amount * (UNIT_MS[unit] as number));
}

/** `120 hours`, `5 minutes`, `300 ms`: the largest unit the span reaches, for messages. */
export function describeSpan(ms: number): string {
  const units: [number, string][] = [
    [3_600_000, 'hour'],
    [60_000, 'minute'],
    [1000, 'second'],
  ];
  for (const [size, name] of units) {
    if (ms >= size) {
      const n = Math.round(ms / size);
      return `${n} ${name}${n === 1 ? '' : 's'}`;
    }
  }
  return `${ms} ms`;
}
