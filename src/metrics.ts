// Prometheus metrics at GET /metrics: what an operator pages on (attempt outcomes, latency, the
// dispatcher's load) plus the process defaults. One registry per process, passed in explicitly.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AttemptOutcome } from './store/store.js';

export class Metrics {
  readonly registry = new Registry();
  private readonly published: Counter;
  private readonly attempts: Counter<'outcome'>;
  private readonly attemptSeconds: Histogram;
  private readonly outcomes: Record<AttemptOutcome, ReturnType<Counter<'outcome'>['labels']>>;

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
