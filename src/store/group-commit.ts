// Group commit: callers hand in one item each and get their own result back, while the items that
// arrive during one event-loop tick (and while the previous flush is still running) are written by
// a single call. Used for publishing (many API requests -> one transaction) and for attempt results.
//
// A writer whose callers need not hear back at once (attempt results: the receiver already has the
// delivery) can linger: a flush of fewer than `lingerBelow` items waits up to `lingerMs` for more,
// so a trickle of items costs one transaction per linger instead of one per item.

export interface Linger {
  /** How long a small batch waits for company. */
  ms: number;
  /** A batch of this many items is written at once. */
  below: number;
}

export class GroupCommit<I, O> {
  private pending: { item: I; resolve: (value: O) => void; reject: (err: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;
  private scheduled = false;
  private lingerTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly write: (items: I[]) => Promise<O[]>,
    private readonly maxBatch = 1000,
    private readonly linger?: Linger,
  ) {}

  add(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once everything added so far is written (a lingering batch is written now). */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.flushing || this.scheduled || this.lingerTimer) {
      if (this.lingerTimer) this.flushSoon();
      if (this.flushing) await this.flushing;
      else await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    if (this.linger && this.pending.length < this.linger.below) {
      this.lingerTimer ??= setTimeout(() => this.flushSoon(), this.linger.ms);
      return;
    }
    this.flushSoon();
  }

  private flushSoon(): void {
    if (this.lingerTimer) {
      clearTimeout(this.lingerTimer);
      this.lingerTimer = undefined;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.pending.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0, this.maxBatch);
      try {
        const results = await this.write(batch.map((b) => b.item));
        for (const [i, b] of batch.entries()) b.resolve(results[i] as O);
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
  }
}
