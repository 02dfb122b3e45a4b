// The pure parts of endpoint isolation: what an attempt says about its endpoint, how a circuit
// moves, how a number of claims or slots is divided fairly, and who may send next in one process.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EndpointLanes, SUSPECT_SENDS } from '../src/delivery/endpoint-lanes.js';
import {
  type Circuit,
  type CircuitSettings,
  CLOSED,
  circuitVerdict,
  nextCircuit,
  openWindow,
  type Verdict,
} from '../src/domain/circuit.js';
import { fairShares, fairSharesByGroup } from '../src/domain/fair-share.js';
import type { ClaimedDelivery } from '../src/store/store.js';

const SETTINGS: CircuitSettings = { failureThreshold: 3, openMs: 30_000, maxOpenMs: 300_000, probeTimeoutMs: 20_000 };
const fault = (at: number, reason = 'timeout'): Verdict => ({ verdict: 'fault', at, reason });
const success = (at: number): Verdict => ({ verdict: 'success', at, reason: null });

describe('circuit verdicts', () => {
  it('counts no answer, a 5xx and 429 against the endpoint, and any other answer for it', () => {
    expect(circuitVerdict({ error: 'timeout' })).toBe('fault');
    expect(circuitVerdict({ error: 'connection refused' })).toBe('fault');
    expect(circuitVerdict({ statusCode: 500 })).toBe('fault');
    expect(circuitVerdict({ statusCode: 503 })).toBe('fault');
    expect(circuitVerdict({ statusCode: 429 })).toBe('fault');
    expect(circuitVerdict({ statusCode: 200 })).toBe('success');
    expect(circuitVerdict({ statusCode: 400 })).toBe('success');
    expect(circuitVerdict({ statusCode: 410 })).toBe('success');
    expect(circuitVerdict({ statusCode: 302 })).toBe('success');
    expect(circuitVerdict(undefined)).toBe('neutral');
  });
});

describe('circuit transitions', () => {
  it('opens at the threshold of faults in a row, with the last fault as its reason', () => {
    const once = nextCircuit(CLOSED, [fault(1), fault(2)], 10, SETTINGS);
    expect(once).toEqual({ circuit: { ...CLOSED, failures: 2, reason: 'timeout' }, transition: 'none' });
    const opened = nextCircuit(once.circuit, [fault(11, 'HTTP 503')], 20, SETTINGS);
    expect(opened.transition).toBe('opened');
    expect(opened.circuit).toEqual({
      state: 'open',
      failures: 3,
      openings: 1,
      reason: 'HTTP 503',
      openedAt: 20,
      retryAt: 20 + 30_000,
    });
  });

  it('takes a batch in the order its attempts ended: faults after its last success count', () => {
    const moved = nextCircuit(CLOSED, [fault(5), success(3), fault(1), fault(4)], 10, SETTINGS);
    expect(moved.circuit.failures).toBe(2);
    expect(moved.circuit.state).toBe('closed');
  });

  it('ignores attempts that sent nothing', () => {
    const current: Circuit = { ...CLOSED, failures: 2 };
    expect(nextCircuit(current, [{ verdict: 'neutral', at: 1, reason: null }], 10, SETTINGS)).toEqual({
      circuit: current,
      transition: 'none',
    });
  });

  it('opens a half-open circuit again for twice as long when its probe fails, up to the longest window', () => {
    let circuit: Circuit = {
      state: 'half_open',
      failures: 3,
      openings: 1,
      reason: 'timeout',
      openedAt: 0,
      retryAt: 50,
    };
    const windows: number[] = [];
    for (let i = 0; i < 6; i++) {
      const moved = nextCircuit(circuit, [fault(100)], 100, SETTINGS);
      expect(moved.transition).toBe('reopened');
      windows.push((moved.circuit.retryAt as number) - 100);
      circuit = { ...moved.circuit, state: 'half_open' };
    }
    expect(windows).toEqual([60_000, 120_000, 240_000, 300_000, 300_000, 300_000]);
    expect(circuit.openedAt).toBe(0);
  });

  it('closes an open or half-open circuit on any success, and forgets its openings', () => {
    for (const state of ['open', 'half_open'] as const) {
      const current: Circuit = { state, failures: 7, openings: 3, reason: 'timeout', openedAt: 1, retryAt: 2 };
      expect(nextCircuit(current, [success(5)], 10, SETTINGS)).toEqual({ circuit: CLOSED, transition: 'closed' });
    }
  });

  it('only counts the faults of sends still in flight when an open circuit opened', () => {
    const current: Circuit = { state: 'open', failures: 3, openings: 1, reason: 'timeout', openedAt: 1, retryAt: 99 };
    expect(nextCircuit(current, [fault(5), fault(6)], 10, SETTINGS)).toEqual({
      circuit: { ...current, failures: 5 },
      transition: 'none',
    });
  });

  it('never opens with a threshold of 0', () => {
    const off = { ...SETTINGS, failureThreshold: 0 };
    const moved = nextCircuit(
      CLOSED,
      Array.from({ length: 50 }, (_, i) => fault(i)),
      100,
      off,
    );
    expect(moved.circuit.state).toBe('closed');
    expect(moved.transition).toBe('none');
  });

  it('has windows that double from the first and stop at the longest', () => {
    expect([1, 2, 3, 4, 5, 60].map((n) => openWindow(n, SETTINGS))).toEqual([
      30_000, 60_000, 120_000, 240_000, 300_000, 300_000,
    ]);
  });
});

