// The listen hub: the server's end of `countersign listen`. A listen session is a delivery target
// whose deliveries go down a server-sent-events stream to the CLI, which forwards each to a local
// URL and reports the local answer back; that answer is the attempt, recorded and retried through
// the same store calls as any subscription's (attempt-outcome.ts). Only the process holding a
// session's stream claims its deliveries (they are outside the dispatchers' queue index), so the
// server makes no outbound connection for them and the SSRF guard never has to allow one.
//
// It never silently stops: the hub writes a ping every `pingMs`; the CLI sends a heartbeat as often,
// and a stream silent from the CLI for `clientSilenceMs` is closed, so the CLI reconnects. Sends
// that were written but not answered go back to the queue when their stream closes (no attempt is
// recorded for them), and arrive again after the reconnect: at-least-once, as everywhere else. A
// session nobody has connected to for `idleSessionMs` is ended, so its deliveries do not wait
// forever in the queue.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { FastifyBaseLogger } from 'fastify';
import type { SecretBox } from '../domain/secret-box.js';
import { describeSpan } from '../domain/time.js';
import type { AttemptResult, ClaimedDelivery, QueueSettings, Store } from '../store/store.js';
import { attemptResult, prepareRequest, type ReceiverAnswer } from './attempt-outcome.js';
import { type Held, LeaseKeeper } from './lease-keeper.js';
import { loggedRequestHeaders, type WebhookRequest, WebhookSigner } from './webhook-request.js';

export interface ListenSettings {
  retrySchedule: readonly number[];
  leaseMs: number;
  disableAfterFailingMs: number;
  /** How long the CLI has to report the local answer to a delivery before it counts as failed. */
  answerTimeoutMs: number;
  /** How often the hub pings each stream. */
  pingMs: number;
  /** A stream with no heartbeat from the CLI for this long is closed. */
  clientSilenceMs: number;
  /** A session with no stream connected for this long is ended (its deliveries cancelled). */
  idleSessionMs: number;
  /** How often due deliveries are looked for besides the publish wake-ups (retries, leases run out). */
  pollMs: number;
  /** How often a stream checks that the token that opened it is neither revoked nor expired. */
  tokenCheckMs: number;
}

export const DEFAULT_LISTEN_SETTINGS: ListenSettings = {
  retrySchedule: [0, 5_000, 5 * 60_000, 30 * 60_000, 2 * 3_600_000],
  leaseMs: 30_000,
  disableAfterFailingMs: 72 * 3_600_000,
  answerTimeoutMs: 45_000,
  pingMs: 10_000,
  clientSilenceMs: 35_000,
  idleSessionMs: 24 * 3_600_000,
  pollMs: 1_000,
  tokenCheckMs: 2_000,
};

/** Deliveries written to one stream and not yet answered, at most. */
export const LISTEN_WINDOW = 10;

/** Where the hub writes a session's events: an SSE response. */
export interface ListenStream {
  /** Writes one event; false once the stream is closed. */
  send(event: string, data: unknown): boolean;
  /** Ends the stream (the CLI reconnects unless told otherwise first). */
  end(): void;
}

interface Outstanding extends Held {
  startedAt: number;
  request: WebhookRequest;
  timer: NodeJS.Timeout;
}

interface Connection {
  readonly id: string;
  readonly sessionId: string;
  readonly accountId: string;
  /** The token that opened the stream: the session's own (a session belongs to one token). */
  readonly tokenId: string;
  readonly stream: ListenStream;
  readonly outstanding: Map<string, Outstanding>;
  lastBeatAt: number;
  closed: boolean;
  pumping: boolean;
  again: boolean;
}

/** What the CLI reports of one forwarded delivery. */
export interface ListenAnswer {
  deliveryId: string;
  attempt: number;
  /** The local URL it was forwarded to. */
  forwardedTo: string;
  durationMs: number;
  /** The local answer, or why there was none (connection refused, timeout). */
  answer: ReceiverAnswer | { error: string };
}

export type AnswerOutcome = 'recorded' | 'no_stream' | 'not_in_flight';

