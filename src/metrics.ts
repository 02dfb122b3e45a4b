// Prometheus metrics at GET /metrics: what an operator pages on (attempt outcomes, latency, the
// dispatcher's load, the queue) plus the process defaults. One registry per process, passed in
// explicitly. Labels are bounded: outcomes and statuses only, never a subscription or an account.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AttemptOutcome, QueueStats, Store } from './store/store.js';

/** Queue figures are read from the database at most this often, however often /metrics is scraped. */
export const QUEUE_STATS_EVERY_MS = 5_000;

export class Metrics {
  readonly registry = new Registry();
  private readonly published: Counter;
  private readonly attempts: Counter<'outcome'>;
  private readonly attemptSeconds: Histogram;
  private readonly outcomes: Record<AttemptOutcome, ReturnType<Counter<'outcome'>['labels']>>;
  private readonly circuitMoves: Counter<'transition'>;

  constructor(options: { defaults?: boolean } = {}) {
    if (options.defaults !== false) collectDefaultMetrics({ register: this.registry, prefix: 'countersign_' });
    this.published = new Counter({
      name: 'countersign_events_published_total',
      help: 'Events accepted by POST /v1/events (idempotent replays not counted).',
      registers: [this.registry],
    });
    this.attempts = new Counter({
      name: 'countersign_delivery_attempts_total',
      help: 'Delivery attempts by outcome: delivered, retry, failed (no attempts left), gone (410).',
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.attemptSeconds = new Histogram({
      name: 'countersign_delivery_attempt_duration_seconds',
      help: 'Time from sending a webhook to having its answer.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
      registers: [this.registry],
    });
    this.circuitMoves = new Counter({
      name: 'countersign_circuit_transitions_total',
      help: 'Endpoint circuit breakers that this process saw open, open again after a failed probe, or close.',
      labelNames: ['transition'],
      registers: [this.registry],
    });
    for (const transition of ['opened', 'reopened', 'closed']) this.circuitMoves.labels(transition);
    this.outcomes = {
      delivered: this.attempts.labels('delivered'),
      retry: this.attempts.labels('retry'),
      failed: this.attempts.labels('failed'),
      gone: this.attempts.labels('gone'),
    };
  }

  eventsPublished(count: number): void {
    this.published.inc(count);
  }

  attempt(outcome: AttemptOutcome, durationMs: number): void {
    this.outcomes[outcome].inc();
    this.attemptSeconds.observe(durationMs / 1000);
  }

  circuitTransition(transition: 'opened' | 'reopened' | 'closed'): void {
    this.circuitMoves.labels(transition).inc();
  }

  /**
   * The queue, as the database has it (across every process sharing it): deliveries due now, how
   * long the oldest of them has been due, and deliveries by status. Read at scrape time, at most
   * every QUEUE_STATS_EVERY_MS; should a read fail, the gauges keep their last values.
   */
  queue(store: Pick<Store, 'queueStats'>): void {
    let last: { at: number; stats: QueueStats } | undefined;
    let reading: Promise<QueueStats | undefined> | undefined;
    const read = (): Promise<QueueStats | undefined> => {
      if (last && Date.now() - last.at < QUEUE_STATS_EVERY_MS) return Promise.resolve(last.stats);
      reading ??= store
        .queueStats(Date.now())
        .then((stats) => {
          last = { at: Date.now(), stats };
          return stats;
        })
        .catch(() => last?.stats)
        .finally(() => {
          reading = undefined;
        });
      return reading;
    };
    new Gauge({
      name: 'countersign_deliveries_due',
      help: 'Deliveries that may be sent now: pending and due, or sending with a lease that ran out.',
      registers: [this.registry],
      async collect() {
        const stats = await read();
        if (stats) this.set(stats.due);
      },
    });
    new Gauge({
      name: 'countersign_oldest_due_delivery_age_seconds',
      help: 'How long the longest-waiting due delivery has been due (0 when none is).',
      registers: [this.registry],
      async collect() {
        const stats = await read();
        if (!stats) return;
        this.set(stats.oldestDueAt === undefined ? 0 : Math.max(0, (Date.now() - stats.oldestDueAt) / 1000));
      },
    });
    new Gauge({
      name: 'countersign_deliveries',
      help: 'Deliveries by status, for the statuses that are still work: pending, sending, held, failed, waiting, postponed.',
      labelNames: ['status'],
      registers: [this.registry],
      async collect() {
        const stats = await read();
        if (!stats) return;
        for (const [status, count] of Object.entries(stats.byStatus)) this.labels(status).set(count);
      },
    });
    new Gauge({
      name: 'countersign_circuits',
      help: 'Endpoints (subscriptions and account callbacks) whose circuit breaker is open or half-open.',
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const stats = await read();
        if (!stats) return;
        for (const [state, count] of Object.entries(stats.circuits)) this.labels(state).set(count);
      },
    });
  }

  /** A gauge read at scrape time (in-flight sends, say), so the hot path pays nothing for it. */
  gauge(name: string, help: string, read: () => number): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }
}