describe('fair shares', () => {
  it('gives modest claimants what they want and divides the rest evenly', () => {
    expect(fairShares([5, 100, 100], 50)).toEqual([5, 23, 22]);
    expect(fairShares([0, 10], 50)).toEqual([0, 10]);
    expect(fairShares([3, 3, 3], 2)).toEqual([1, 1, 0]);
    expect(fairShares([], 10)).toEqual([]);
    expect(fairSharesByGroup([[20, 20, 20, 20], [40]], 40)).toEqual([[5, 5, 5, 5], [20]]);
  });

  it('never gives more than is wanted or than there is, wastes nothing, and is max-min fair', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(200), { maxLength: 30 }), fc.nat(1000), (wants, total) => {
        const parts = fairShares(wants, total);
        const sum = parts.reduce((a, b) => a + b, 0);
        const wanted = wants.reduce((a, b) => a + b, 0);
        expect(sum).toBe(Math.min(total, wanted));
        parts.forEach((p, i) => {
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(wants[i] as number);
        });
        // Whoever got less than it wanted got at least as much as anyone else, but for one unit.
        const most = Math.max(0, ...parts);
        parts.forEach((p, i) => {
          if (p < (wants[i] as number)) expect(p).toBeGreaterThanOrEqual(most - 1);
        });
      }),
    );
  });
});

