// The dispatcher: claims due deliveries in batches under a lease, sends them with bounded
// concurrency (globally and per target origin), and hands results to a batched writer. It wakes at
// once when a publish commits (in-process, or over LISTEN/NOTIFY), when the next retry falls due,
// and on a slow poll as a safety net for leases that ran out. Publishes in its own process hand
// their new deliveries over directly (reserveForPublish / acceptPublished), already leased.
//
// Nothing it holds hides: a send that cannot even be prepared (a secret that will not open) is a
// failed attempt with its reason, retried like any other; a result that cannot be written with its
// batch is written alone, and without the receiver's answer if need be; leases are renewed while
// sends are in flight; and what an operator must know (failed attempts, deliveries out of retries,
// subscriptions disabled, leases taken over) is logged.

import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { DispatcherConfig } from '../config.js';
import { storableText } from '../domain/attempt-record.js';
import { type CircuitVerdict, circuitVerdict } from '../domain/circuit.js';
import { describeSendError } from '../domain/classify.js';
import { redactHeaders, redactSecrets } from '../domain/redact.js';
import type { SecretBox } from '../domain/secret-box.js';
import type { TargetPolicy } from '../domain/target-url.js';
import { toIsoMillis } from '../domain/time.js';
import type { Metrics } from '../metrics.js';
import { GroupCommit } from '../store/group-commit.js';
import { LATE_MS } from '../store/queue/throttle.js';
import type { AttemptResult, ClaimedDelivery, PublishClaim, RecordOutcome, Store } from '../store/store.js';
import { type AttemptFacts, attemptResult, prepareRequest } from './attempt-outcome.js';
import { EndpointLanes, type Lane, SLOW_SWEEP_MS } from './endpoint-lanes.js';
import { type Resolver, SsrfRefusedError } from './guarded-lookup.js';
import { type Held, LeaseKeeper } from './lease-keeper.js';
import { Sender } from './sender.js';
import { loggedRequestHeaders, WebhookSigner } from './webhook-request.js';

/**
 * Attempt results are written in batches that wait up to 5 ms for company unless 64 are already
 * waiting. The receiver has the delivery by then, so only the log and the delivery's state are
 * later, and a crash in between redelivers under the lease, as a crash before any write would. At a
 * steady 1,000 deliveries/s this is one commit per five deliveries instead of about one each; under
 * load the batches fill on their own and nothing waits.
 */
const RECORD_LINGER = { ms: 5, below: 64 };

const NEXT_DUE_EVERY_MS = 100;
/** scheduleNextDue waits at least this many times as long as its last question took. */
const NEXT_DUE_COST_FACTOR = 10;

/** Claim rounds in a row that may take nothing (each walking another part of the endpoints) before the loop waits to be woken. */
const MAX_EMPTY_ROUNDS = 8;

/** A delivery in this process's hands, from its claim until its result is written or it is handed back. */
type Queued = Held;

export interface DispatcherOptions {
  /** The SSRF guard's switches; without them every internal address is refused. */
  targetPolicy?: TargetPolicy;
  /** How target host names are resolved (the system resolver unless a test plays DNS). */
  resolve?: Resolver;
  /** Extra PEM CA certificates trusted besides Node's roots. */
  trustedCa?: string[];
  metrics?: Metrics;
}

