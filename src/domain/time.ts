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

/**
 * Parses an RFC 3339 date-time with an explicit offset (`2025-12-18T14:30:05Z`,
 * `2025-12-18T16:30:05.250+02:00`) to epoch milliseconds; undefined when it is not one. Every
 * field is range-checked: Date.parse would carry 2025-02-30 over to March 2 and read T24:00 as
 * the next midnight, storing a time the client never wrote. Read by character code, without a
 * regular expression or a Date, since it runs on every publish that names its timestamp.
 * Fractions beyond milliseconds are truncated; leap seconds (:60) are refused, as JavaScript
 * time has none.
 */
export function parseTimestamp(value: string): number | undefined {
  if (value.length < 20) return undefined;
  const year = digitsAt(value, 0, 4);
  const month = digitsAt(value, 5, 2);
  const day = digitsAt(value, 8, 2);
  const hour = digitsAt(value, 11, 2);
  const minute = digitsAt(value, 14, 2);
  const second = digitsAt(value, 17, 2);
  if (
    value.charCodeAt(4) !== DASH ||
    value.charCodeAt(7) !== DASH ||
    (value.charCodeAt(10) | 0x20) !== LOWER_T ||
    value.charCodeAt(13) !== COLON ||
    value.charCodeAt(16) !== COLON ||
    year < 0 ||
    month < 1 ||
    month > 12 ||
    day < 1 ||
    day > daysInMonth(year, month) ||
    hour < 0 ||
    hour > 23 ||
    minute < 0 ||
    minute > 59 ||
    second < 0 ||
    second > 59
  ) {
    return undefined;
  }
  let at = 19;
  let millis = 0;
  if (value.charCodeAt(at) === DOT) {
    const start = ++at;
    while (at < value.length && isDigit(value.charCodeAt(at))) {
      if (at - start < 3) millis = millis * 10 + (value.charCodeAt(at) - ZERO);
      at++;
    }
    const count = at - start;
    if (count === 0 || count > 9) return undefined;
    if (count < 3) millis *= count === 1 ? 100 : 10;
  }
  let offsetMinutes = 0;
  const zone = value.charCodeAt(at);
  if ((zone | 0x20) === LOWER_Z) {
    if (at + 1 !== value.length) return undefined;
  } else if (zone === PLUS || zone === MINUS) {
    const offsetHours = digitsAt(value, at + 1, 2);
    const offsetMins = digitsAt(value, at + 4, 2);
    if (
      at + 6 !== value.length ||
      value.charCodeAt(at + 3) !== COLON ||
      offsetHours < 0 ||
      offsetHours > 23 ||
      offsetMins < 0 ||
      offsetMins > 59
    ) {
      return undefined;
    }
    offsetMinutes = (offsetHours * 60 + offsetMins) * (zone === PLUS ? 1 : -1);
  } else {
    return undefined;
  }
  const minutes = (daysFromCivil(year, month, day) * 24 + hour) * 60 + minute - offsetMinutes;
  return (minutes * 60 + second) * 1000 + millis;
}

/**
 * Days from 1970-01-01 to a proleptic Gregorian date, by Howard Hinnant's days_from_civil: plain
 * arithmetic, cheaper than Date.UTC, and years 0-99 are not read as 1900-1999.
 */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

const ZERO = 0x30;
const DASH = 0x2d;
const COLON = 0x3a;
const DOT = 0x2e;
const PLUS = 0x2b;
const MINUS = 0x2d;
const LOWER_T = 0x74;
const LOWER_Z = 0x7a;
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isDigit(code: number): boolean {
  return code >= ZERO && code <= ZERO + 9;
}

/** The number written by `count` digits at `at`, or -1 when any of them is not a digit. */
function digitsAt(value: string, at: number, count: number): number {
  let n = 0;
  for (let i = at; i < at + count; i++) {
    const code = value.charCodeAt(i);
    if (!isDigit(code)) return -1;
    n = n * 10 + (code - ZERO);
  }
  return n;
}

function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1] as number;
  return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
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