describe('endpoint lanes', () => {
  const limits = { maxConcurrency: 64, perOriginConcurrency: 16, claimBatchSize: 20 };
  let n = 0;
  const item = (endpoint: string, origin = endpoint) => ({
    delivery: {
      id: `dlv_${n++}`,
      subscriptionId: endpoint,
      accountId: 'acc_1',
      target: { url: `https://${origin}.example.com/hooks` },
    } as unknown as ClaimedDelivery,
  });
  type Item = ReturnType<typeof item>;

  /** Holds `count` deliveries of `endpoint` and starts every one the lanes allow; returns how many started. */
  function fill(lanes: EndpointLanes<Item>, endpoint: string, count: number, now = 0): number {
    let started = 0;
    for (let i = 0; i < count; i++) {
      const it = item(endpoint);
      const lane = lanes.laneOf(it.delivery);
      lanes.hold(lane);
      if (lanes.canStart(lane)) {
        lanes.started(lane, now);
        started++;
      } else lanes.wait(lane, it);
    }
    return started;
  }

  it('keeps a fair share of slots for a newcomer when slow endpoints all came first', () => {
    const lanes = new EndpointLanes<Item>(limits);
    // Twenty endpoints that never answer take what they can, one after the other.
    for (let e = 0; e < 20; e++) fill(lanes, `dead${e}`, 40, 0);
    expect(lanes.inFlight).toBe(limits.maxConcurrency);
    const share = Math.floor(limits.maxConcurrency / 21);
    expect(fill(lanes, 'early', 1, 1_000)).toBe(0);
    // Unanswered past slowAfter() (8 times the typical answer), their sends leave the global limit: the newcomer gets its share,
    // and the dead endpoints no more than theirs.
    const later = lanes.slowAfter();
    expect(later).toBe(800);
    expect(lanes.sweep(later - 1)).toBe(false);
    expect(lanes.sweep(later)).toBe(true);
    expect(fill(lanes, 'healthy', share, later)).toBe(share);
    expect(fill(lanes, 'dead0', 5, later)).toBe(0);
  });

  it('keeps a fair share for a newcomer while slow endpoints arrive with it', () => {
    const lanes = new EndpointLanes<Item>(limits);
    const dead = Array.from({ length: 20 }, (_, e) => `dead${e}`);
    for (let round = 0; round < 40; round++) for (const e of dead) fill(lanes, e, 1, 0);
    const share = Math.floor(limits.maxConcurrency / 21);
    expect(fill(lanes, 'healthy', share, 0)).toBe(share);
  });

  it('gives a healthy endpoint the room and slots that endpoints gone slow or failing leave unused', () => {
    const lanes = new EndpointLanes<Item>(limits);
    // Twenty endpoints that never answer, each taking what its room allows, as a claim would.
    const dead = Array.from({ length: 20 }, (_, e) => `dead${e}`);
    let now = 0;
    for (let round = 0; round < 10; round++) {
      for (const e of dead) fill(lanes, e, lanes.room(e), now);
      // Slots freed by sends gone slow go to waiting deliveries, in turn, as the dispatcher's pump does.
      now += lanes.slowAfter();
      lanes.sweep(now);
      for (let next = lanes.next(); next !== undefined; next = lanes.next()) lanes.started(next.lane, now);
    }
    now += lanes.slowAfter();
    lanes.sweep(now);
    // They are troubled now: their slow sends and their waiting deliveries no longer count in the
    // buffer the healthy endpoint shares, so it may hold and send as if alone.
    expect(lanes.room('healthy')).toBe(limits.perOriginConcurrency + limits.claimBatchSize);
    expect(fill(lanes, 'healthy', 40, now)).toBe(limits.perOriginConcurrency);
  });

  it('calls a send slow after 8 times the typical answer, from 250 ms to 5 s', () => {
    const lanes = new EndpointLanes<Item>(limits);
    const lane = lanes.laneOf(item('fast').delivery);
    lanes.hold(lane);
    for (let i = 0; i < 200; i++) lanes.ended(lanes.started(lane, 0), 'success', 10);
    expect(lanes.slowAfter()).toBe(250);
    for (let i = 0; i < 400; i++) lanes.ended(lanes.started(lane, 0), 'success', 3_000);
    expect(lanes.slowAfter()).toBe(5_000);
    // Faults say nothing of how long answers take.
    for (let i = 0; i < 50; i++) lanes.ended(lanes.started(lane, 0), 'fault', 1);
    expect(lanes.slowAfter()).toBe(5_000);
  });

  it('lets one endpoint alone use its origin’s full limit', () => {
    const lanes = new EndpointLanes<Item>(limits);
    expect(fill(lanes, 'only', 40)).toBe(limits.perOriginConcurrency);
  });

  it('holds a suspect endpoint to a few sends until one succeeds', () => {
    const lanes = new EndpointLanes<Item>(limits);
    const lane = lanes.laneOf(item('flaky').delivery);
    lanes.hold(lane);
    lanes.ended(lanes.started(lane), 'fault');
    lanes.letGo(lane);
    expect(fill(lanes, 'flaky', 20)).toBe(SUSPECT_SENDS);
    lanes.ended(lanes.started(lane), 'success');
    let more = 0;
    while (lanes.canStart(lane)) {
      lanes.started(lane);
      more++;
    }
    expect(more).toBe(limits.perOriginConcurrency - SUSPECT_SENDS);
  });

  it('gives each endpoint room for a fair part of the claimed buffer only', () => {
    const lanes = new EndpointLanes<Item>(limits);
    expect(lanes.room('fresh')).toBe(limits.perOriginConcurrency + limits.claimBatchSize);
    for (let e = 0; e < 10; e++) fill(lanes, `busy${e}`, 8);
    // 84 slots and buffer over 11 endpoints: 7 each; the busy ones hold 8 already.
    expect(lanes.room('busy0')).toBe(0);
    expect(lanes.room('fresh')).toBe(8);
  });

  it('starts waiting deliveries endpoint by endpoint in turn', () => {
    const lanes = new EndpointLanes<Item>({ maxConcurrency: 4, perOriginConcurrency: 4, claimBatchSize: 4 });
    for (const e of ['a', 'b']) {
      for (let i = 0; i < 4; i++) {
        const it = item(e, 'shared');
        const lane = lanes.laneOf(it.delivery);
        lanes.hold(lane);
        lanes.wait(lane, it);
      }
    }
    const order: string[] = [];
    for (let next = lanes.next(); next !== undefined; next = lanes.next()) {
      lanes.started(next.lane);
      order.push(next.lane.key);
    }
    expect(order).toEqual(['a', 'b', 'a', 'b']);
  });
});
