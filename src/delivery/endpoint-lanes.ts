// Who may send next, in one process. Each endpoint (a subscription, or an account's callback) has a
// lane: its sends in flight, its claimed deliveries waiting for a slot, and everything of it this
// process holds. Sends are bounded globally (maxConcurrency), per target origin (perOriginConcurrency,
// which is also the connection pool's size) and per endpoint, so that an endpoint whose sends are
// slow or failing can hold only its own share of the slots and of the claimed buffer:
//
// - In flight: an endpoint may always fill its fair share of the slots (the global limit divided
//   by the endpoints holding anything); beyond it only while more than a quarter of the slots are
//   free. A slow endpoint so stops at its share once slots grow scarce, and that free quarter is
//   there for every endpoint still below its share.
// - A send unanswered after SLOW_AFTER_MS is slow: it leaves the global limit for a pool of its own
//   (as large again), so endpoints that stopped answering cannot keep every slot, whatever order
//   they came in. Its endpoint may then send no more than its fair share.
// - An endpoint whose last sends here failed (timeouts, refused connections, 5xx, 429) is suspect:
//   at most SUSPECT_SENDS in flight until one succeeds. Its circuit breaker opens soon after.
// - Held: an endpoint holds at most its fair share of the claimed buffer (the global limit plus a
//   claim batch, divided by the endpoints holding anything), and not much beyond what it may send.
//   Claims and the hand-off at publish ask `room()` before taking any of an endpoint's deliveries,
//   so a backlog that cannot be sent yet stays in the database, where it costs nothing.
//
// Waiting deliveries are started round-robin across endpoints.
import type { CircuitVerdict } from '../domain/circuit.js';
import type { ClaimedDelivery } from '../store/store.js';
import { SlotList } from './slot-list.js';

/** In flight at once for an endpoint whose last sends failed. */
export const SUSPECT_SENDS = 4;
/** A send unanswered this long no longer counts against the global limit (see above). */
export const SLOW_AFTER_MS = 2_000;
/** An endpoint may hold this many, however many others hold some (less when it is slow or failing). */
const MIN_HOLD = 8;

export interface LaneLimits {
  maxConcurrency: number;
  perOriginConcurrency: number;
  claimBatchSize: number;
}

interface OriginLane {
  active: number;
}

export interface Lane<T> {
  readonly key: string;
  readonly origin: OriginLane;
  active: number;
  readonly waiting: T[];
  /** Everything of this endpoint the process holds: in flight, waiting, paced. */
  held: number;
  /** Faults in a row at this process; 0 after any success. */
  faults: number;
  /** The last claim took all it asked of this endpoint: the queue may hold more of it. */
  more: boolean;
  /** In the round-robin ring of lanes with waiting deliveries. */
  ringed: boolean;
  /** Its sends in flight that have gone unanswered past SLOW_AFTER_MS. */
  slow: number;
}

/** One send in flight, from started() to ended(). */
export interface Send<T> {
  slot: number;
  readonly lane: Lane<T>;
  readonly startedAt: number;
  slow: boolean;
}

export class EndpointLanes<T extends { delivery: ClaimedDelivery }> {
  private readonly lanes = new Map<string, Lane<T>>();
  private readonly origins = new Map<string, OriginLane>();
  /** Lanes with waiting deliveries, served in turn. */
  private readonly ring: Lane<T>[] = [];
  private turn = 0;
  /** Endpoints holding anything. */
  private busyLanes = 0;
  private prunedAt = 0;
  private readonly sends = new SlotList<Send<T>>();
  /** Sends in flight, slow ones included. */
  inFlight = 0;
  /** Slow sends moved out of the global limit. */
  private slowInFlight = 0;
  queued = 0;
  held = 0;

  constructor(private readonly limits: LaneLimits) {}

