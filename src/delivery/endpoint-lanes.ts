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
// - A send unanswered far longer than sends here usually take (8 times the typical answer time,
//   from 250 ms to 5 s: `slowAfter()`) is slow: it leaves the global limit for a pool of its own
//   (twice as large), so endpoints that stopped answering cannot keep every slot, whatever order they
//   came in. Its endpoint is then troubled (below).
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
/** Bounds of how long a send may go unanswered before it is slow (see above). */
export const SLOW_AFTER_MS = { min: 250, max: 5_000, typicalTimes: 8 } as const;
/** Slow sends may hold this many times the global limit, beside it. */
export const SLOW_POOL_TIMES = 2;
/** How often the dispatcher looks for slow sends. */
export const SLOW_SWEEP_MS = 100;
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
  /** Its sends in flight that have gone unanswered too long (`slowAfter()`). */
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
  /** Endpoints holding anything, healthy (no slow send, no fault in a row) or troubled. */
  private healthyLanes = 0;
  private troubledLanes = 0;
  /**
   * Of what troubled endpoints hold: what waits for a slot, and what is in flight and not yet slow.
   * The first is left out of the buffer's occupancy (their own small caps bound it); the second
   * still occupies the buffer the healthy endpoints share.
   */
  private troubledWaiting = 0;
  private troubledCounted = 0;
  private prunedAt = 0;
  private readonly sends = new SlotList<Send<T>>();
  /** Sends in flight, slow ones included. */
  inFlight = 0;
  /** Slow sends moved out of the global limit. */
  private slowInFlight = 0;
  /** How long answered sends take here, a moving average (ms); the first guess is 100 ms. */
  private typicalMs = 100;
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

  /** Adds (1) or removes (-1) a lane's part in the counts the shares are made of. */
  private count(lane: Lane<T>, sign: 1 | -1): void {
    if (lane.held === 0) return;
    if (troubled(lane)) {
      this.troubledLanes += sign;
      this.troubledWaiting += sign * lane.waiting.length;
      this.troubledCounted += sign * (lane.active - lane.slow);
    } else this.healthyLanes += sign;
  }

  /** Applies a change to a lane's held, faults or slow, keeping the counts right. */
  private change(lane: Lane<T>, apply: () => void): void {
    this.count(lane, -1);
    apply();
    this.count(lane, 1);
  }

  /** A delivery this process now holds (claimed, or handed off at publish). */
  hold(lane: Lane<T>): void {
    this.change(lane, () => lane.held++);
    this.held++;
  }

  /** A delivery this process no longer holds (its result is written, or it went back to the queue). */
  letGo(lane: Lane<T>): void {
    this.change(lane, () => lane.held--);
    this.held--;
  }

  /** How many more of this endpoint's deliveries the process takes now (claims, hand-off). */
  room(key: string): number {
    return Math.max(0, this.holdCap(key) - (this.lanes.get(key)?.held ?? 0));
  }

  /**
   * How many of this endpoint's deliveries the process holds at most. A healthy endpoint: its fair
   * part of the claimed buffer (the limit plus a claim batch) less what troubled endpoints still
   * occupy of it (their sends in flight and not yet slow), shared with the other healthy ones; and no more than it may send plus a claim batch, enough to
   * keep its sends going between claim rounds. A troubled one: its fair part of the whole buffer,
   * and no more than it may send and a few more, so what it cannot send stays queued in the
   * database instead of in the buffer.
   */
  private holdCap(key: string): number {
    const lane = this.lanes.get(key);
    const joining = lane === undefined || lane.held === 0;
    const buffer = this.limits.maxConcurrency + this.limits.claimBatchSize;
    if (lane !== undefined && !joining && troubled(lane)) {
      const fairHold = Math.floor(buffer / Math.max(1, this.healthyLanes + this.troubledLanes));
      const sendable = this.sendLimit(lane);
      return Math.max(1, Math.min(fairHold, sendable + Math.min(sendable, SUSPECT_SENDS)));
    }
    const healthy = this.healthyLanes + (joining ? 1 : 0);
    const fairHold = Math.max(MIN_HOLD, Math.floor((buffer - this.troubledCounted) / Math.max(1, healthy)));
    const sendable = lane === undefined ? this.limits.perOriginConcurrency : this.sendLimit(lane, healthy);
    return Math.min(fairHold, sendable + this.limits.claimBatchSize);
  }

  /**
   * What the claimed buffer holds against the dispatcher's capacity: sends counted against the
   * global limit (slow ones left it) and deliveries waiting for a slot, but for those of troubled
   * endpoints, which their own small caps bound: they must not crowd the healthy ones out.
   */
  get occupied(): number {
    return this.counted + this.queued - this.troubledWaiting;
  }

  /**
   * How many of this endpoint's sends may be in flight now. A healthy endpoint: as many as its
   * origin allows while a quarter of the slots is free, else its share of the slots among the
   * healthy endpoints. A troubled one: its share among every endpoint holding anything, and no
   * more than SUSPECT_SENDS after a fault.
   */
  private sendLimit(lane: Lane<T>, healthy = this.healthyLanes): number {
    const { maxConcurrency, perOriginConcurrency } = this.limits;
    const shareOf = (lanes: number) =>
      Math.min(perOriginConcurrency, Math.max(1, Math.floor(maxConcurrency / Math.max(1, lanes))));
    if (troubled(lane)) {
      const share = shareOf(this.healthyLanes + this.troubledLanes);
      return lane.faults > 0 ? Math.min(share, SUSPECT_SENDS) : share;
    }
    const reserveFree = maxConcurrency - this.counted > maxConcurrency / 4;
    return reserveFree ? perOriginConcurrency : shareOf(healthy);
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
    this.change(lane, () => lane.active++);
    lane.origin.active++;
    this.inFlight++;
    const send: Send<T> = { slot: -1, lane, startedAt: now, slow: false };
    this.sends.add(send);
    return send;
  }

  ended(send: Send<T>, verdict: CircuitVerdict, now = Date.now()): void {
    const { lane } = send;
    this.sends.delete(send);
    this.change(lane, () => {
      if (send.slow) {
        this.slowInFlight--;
        lane.slow--;
      }
      if (verdict === 'success') lane.faults = 0;
      else if (verdict === 'fault') lane.faults++;
      lane.active--;
    });
    if (verdict === 'success') this.typicalMs += (Math.max(0, now - send.startedAt) - this.typicalMs) / 32;
    lane.origin.active--;
    this.inFlight--;
  }

  /** How long a send may go unanswered before it is slow: 8 times the typical answer, 250 ms to 5 s. */
  slowAfter(): number {
    return Math.min(SLOW_AFTER_MS.max, Math.max(SLOW_AFTER_MS.min, SLOW_AFTER_MS.typicalTimes * this.typicalMs));
  }

  /**
   * Moves sends unanswered for `slowAfter()` out of the global limit, while the slow pool (twice
   * the limit) has room. Returns whether any moved: slots were freed for waiting sends.
   */
  sweep(now: number): boolean {
    let moved = false;
    const after = this.slowAfter();
    this.sends.forEach((send) => {
      if (send.slow || now - send.startedAt < after) return;
      if (this.slowInFlight >= SLOW_POOL_TIMES * this.limits.maxConcurrency) return;
      send.slow = true;
      this.change(send.lane, () => send.lane.slow++);
      this.slowInFlight++;
      moved = true;
    });
    return moved;
  }

  /** Queues a delivery behind its endpoint's, its origin's or the global limit. */
  wait(lane: Lane<T>, item: T): void {
    this.change(lane, () => lane.waiting.push(item));
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
    let item: T | undefined;
    this.change(lane, () => {
      item = lane.waiting.shift();
    });
    this.queued--;
    return { lane, item: item as T };
  }

  /** Every waiting delivery, taken out of its lane (shutdown, stale claims). */
  drainWaiting(keep: (item: T) => boolean = () => false): T[] {
    const out: T[] = [];
    for (const lane of this.ring) {
      for (let i = lane.waiting.length - 1; i >= 0; i--) {
        const item = lane.waiting[i] as T;
        if (keep(item)) continue;
        this.change(lane, () => lane.waiting.splice(i, 1));
        this.queued--;
        out.push(item);
      }
    }
    return out;
  }

  /**
   * Whether to claim again for this endpoint: the queue may hold more of it (its last claim gave all
   * it was asked) and it has room for half of what it may hold again.
   */
  wantMore(lane: Lane<T>): boolean {
    if (!lane.more) return false;
    if (this.room(lane.key) < Math.max(1, this.holdCap(lane.key) / 2)) return false;
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

/** Slow sends in flight, or faults in a row: its share shrinks, and what it holds is left out of the healthy ones'. */
function troubled(lane: { faults: number; slow: number }): boolean {
  return lane.faults > 0 || lane.slow > 0;
}

function originOf(url: string): string {
  const schemeEnd = url.indexOf('//');
  const pathStart = url.indexOf('/', schemeEnd + 2);
  return pathStart === -1 ? url : url.slice(0, pathStart);
}
