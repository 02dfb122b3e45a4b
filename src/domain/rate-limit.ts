// Fixed-window request counting per key (an API token id): at most `max` requests in each window of
// `windowMs`, the window starting at a key's first request. Pure: the clock is passed in.
//
// One entry per key, updated in place: a key's window starting over reuses its entry, so nothing is
// added to or removed from the map per request (see docs/architecture.md, "Memory").

export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** Requests left in this window after this one. */
  remaining: number;
  /** Milliseconds until the window starts over. */
  resetInMs: number;
}

interface Window {
  start: number;
  count: number;
}

export class FixedWindowLimiter {
  private readonly windows = new Map<string, Window>();

  constructor(
    readonly max: number,
    readonly windowMs: number,
    /** Beyond this many keys the map is cleared: every key starts a fresh window, none is refused wrongly. */
    private readonly maxKeys = 100_000,
  ) {
    if (!(max > 0) || !(windowMs > 0)) throw new RangeError('max and windowMs must be positive');
  }

  take(key: string, now: number): RateDecision {
    let window = this.windows.get(key);
    if (window === undefined) {
      if (this.windows.size >= this.maxKeys) this.windows.clear();
      window = { start: now, count: 0 };
      this.windows.set(key, window);
    } else if (now - window.start >= this.windowMs || now < window.start) {
      // The window has passed (or the clock went back): start it over.
      window.start = now;
      window.count = 0;
    }
    window.count++;
    return {
      allowed: window.count <= this.max,
      limit: this.max,
      remaining: Math.max(0, this.max - window.count),
      resetInMs: window.start + this.windowMs - now,
    };
  }
}