  laneOf(delivery: ClaimedDelivery): Lane<T> {
    const key = delivery.subscriptionId ?? delivery.accountId;
    let lane = this.lanes.get(key);
    if (!lane) {
      const origin = originOf(delivery.target.url);
      let o = this.origins.get(origin);
      if (!o) {
        o = { active: 0 };
        this.origins.set(origin, o);
      }
      lane = { key, origin: o, active: 0, waiting: [], held: 0, faults: 0, more: false, ringed: false, slow: 0 };
      this.lanes.set(key, lane);
    }
    return lane;
  }

  /** A delivery this process now holds (claimed, or handed off at publish). */
  hold(lane: Lane<T>): void {
    if (lane.held === 0) this.busyLanes++;
    lane.held++;
    this.held++;
  }

  /** A delivery this process no longer holds (its result is written, or it went back to the queue). */
  letGo(lane: Lane<T>): void {
    lane.held--;
    this.held--;
    if (lane.held === 0) this.busyLanes--;
  }

  /** How many more of this endpoint's deliveries the process takes now (claims, hand-off). */
  room(key: string): number {
    const lane = this.lanes.get(key);
    const busy = this.busyLanes + (lane === undefined || lane.held === 0 ? 1 : 0);
    const fairHold = Math.max(
      MIN_HOLD,
      Math.floor((this.limits.maxConcurrency + this.limits.claimBatchSize) / Math.max(1, busy)),
    );
    if (lane === undefined) return Math.min(fairHold, this.limits.perOriginConcurrency + this.limits.claimBatchSize);
    const sendable = this.sendLimit(lane, busy);
    // A healthy endpoint holds enough to keep its sends going between claim rounds; a slow or
    // failing one no more than it may send and as many again, so what it cannot send stays queued
    // in the database instead of in the buffer every endpoint shares.
    const cap = lane.faults > 0 || lane.slow > 0 ? 2 * sendable : sendable + this.limits.claimBatchSize;
    return Math.max(0, Math.min(fairHold, cap) - lane.held);
  }

  /**
   * What the claimed buffer holds against the dispatcher's capacity: sends counted against the
   * global limit (slow ones left it) and deliveries waiting for a slot.
   */
  get occupied(): number {
    return this.counted + this.queued;
  }

  /** How many of this endpoint's sends may be in flight now. */
  private sendLimit(lane: Lane<T>, busy = this.busyLanes): number {
    const share = Math.min(
      Math.max(1, Math.floor(this.limits.maxConcurrency / Math.max(1, busy))),
      this.limits.perOriginConcurrency,
    );
    const reserveFree = this.limits.maxConcurrency - this.counted > this.limits.maxConcurrency / 4;
    let limit = reserveFree && lane.slow === 0 ? this.limits.perOriginConcurrency : share;
    if (lane.faults > 0) limit = Math.min(limit, SUSPECT_SENDS);
    return limit;
  }

  /** Sends that count against the global limit: those in flight, less the slow ones moved out of it. */
  private get counted(): number {
    return this.inFlight - this.slowInFlight;
  }

  /** Whether one more of this endpoint's sends may start now. */
  canStart(lane: Lane<T>): boolean {
    return (
      this.counted < this.limits.maxConcurrency &&
      lane.origin.active < this.limits.perOriginConcurrency &&
      lane.active < this.sendLimit(lane)
    );
  }

  started(lane: Lane<T>, now = Date.now()): Send<T> {
    lane.active++;
    lane.origin.active++;
    this.inFlight++;
    const send: Send<T> = { slot: -1, lane, startedAt: now, slow: false };
    this.sends.add(send);
    return send;
  }

  ended(send: Send<T>, verdict: CircuitVerdict): void {
    const { lane } = send;
    this.sends.delete(send);
    if (send.slow) {
      this.slowInFlight--;
      lane.slow--;
    }
    lane.active--;
    lane.origin.active--;
    this.inFlight--;
    if (verdict === 'success') lane.faults = 0;
    else if (verdict === 'fault') lane.faults++;
  }

