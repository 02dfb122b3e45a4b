// When to try a failed delivery again. Pure: the caller passes the clock and the random source.
import { parseDuration } from './time.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Delay before each attempt: the first is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
 * 14 h, 20 h, 24 h (ten attempts over about three days). The schedule's length is the attempt budget.
 */
export const DEFAULT_RETRY_SCHEDULE: readonly number[] = [
  0,
  5_000,
  5 * MINUTE,
  30 * MINUTE,
  2 * HOUR,
  5 * HOUR,
  10 * HOUR,
  14 * HOUR,
  20 * HOUR,
  24 * HOUR,
];

export const MAX_RETRY_AFTER_MS = 24 * HOUR;
const JITTER = 0.2;

/** Parses `0,1s,2s` (as in COUNTERSIGN_RETRY_SCHEDULE); throws on a malformed entry. */
export function parseRetrySchedule(text: string): number[] {
  const steps = text.split(',').map((part) => {
    const ms = parseDuration(part);
    if (ms === undefined) throw new Error(`invalid retry schedule entry "${part.trim()}" (use e.g. 0,5s,5m,2h)`);
    return ms;
  });
  // Never empty: split gives at least one part, and an empty part ('' or '0,,5s') is refused above.
  return steps;
}

export interface RetryDecision {
  /** Milliseconds from now until the next attempt, or undefined when the budget is spent. */
  delayMs: number | undefined;
}

/**
 * After `attemptsMade` attempts in this round have failed, when is the next one due?
 * `retryAfterMs` (from a 429 or 503) is honoured, clamped between the scheduled delay and 24 h.
 */
export function nextRetryDelay(
  schedule: readonly number[],
  attemptsMade: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number | undefined {
  if (attemptsMade >= schedule.length) return undefined;
  const base = schedule[attemptsMade] as number;
  // Stryker disable next-line ConditionalExpression: `false` is equivalent: the shortcut only skips a random draw, as 0 times any jitter factor (0.8 to 1.2) rounds to 0; `true`, also silenced here, drops all jitter and fails the jitter test
  const jittered = base === 0 ? 0 : Math.round(base * (1 - JITTER + 2 * JITTER * random()));
  if (retryAfterMs === undefined) return jittered;
  return Math.min(Math.max(retryAfterMs, jittered), Math.max(MAX_RETRY_AFTER_MS, jittered));
}

/** Retry-After is either delta-seconds or an HTTP date; returns milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
