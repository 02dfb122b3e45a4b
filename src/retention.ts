// The retention purge of `serve` and `worker` (COUNTERSIGN_RETENTION): shortly after start and then
// every minute, events older than the retention go, with their finished deliveries and their
// attempts (Store.purgeOlderThan). A run is a series of small transactions with a pause between
// them, so publishing and the queue get the database in between, and a run never overlaps the
// next. Every process sharing the database runs it; the store makes that safe (SQLite has one
// writer; PostgreSQL purges skip the events another one has locked). Only counts are logged.
import type { Logger } from 'pino';
import type { Store } from './store/store.js';

export interface RetentionSettings {
  /** Between the end of one run and the start of the next. */
  everyMs: number;
  /** From start() to the first run. */
  firstAfterMs: number;
  /** Old events one transaction looks at. */
  batchSize: number;
  /** Between two transactions of a run. */
  pauseMs: number;
}

export const DEFAULT_RETENTION_SETTINGS: RetentionSettings = {
  everyMs: 60_000,
  firstAfterMs: 5_000,
  batchSize: 500,
  pauseMs: 20,
};

export interface PurgeTotals {
  events: number;
  deliveries: number;
  attempts: number;
}

export class RetentionPurge {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<PurgeTotals> | undefined;
  private stopped = false;
  private readonly settings: RetentionSettings;

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly log: Logger,
    settings: Partial<RetentionSettings> = {},
  ) {
    this.settings = { ...DEFAULT_RETENTION_SETTINGS, ...settings };
  }

  start(): void {
    this.schedule(this.settings.firstAfterMs);
  }

  /** Ends the timer, and waits for a run under way to finish the transaction it is in. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One run: everything older than the retention at `now` that may go. */
  run(now = Date.now()): Promise<PurgeTotals> {
    this.running ??= this.purge(now - this.retentionMs).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.run()
        .catch((err: unknown) => this.log.warn({ err }, 'retention purge failed; it runs again in a minute'))
        .finally(() => this.schedule(this.settings.everyMs));
    }, delayMs);
    this.timer.unref();
  }

  private async purge(cutoff: number): Promise<PurgeTotals> {
    const totals: PurgeTotals = { events: 0, deliveries: 0, attempts: 0 };
    let after: Parameters<Store['purgeOlderThan']>[2];
    do {
      const batch = await this.store.purgeOlderThan(cutoff, this.settings.batchSize, after);
      totals.events += batch.events;
      totals.deliveries += batch.deliveries;
      totals.attempts += batch.attempts;
      after = batch.next;
      if (after) await new Promise((resolve) => setTimeout(resolve, this.settings.pauseMs));
    } while (after && !this.stopped);
    if (totals.events + totals.deliveries + totals.attempts > 0) {
      this.log.info(
        { ...totals, created_before: new Date(cutoff).toISOString() },
        `retention purge removed ${totals.events} events, ${totals.deliveries} deliveries and ${totals.attempts} attempts`,
      );
    }
    return totals;
  }
}