  /**
   * Moves sends unanswered for SLOW_AFTER_MS out of the global limit, while the slow pool (as
   * large as the limit) has room. Returns whether any moved: slots were freed for waiting sends.
   */
  sweep(now: number): boolean {
    let moved = false;
    this.sends.forEach((send) => {
      if (send.slow || now - send.startedAt < SLOW_AFTER_MS) return;
      if (this.slowInFlight >= this.limits.maxConcurrency) return;
      send.slow = true;
      send.lane.slow++;
      this.slowInFlight++;
      moved = true;
    });
    return moved;
  }

  /** Queues a delivery behind its endpoint's, its origin's or the global limit. */
  wait(lane: Lane<T>, item: T): void {
    lane.waiting.push(item);
    this.queued++;
    if (!lane.ringed) {
      lane.ringed = true;
      this.ring.push(lane);
    }
  }

  /**
   * The next waiting delivery that may start, taking endpoints in turn; undefined when none may.
   * `lane` first: a send that just ended frees a slot its own endpoint is likeliest to use.
   */
  next(first?: Lane<T>): { lane: Lane<T>; item: T } | undefined {
    if (this.counted >= this.limits.maxConcurrency) return undefined;
    if (first && first.waiting.length > 0 && this.canStart(first)) return this.take(first);
    for (let looked = 0; looked < this.ring.length; looked++) {
      if (this.turn >= this.ring.length) this.turn = 0;
      const lane = this.ring[this.turn] as Lane<T>;
      if (lane.waiting.length === 0) {
        // Out of the ring (swap with the last: no shifting).
        lane.ringed = false;
        this.ring[this.turn] = this.ring[this.ring.length - 1] as Lane<T>;
        this.ring.pop();
        looked--;
        continue;
      }
      this.turn++;
      if (this.canStart(lane)) return this.take(lane);
    }
    return undefined;
  }

  private take(lane: Lane<T>): { lane: Lane<T>; item: T } {
    const item = lane.waiting.shift() as T;
    this.queued--;
    return { lane, item };
  }

  /** Every waiting delivery, taken out of its lane (shutdown, stale claims). */
  drainWaiting(keep: (item: T) => boolean = () => false): T[] {
    const out: T[] = [];
    for (const lane of this.ring) {
      for (let i = lane.waiting.length - 1; i >= 0; i--) {
        const item = lane.waiting[i] as T;
        if (keep(item)) continue;
        lane.waiting.splice(i, 1);
        this.queued--;
        out.push(item);
      }
    }
    return out;
  }

  /** Endpoints whose last claim was full and that have room for half their share again. */
  wantMore(lane: Lane<T>): boolean {
    if (!lane.more) return false;
    if (this.room(lane.key) < Math.max(1, this.sendLimit(lane) / 2)) return false;
    lane.more = false;
    return true;
  }

  markMore(key: string): void {
    const lane = this.lanes.get(key);
    if (lane) lane.more = true;
  }

  /**
   * Forgets endpoints and origins with nothing under way, at most once a second: deleting a lane
   * whenever it empties would add and remove Map entries at the delivery rate, and V8 Maps under
   * such churn keep their entries alive through young-generation GCs (slot-list.ts).
   */
  prune(now: number): void {
    if (now - this.prunedAt < 1000) return;
    this.prunedAt = now;
    const usedOrigins = new Set<OriginLane>();
    for (const [key, lane] of this.lanes) {
      // A lane's faults go with it: the circuit in the database remembers what matters.
      if (lane.held === 0 && lane.active === 0 && lane.waiting.length === 0) {
        this.lanes.delete(key);
      } else usedOrigins.add(lane.origin);
    }
    for (const [origin, o] of this.origins) if (!usedOrigins.has(o)) this.origins.delete(origin);
  }
}

function originOf(url: string): string {
  const schemeEnd = url.indexOf('//');
  const pathStart = url.indexOf('/', schemeEnd + 2);
  return pathStart === -1 ? url : url.slice(0, pathStart);
}