export class Dispatcher {
  readonly owner = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  private readonly sender: Sender;
  private readonly results: GroupCommit<AttemptResult, void>;
  private readonly lanes: EndpointLanes<Queued>;
  /** When releaseProbes last ran, and when the next circuit window ends. */
  private probesCheckedAt = Number.NEGATIVE_INFINITY;
  private nextProbeAt: number | undefined;
  private nextDueAskedAt = Number.NEGATIVE_INFINITY;
  /** How often scheduleNextDue may ask: NEXT_DUE_EVERY_MS, or longer when asking was slow. */
  private nextDueEveryMs = NEXT_DUE_EVERY_MS;
  private readonly signer: WebhookSigner;
  private readonly leases: LeaseKeeper;
  private readonly metrics: Metrics | undefined;
  private running = false;
  /** Set at the shutdown deadline: sends ending later are not recorded, their claims go back. */
  private pastDeadline = false;
  private claiming = false;
  private wakeAgain = false;
  private mayHaveMore = false;
  /** Throttled deliveries waiting for their send slot, each on its own timer. */
  private readonly pacing = new Map<Queued, NodeJS.Timeout>();
  /** Room promised to publishes whose transactions have not finished yet. */
  private reserved = 0;
  private dueTimer: NodeJS.Timeout | undefined;
  private dueTimerAt = 0;
  private pollTimer: NodeJS.Timeout | undefined;
  /** Moves sends gone unanswered too long out of the global limit (EndpointLanes.sweep). */
  private slowTimer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    secrets: SecretBox,
    private readonly config: DispatcherConfig,
    private readonly log: Logger,
    options: DispatcherOptions = {},
  ) {
    this.metrics = options.metrics;
    this.signer = new WebhookSigner(secrets);
    this.leases = new LeaseKeeper(store, this.owner, config.leaseMs, log);
    this.lanes = new EndpointLanes<Queued>(config);
    this.metrics?.gauge(
      'countersign_dispatcher_busy',
      'Sends in flight or claimed and waiting for a slot.',
      () => this.busy,
    );
    this.metrics?.gauge(
      'countersign_dispatcher_sending',
      'Sends in flight: requests made and not yet answered (part of countersign_dispatcher_busy).',
      () => this.lanes.inFlight,
    );
    this.sender = new Sender({
      connectTimeoutMs: config.connectTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      perOriginConnections: config.perOriginConcurrency,
      targetPolicy: options.targetPolicy ?? { allowInsecure: false },
      resolve: options.resolve,
      trustedCa: options.trustedCa,
    });
    this.results = new GroupCommit<AttemptResult, void>(
      async (items) => {
        const outcome = await this.record(items);
        this.reportDisabled(outcome);
        this.reportCircuits(outcome);
        // A retry due before the next poll gets a timer now: the claim round that could have seen
        // it may have ended before this result was written.
        let soonest = Number.POSITIVE_INFINITY;
        for (const r of items)
          if (r.nextAttemptAt !== undefined && r.nextAttemptAt < soonest) soonest = r.nextAttemptAt;
        if (soonest !== Number.POSITIVE_INFINITY) this.wakeAt(soonest);
        return items.map(() => undefined);
      },
      2000,
      RECORD_LINGER,
    );
  }

  /**
   * Starts claiming. Resolves once the first claim round has run, and rejects (leaving nothing
   * running) when it fails: a dispatcher that cannot claim must not look started.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.unsubscribe = this.store.onDue(() => this.wake());
    this.pollTimer = setInterval(() => this.wake(), this.config.pollIntervalMs);
    this.pollTimer.unref();
    this.slowTimer = setInterval(() => {
      if (this.lanes.sweep(Date.now())) this.pump();
    }, SLOW_SWEEP_MS);
    this.slowTimer.unref();
    this.leases.start();
    this.claiming = true;
    try {
      await this.claimLoop();
    } catch (err) {
      this.claiming = false;
      await this.stop().catch(() => undefined);
      throw err;
    }
    this.claiming = false;
    if (this.wakeAgain) this.wake();
  }

  /**
   * Writes a batch of results. Should the batch fail (one row the database refuses fails them
   * all), each is written alone, and one that still fails is written without the receiver's answer
   * and with the reason in its error: the attempt is logged and its delivery moves on either way.
   * Only when the database cannot be written at all does a result stay unwritten; its lease then
   * brings the delivery back, as after a crash.
   */
  private async record(items: AttemptResult[]): Promise<RecordOutcome> {
    const settings = { disableAfterFailingMs: this.config.disableAfterFailingMs, circuit: this.config.circuit };
    try {
      return await this.store.recordAttempts(this.owner, items, Date.now(), settings);
    } catch (batchError) {
      if (items.length === 1) return this.recordStripped(items[0] as AttemptResult, batchError, settings);
      const outcome: RecordOutcome = { disabled: [], queued: 0, circuits: [] };
      for (const item of items) {
        let single: RecordOutcome;
        try {
          single = await this.store.recordAttempts(this.owner, [item], Date.now(), settings);
        } catch (err) {
          single = await this.recordStripped(item, err, settings);
        }
        outcome.disabled.push(...single.disabled);
        outcome.circuits?.push(...(single.circuits ?? []));
        outcome.queued += single.queued;
      }
      return outcome;
    }
  }

  private async recordStripped(
    item: AttemptResult,
    err: unknown,
    settings: { disableAfterFailingMs: number },
  ): Promise<RecordOutcome> {
    const reason = (err as Error)?.message ?? String(err);
    const stripped: AttemptResult = {
      ...item,
      responseExcerpt: null,
      responseHeaders: null,
      error: storableText(
        `${item.error ? `${item.error}; ` : ''}the attempt could not be logged in full: ${reason}`,
      ).slice(0, 1000),
    };
    try {
      return await this.store.recordAttempts(this.owner, [stripped], Date.now(), settings);
    } catch (again) {
      this.log.error(
        { err: again, delivery: item.deliveryId, attempt: item.attempt },
        'could not record a delivery attempt; its lease will bring the delivery back',
      );
      return { disabled: [], queued: 0 };
    }
  }

  /** Circuits opened at warn (an endpoint stopped answering), closed at info; each counted. */
  private reportCircuits(outcome: RecordOutcome): void {
    for (const change of outcome.circuits ?? []) {
      this.metrics?.circuitTransition(change.transition);
      const { circuit } = change;
      const fields = {
        ...(change.endpoint === change.accountId ? { callback: change.accountId } : { subscription: change.endpoint }),
        account: change.accountId,
        circuit: circuit.state,
        failures: circuit.failures,
        ...(circuit.reason === null ? {} : { reason: circuit.reason }),
        ...(circuit.retryAt === null || circuit.state === 'closed'
          ? {}
          : { next_probe_at: toIsoMillis(circuit.retryAt) }),
      };
      if (change.transition === 'closed')
        this.log.info(fields, 'circuit closed: the endpoint answered; its postponed deliveries go now');
      else {
        const next = toIsoMillis(circuit.retryAt ?? Date.now());
        this.log.warn(
          fields,
          change.transition === 'opened'
            ? `circuit opened after ${circuit.failures} faults in a row (last: ${circuit.reason ?? 'unknown'}); its deliveries are postponed until a probe at ${next} succeeds`
            : `circuit probe failed (${circuit.reason ?? 'unknown'}); next probe at ${next}`,
        );
      }
    }
  }

  private reportDisabled(outcome: RecordOutcome): void {
    for (const sub of outcome.disabled) {
      this.log.warn(
        { subscription: sub.id, account: sub.accountId, target_host: hostOf(sub.targetUrl), reason: sub.reason },
        `subscription disabled: ${sub.reason}`,
      );
    }
  }

  /** Claims what is due now, as long as there is room. Safe to call at any time, any number of times. */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.wakeAgain = true;
      return;
    }
    this.claiming = true;
    this.claimLoop()
      .catch((err) => this.log.error({ err }, 'claiming deliveries failed; retrying on the next wake'))
      .finally(() => {
        this.claiming = false;
      });
  }

  /** In-flight and queued sends, for shutdown and tests. */
  get busy(): number {
    return this.lanes.inFlight + this.lanes.queued + this.pacing.size;
  }

  private capacity(): number {
    // Keep a claimed buffer of up to one batch beyond the concurrency limit, so a finished send
    // can start the next one without waiting for a claim round trip. Deliveries waiting for a
    // throttle slot take no room: a throttled subscription must never hold up another one.
    // Slow sends (unanswered for a while) have left the global limit, and so leave the buffer.
    return this.config.maxConcurrency + this.config.claimBatchSize - this.lanes.occupied - this.reserved;
  }

  /**
   * Direct hand-off, step 1: how many of a publish's new deliveries this dispatcher takes, leased
   * to it in the publishing transaction. The room stays reserved until `acceptPublished`.
   */
  reserveForPublish(): PublishClaim | undefined {
    if (!this.running) return undefined;
    const limit = Math.min(this.capacity(), this.config.claimBatchSize);
    if (limit <= 0) return undefined;
    this.reserved += limit;
    return { owner: this.owner, leaseMs: this.config.leaseMs, limit, room: this.roomFor, roomless: this.markMore };
  }

  /**
   * Step 2, once the transaction has ended: queues what it claimed (nothing if it failed). The
   * lease began at `claimedAt`. Claims arriving after stop() go back to the queue.
   */
  acceptPublished(claim: PublishClaim, claimed: ClaimedDelivery[], claimedAt: number): void {
    this.reserved -= claim.limit;
    if (claimed.length === 0) return;
    if (!this.running) {
      this.store
        .releaseClaims(
          this.owner,
          claimed.map((d) => d.id),
          Date.now(),
        )
        .catch((err) => this.log.warn({ err }, 'release failed; the lease will bring them back'));
      return;
    }
    for (const delivery of claimed) this.enqueue(held(delivery, claimedAt, this.config.leaseMs));
  }

  /** What claims and hand-offs may take of an endpoint: its room in this process. */
  private readonly roomFor = (endpoint: string): number => this.lanes.room(endpoint);
  /** An endpoint the queue holds more of than this process had room for: claimed once it has. */
  private readonly markMore = (endpoint: string): void => this.lanes.markMore(endpoint);

  private async claimLoop(): Promise<void> {
    do {
      this.wakeAgain = false;
      await this.checkProbes();
      let room = this.capacity();
      // Full: a finished send wakes the loop again (pump) once there is room for half a batch.
      if (room <= 0) this.mayHaveMore = true;
      let emptyRounds = 0;
      while (this.running && room > 0) {
        const want = Math.min(room, this.config.claimBatchSize);
        const now = Date.now();
        const round = await this.store.claimRound(this.owner, want, now, this.config.leaseMs, {
          room: this.roomFor,
          probeTimeoutMs: this.config.circuit.probeTimeoutMs,
        });
        const batch = round.deliveries;
        if (!this.running) {
          await this.store.releaseClaims(
            this.owner,
            batch.map((d) => d.id),
            Date.now(),
          );
          return;
        }
        this.reportTakeovers(batch);
        this.reportProbes(batch);
        for (const delivery of batch) this.enqueue(held(delivery, now, this.config.leaseMs));
        // An endpoint that gave all it was asked may have more; the loop asks again once it has room.
        for (const key of round.full) this.lanes.markMore(key);
        this.mayHaveMore = round.limited;
        if (!this.mayHaveMore) break;
        if (batch.length === 0) {
          // A round that took nothing but walked only part of the endpoints goes on with the rest,
          // a few rounds at most, and never without letting the event loop turn.
          if (++emptyRounds >= MAX_EMPTY_ROUNDS) break;
          await new Promise((resolve) => setImmediate(resolve));
        }
        room = this.capacity();
      }
    } while (this.wakeAgain && this.running);
    if (this.running && !this.mayHaveMore) await this.scheduleNextDue();
  }

  /**
   * Lets the probes whose circuit windows have ended go (releaseProbes), at most once per poll
   * interval unless a window ends sooner, and arms the timer for the next window's end.
   */
  private async checkProbes(): Promise<void> {
    const now = Date.now();
    const due = this.nextProbeAt !== undefined && this.nextProbeAt <= now;
    if (!due && now - this.probesCheckedAt < this.config.pollIntervalMs) return;
    this.probesCheckedAt = now;
    const { nextAt } = await this.store.releaseProbes(now);
    this.nextProbeAt = nextAt;
    if (nextAt !== undefined) this.wakeAt(nextAt);
  }

  /** A probe is a delivery sent while its endpoint's circuit is half-open: its answer decides the circuit. */
  private reportProbes(batch: ClaimedDelivery[]): void {
    for (const d of batch) {
      if (!d.probe) continue;
      this.log.info(
        {
          delivery: d.id,
          ...(d.subscriptionId === null ? { callback: d.accountId } : { subscription: d.subscriptionId }),
          target_host: hostOf(d.target.url),
        },
        'probing an endpoint whose circuit is open: its answer closes the circuit or keeps it open',
      );
    }
  }

  /**
   * Arms a timer for the earliest delivery due later (a retry, a lease running out), at most once
   * per NEXT_DUE_EVERY_MS: under a steady stream of wake-ups (on PostgreSQL every publish wakes
   * every dispatcher) asking after each claim round was a query per round, a third of a worker's
   * queries. Retries this process records arm their own timer (see `results`), and the poll
   * catches anything else, so a check at most 100 ms old loses nothing. The question walks every
   * endpoint with queued work (about 3 µs each on SQLite, 8 µs on PostgreSQL), so it is asked at
   * most once per ten times its last answer took: with 5,000 endpoints holding future retries that
   * is every 390 ms on PostgreSQL instead of 39 ms of every 100, and the poll still catches up.
   */
  private async scheduleNextDue(): Promise<void> {
    const now = Date.now();
    if (now - this.nextDueAskedAt < this.nextDueEveryMs) return;
    this.nextDueAskedAt = now;
    // Endpoints due already are those the last round had no room for: their lanes claim again
    // once they have room (EndpointLanes.wantMore).
    const due = await this.store.nextDueAt(now);
    this.nextDueEveryMs = Math.max(NEXT_DUE_EVERY_MS, NEXT_DUE_COST_FACTOR * (Date.now() - now));
    if (due !== undefined) this.wakeAt(due);
  }

  /** Arms the timer for `due` unless it already fires sooner; the poll covers anything later. */
  private wakeAt(due: number): void {
    if (!this.running) return;
    const delay = Math.max(0, due - Date.now());
    if (delay >= this.config.pollIntervalMs) return;
    if (this.dueTimer && this.dueTimerAt <= due) return;
    if (this.dueTimer) clearTimeout(this.dueTimer);
    this.dueTimerAt = due;
    this.dueTimer = setTimeout(() => {
      this.dueTimer = undefined;
      this.wake();
    }, delay + 1);
    this.dueTimer.unref();
  }

  /** One line per claim round that took over leases which ran out: their process died or stalled. */
  private reportTakeovers(batch: ClaimedDelivery[]): void {
    let count = 0;
    const from = new Set<string>();
    const deliveries: string[] = [];
    for (const d of batch) {
      if (d.takenOverFrom === undefined) continue;
      count++;
      from.add(d.takenOverFrom);
      if (deliveries.length < 20) deliveries.push(d.id);
    }
    if (count === 0) return;
    this.log.warn(
      { count, from: [...from], deliveries, self: from.has(this.owner) },
      `took over ${count} ${count === 1 ? 'delivery' : 'deliveries'} whose lease ran out (the process holding ${from.size === 1 ? 'it' : 'them'} stopped or stalled); sending again`,
    );
  }

  private enqueue(item: Queued): void {
    this.leases.hold(item);
    this.lanes.hold(this.lanes.laneOf(item.delivery));
    const wait = item.delivery.notBefore === undefined ? 0 : item.delivery.notBefore - Date.now();
    if (wait <= 0) {
      this.place(item);
      return;
    }
    const timer = setTimeout(() => {
      this.pacing.delete(item);
      this.place(item);
    }, Math.ceil(wait));
    this.pacing.set(item, timer);
  }

  /** Out of this process's hands, sent or not: its lease is no longer kept, its endpoint has room again. */
  private letGo(item: Queued): void {
    this.leases.drop(item);
    this.lanes.letGo(this.lanes.laneOf(item.delivery));
  }

  /** A throttled delivery late for its slot: back to the queue, to be claimed for a new slot. */
  private giveBackLate(item: Queued): void {
    this.letGo(item);
    this.store
      .releaseClaims(this.owner, [item.delivery.id], Date.now())
      .then(() => this.wake())
      .catch((err) => this.log.warn({ err }, 'release failed; the lease will bring it back'));
    if (this.busy === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Starts the send, or queues it behind its endpoint's, its origin's or the global limit. */
  private place(item: Queued): void {
    if (missedSlot(item.delivery)) {
      this.giveBackLate(item);
      return;
    }
    const lane = this.lanes.laneOf(item.delivery);
    if (this.lanes.canStart(lane)) this.startSend(lane, item);
    else this.lanes.wait(lane, item);
  }

  private startSend(lane: Lane<Queued>, item: Queued): void {
    const send = this.lanes.started(lane);
    let verdict: CircuitVerdict = 'neutral';
    this.deliver(item.delivery)
      .then((result) => {
        verdict = result.verdict ?? 'neutral';
        if (this.pastDeadline) return undefined;
        this.metrics?.attempt(result.outcome, result.durationMs);
        this.reportAttempt(item.delivery, result);
        return this.results.add(result);
      })
      .catch((err) =>
        this.log.error(
          { err, delivery: item.delivery.id },
          'recording an attempt failed; the lease will bring it back',
        ),
      )
      .finally(() => {
        this.lanes.ended(send, verdict);
        this.letGo(item);
        this.pump(lane);
      });
  }

  /**
   * After a send ends: start waiting sends (this endpoint first, then the others in turn) while
   * the limits allow, hand back claims that waited too long, then top up what was claimed.
   */
  private pump(lane?: Lane<Queued>): void {
    const stale = Date.now() - this.config.leaseMs / 2;
    const release: string[] = [];
    for (let next = this.lanes.next(lane); next !== undefined; next = this.lanes.next(lane)) {
      if (!this.running || next.item.claimedAt < stale || missedSlot(next.item.delivery)) {
        this.letGo(next.item);
        release.push(next.item.delivery.id);
      } else this.startSend(next.lane, next.item);
    }
    this.lanes.prune(Date.now());
    if (release.length > 0) {
      this.store
        .releaseClaims(this.owner, release, Date.now())
        .catch((err) => this.log.warn({ err }, 'release failed'));
    }
    // A claim round walks every endpoint with queued work: it is worth it once there is room for
    // half a batch, not for each delivery an endpoint finishes (with a thousand endpoints, a round
    // per finished send cost more in walking than the sends it claimed).
    const worthIt = this.capacity() >= this.config.claimBatchSize / 2;
    if (worthIt && (this.mayHaveMore || (lane !== undefined && this.lanes.wantMore(lane)))) this.wake();
    if (this.busy === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /** Failed attempts at warn, a delivery out of attempts at error: what an operator pages on. */
  private reportAttempt(d: ClaimedDelivery, r: AttemptResult): void {
    if (r.outcome === 'delivered') return;
    const fields = {
      delivery: d.id,
      event: d.eventId,
      ...(d.subscriptionId === null ? { callback: d.accountId } : { subscription: d.subscriptionId }),
      target_host: hostOf(d.target.url),
      ...(r.statusCode === null ? {} : { status: r.statusCode }),
      ...(r.error === null ? {} : { error: r.error }),
      attempt: r.attempt,
    };
    const answer = r.statusCode === null ? (r.error ?? 'no answer') : `HTTP ${r.statusCode}`;
    if (r.outcome === 'retry') {
      const next = toIsoMillis(r.nextAttemptAt ?? Date.now());
      this.log.warn({ ...fields, next_attempt_at: next }, `delivery attempt failed (${answer}); next try at ${next}`);
    } else if (r.outcome === 'gone') {
      this.log.error(fields, 'delivery failed: the receiver answered 410 Gone, so its subscription is disabled');
    } else {
      this.log.error(
        fields,
        d.oneOff
          ? `manual delivery attempt failed (${answer})`
          : `delivery failed: all its attempts failed, the last with ${answer}; replay it once the receiver is fixed`,
      );
    }
  }

  private async deliver(d: ClaimedDelivery): Promise<AttemptResult> {
    const startedAt = Date.now();
    const prepared = prepareRequest(this.signer, d, startedAt, this.config.retrySchedule, d.target.url);
    // Nothing was sent: the endpoint is neither shown alive nor at fault.
    if ('failed' in prepared) return { ...prepared.failed, verdict: 'neutral' };
    const request = prepared.request;
    let answer: AttemptFacts['answer'];
    try {
      answer = await this.sender.post(request.url, request.headers, request.body);
      // An answer that echoes the request must not put its secrets into the delivery log.
      if (request.secrets.length > 0) {
        answer = {
          ...answer,
          excerpt: redactSecrets(answer.excerpt, request.secrets),
          headers: redactHeaders(answer.headers, request.secrets),
        };
      }
    } catch (err) {
      answer = { error: describeSendError(err) };
      if (err instanceof SsrfRefusedError) {
        this.log.warn({ delivery: d.id, host: err.host, address: err.verdict.address }, err.message);
      }
    }
    const result = attemptResult(d, this.config.retrySchedule, {
      startedAt,
      finishedAt: Date.now(),
      requestUrl: d.target.url,
      loggedHeaders: loggedRequestHeaders(request.headers),
      answer,
    });
    return { ...result, verdict: circuitVerdict(answer) };
  }

  /**
   * Stops claiming, gives back claims not yet started, waits for in-flight sends up to the grace
   * period, writes their results, and gives back whatever is still unfinished.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.unsubscribe?.();
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.slowTimer) clearInterval(this.slowTimer);
    if (this.dueTimer) clearTimeout(this.dueTimer);
    while (this.claiming) await new Promise((resolve) => setTimeout(resolve, 5));
    const waiting: string[] = [];
    for (const [item, timer] of this.pacing) {
      clearTimeout(timer);
      this.letGo(item);
      waiting.push(item.delivery.id);
    }
    this.pacing.clear();
    for (const q of this.lanes.drainWaiting()) {
      this.letGo(q);
      waiting.push(q.delivery.id);
    }
    await this.store.releaseClaims(this.owner, waiting, Date.now());
    if (this.lanes.inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
        new Promise<void>((resolve) => setTimeout(resolve, this.config.shutdownGraceMs).unref()),
      ]);
    }
    // From here on a send that ends is aborted or late: logging it would show an attempt that the
    // release below takes back (and race the store closing), so its delivery just goes back.
    this.pastDeadline = true;
    this.leases.stop();
    await this.results.drain();
    const released = await this.store.releaseClaims(this.owner, 'all', Date.now());
    if (released > 0) this.log.warn({ released }, 'sends still running at the deadline were handed back to the queue');
    await this.sender.close();
  }

  /** Resolves when nothing is in flight or queued (tests). */
  idle(): Promise<void> {
    if (this.busy === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }
}

/**
 * A throttled delivery that could not start within LATE_MS of its slot goes back to the queue:
 * sent later, it could land in the same second as the deliveries after it.
 */
function missedSlot(d: ClaimedDelivery): boolean {
  return d.notBefore !== undefined && Date.now() > d.notBefore + LATE_MS;
}

function held(delivery: ClaimedDelivery, claimedAt: number, leaseMs: number): Queued {
  return { slot: -1, delivery, claimedAt, leaseUntil: claimedAt + leaseMs };
}

/** The host of a target URL, for logs: never the path or query, which may carry a receiver's token. */
function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return '(unparsable URL)';
  }
}