export class ListenHub {
  readonly owner = `listen:${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly connections = new Map<string, Connection>();
  private readonly signer: WebhookSigner;
  private readonly leases: LeaseKeeper;
  private readonly settings: QueueSettings;
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | undefined;
  private running = false;
  private sweeping = false;

  constructor(
    private readonly store: Store,
    secrets: SecretBox,
    private readonly config: ListenSettings,
    private readonly log: FastifyBaseLogger,
  ) {
    this.signer = new WebhookSigner(secrets);
    this.leases = new LeaseKeeper(store, this.owner, config.leaseMs, log);
    this.settings = { disableAfterFailingMs: config.disableAfterFailingMs };
  }

  /** Streams connected to this process (tests, metrics). */
  get connected(): number {
    return this.connections.size;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.onDue(() => this.wakeAll());
    this.leases.start();
    const every = (ms: number, work: () => void) => {
      const timer = setInterval(work, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.config.pollMs, () => this.wakeAll());
    every(this.config.pingMs, () => this.beat());
    every(Math.min(60_000, this.config.idleSessionMs), () => void this.sweepIdle());
  }

  /**
   * Attaches a stream to its session. A session has one stream: a newer one (the CLI reconnecting
   * before this process noticed the old connection die, or a second `listen` with the same token)
   * replaces the older, which is told so.
   */
  attach(accountId: string, tokenId: string, sessionId: string, stream: ListenStream): () => void {
    const previous = this.connections.get(sessionId);
    if (previous) {
      previous.stream.send('replaced', { message: 'another countersign listen connected to this session' });
      this.close(previous, 'replaced by a newer connection');
    }
    const conn: Connection = {
      id: randomBytes(6).toString('hex'),
      sessionId,
      accountId,
      tokenId,
      stream,
      outstanding: new Map(),
      lastBeatAt: Date.now(),
      closed: false,
      pumping: false,
      again: false,
    };
    this.connections.set(sessionId, conn);
    this.store.touchListenSessions([sessionId], Date.now()).catch(() => undefined);
    this.pump(conn);
    return () => this.close(conn, 'the stream closed');
  }

  /** Whether this process holds a stream of this token's session (no query needed to know it is theirs). */
  holds(tokenId: string, sessionId: string): boolean {
    return this.connections.get(sessionId)?.tokenId === tokenId;
  }

  /** How often a stream checks its token (the listen routes run the check). */
  get tokenCheckMs(): number {
    return this.config.tokenCheckMs;
  }

  /** A heartbeat from the CLI: false when no stream of the session is connected here. */
  heartbeat(sessionId: string): boolean {
    const conn = this.connections.get(sessionId);
    if (!conn) return false;
    conn.lastBeatAt = Date.now();
    return true;
  }

  /** Records the local answer to a delivery written to the session's stream. */
  async answer(sessionId: string, report: ListenAnswer): Promise<AnswerOutcome> {
    const conn = this.connections.get(sessionId);
    if (!conn) return 'no_stream';
    conn.lastBeatAt = Date.now();
    const item = conn.outstanding.get(report.deliveryId);
    if (!item || item.delivery.attempt !== report.attempt) return 'not_in_flight';
    this.settle(conn, item);
    const now = Date.now();
    const result = attemptResult(item.delivery, this.config.retrySchedule, {
      startedAt: item.startedAt,
      finishedAt: now,
      requestUrl: report.forwardedTo,
      loggedHeaders: loggedRequestHeaders(item.request.headers),
      answer: report.answer,
    });
    // The attempt took what the local app took, as the CLI measured it.
    await this.record({ ...result, durationMs: report.durationMs });
    this.pump(conn);
    return 'recorded';
  }

  /** Ends a session: its stream (if here) is told and closed, its undelivered deliveries cancelled. */
  async end(accountId: string, sessionId: string): Promise<number | undefined> {
    const conn = this.connections.get(sessionId);
    if (conn && conn.accountId === accountId) {
      conn.stream.send('ended', { message: 'the listen session ended' });
      this.close(conn, 'the session ended');
    }
    return this.store.endListenSession(accountId, sessionId, Date.now());
  }

  /** Closes every stream and gives back what they had not had answered. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.leases.stop();
    const released: string[] = [];
    for (const conn of [...this.connections.values()]) {
      released.push(...conn.outstanding.keys());
      conn.stream.send('closing', { message: 'the server is shutting down; reconnect' });
      this.close(conn, 'the server is shutting down', false);
    }
    if (released.length > 0) await this.store.releaseClaims(this.owner, released, Date.now()).catch(() => undefined);
  }

  private close(conn: Connection, reason: string, release = true): void {
    if (conn.closed) return;
    conn.closed = true;
    if (this.connections.get(conn.sessionId) === conn) this.connections.delete(conn.sessionId);
    const ids: string[] = [];
    for (const item of conn.outstanding.values()) {
      clearTimeout(item.timer);
      this.leases.drop(item);
      ids.push(item.delivery.id);
    }
    conn.outstanding.clear();
    conn.stream.end();
    this.log.info({ listen_session: conn.sessionId, unanswered: ids.length, reason }, 'listen stream closed');
    // Written but not answered: back to the queue, due now, for the next stream of the session.
    if (release && ids.length > 0) {
      this.store
        .releaseClaims(this.owner, ids, Date.now())
        .catch((err) => this.log.warn({ err }, 'could not hand back unanswered listen deliveries; their lease will'));
    }
  }

  private wakeAll(): void {
    for (const conn of this.connections.values()) this.pump(conn);
  }

  /** Claims the session's due deliveries while its window has room, and writes them to the stream. */
  private pump(conn: Connection): void {
    if (conn.closed || !this.running) return;
    if (conn.pumping) {
      conn.again = true;
      return;
    }
    conn.pumping = true;
    void (async () => {
      try {
        do {
          conn.again = false;
          while (!conn.closed && conn.outstanding.size < LISTEN_WINDOW) {
            const want = LISTEN_WINDOW - conn.outstanding.size;
            const now = Date.now();
            const batch = await this.store.claimListenDeliveries(
              this.owner,
              conn.sessionId,
              want,
              now,
              this.config.leaseMs,
            );
            if (conn.closed) {
              await this.store.releaseClaims(
                this.owner,
                batch.map((d) => d.id),
                Date.now(),
              );
              return;
            }
            for (const d of batch) await this.write(conn, d, now);
            if (batch.length < want) break;
          }
        } while (conn.again && !conn.closed);
      } catch (err) {
        this.log.warn({ err, listen_session: conn.sessionId }, 'claiming listen deliveries failed; retrying shortly');
      } finally {
        conn.pumping = false;
      }
    })();
  }

  private async write(conn: Connection, d: ClaimedDelivery, claimedAt: number): Promise<void> {
    if (conn.closed) {
      await this.store.releaseClaims(this.owner, [d.id], Date.now());
      return;
    }
    const startedAt = Date.now();
    const prepared = prepareRequest(this.signer, d, startedAt, this.config.retrySchedule, null);
    if ('failed' in prepared) {
      await this.record(prepared.failed);
      return;
    }
    const request = prepared.request;
    const item: Outstanding = {
      slot: -1,
      delivery: d,
      claimedAt,
      leaseUntil: claimedAt + this.config.leaseMs,
      startedAt,
      request,
      timer: setTimeout(() => void this.timedOut(conn, item), this.config.answerTimeoutMs),
    };
    item.timer.unref();
    this.leases.hold(item);
    conn.outstanding.set(d.id, item);
    conn.stream.send('delivery', {
      delivery_id: d.id,
      attempt: d.attempt,
      event_id: d.eventId,
      event_type: d.event.type,
      headers: request.headers,
      body: request.body,
    });
  }

  private async timedOut(conn: Connection, item: Outstanding): Promise<void> {
    if (conn.outstanding.get(item.delivery.id) !== item) return;
    this.settle(conn, item);
    await this.record(
      attemptResult(item.delivery, this.config.retrySchedule, {
        startedAt: item.startedAt,
        finishedAt: Date.now(),
        requestUrl: null,
        loggedHeaders: loggedRequestHeaders(item.request.headers),
        answer: { error: `countersign listen reported no answer within ${describeSpan(this.config.answerTimeoutMs)}` },
      }),
    );
    this.pump(conn);
  }

  private settle(conn: Connection, item: Outstanding): void {
    clearTimeout(item.timer);
    this.leases.drop(item);
    conn.outstanding.delete(item.delivery.id);
  }

  private async record(result: AttemptResult): Promise<void> {
    try {
      await this.store.recordAttempts(this.owner, [result], Date.now(), this.settings);
    } catch (err) {
      this.log.error(
        { err, delivery: result.deliveryId, attempt: result.attempt },
        'could not record a listen attempt; its lease will bring the delivery back',
      );
    }
  }

  /** Pings every stream, closes those the CLI has gone silent on, and marks the rest as seen. */
  private beat(): void {
    const now = Date.now();
    const seen: string[] = [];
    for (const conn of [...this.connections.values()]) {
      if (now - conn.lastBeatAt > this.config.clientSilenceMs) {
        this.close(conn, `no heartbeat from countersign listen for ${describeSpan(now - conn.lastBeatAt)}`);
        continue;
      }
      if (conn.stream.send('ping', { at: new Date(now).toISOString() })) seen.push(conn.sessionId);
      else this.close(conn, 'the stream could not be written');
    }
    this.store.touchListenSessions(seen, now).catch(() => undefined);
  }

  private async sweepIdle(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = Date.now();
      const reason = `no countersign listen connected for ${describeSpan(this.config.idleSessionMs)}`;
      for (const s of await this.store.endIdleListenSessions(now - this.config.idleSessionMs, now, reason)) {
        this.log.info({ listen_session: s.id, cancelled: s.cancelled }, `listen session ended: ${reason}`);
      }
    } catch (err) {
      this.log.warn({ err }, 'could not end idle listen sessions');
    } finally {
      this.sweeping = false;
    }
  }
}
