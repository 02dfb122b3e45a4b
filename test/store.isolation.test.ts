// Isolation between endpoints, in the store, on every dialect: claims divided fairly among
// accounts and endpoints (a backlog never stands in front of another endpoint's due deliveries),
// and each endpoint's circuit breaker (opening, postponing without using attempts, one probe,
// closing), shared by every store on the database. The clock is driven through `now`.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CircuitSettings } from '../src/domain/circuit.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type {
  Account,
  AttemptResult,
  ClaimedDelivery,
  ClaimRound,
  Delivery,
  EventRecord,
  PublishRequest,
  QueueSettings,
  Store,
  Subscription,
} from '../src/store/store.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import { callbackRow, HOUR, ids, LEASE_MS, result, SECOND, subscriptionRow, T0 } from './helpers/store-fixtures.js';

const CIRCUIT: CircuitSettings = {
  failureThreshold: 3,
  openMs: 30 * SECOND,
  maxOpenMs: 5 * 60 * SECOND,
  probeTimeoutMs: 20 * SECOND,
};
const WITH_BREAKER: QueueSettings = { disableAfterFailingMs: 72 * HOUR, circuit: CIRCUIT };

/** An attempt that got no answer, or a 5xx: a fault against its endpoint. */
const fault = (d: ClaimedDelivery, now: number): AttemptResult =>
  result(d, 'retry', now, { statusCode: 503, verdict: 'fault', nextAttemptAt: now + 5 * SECOND });
const success = (d: ClaimedDelivery, now: number): AttemptResult => result(d, 'delivered', now, { verdict: 'success' });

describe.each(DIALECTS)('endpoint isolation on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let database: TestDatabase;
    let store: Store;
    let acme: Account;
    let other: Account;

    beforeEach(async () => {
      database = await dialect.create();
      store = await openStore(openDialect(parseDatabaseUrl(database.url)));
      acme = await store.ensureAccount('acme', T0);
      other = await store.ensureAccount('globex', T0);
    });
    afterEach(async () => {
      await store.close();
      await database.drop();
    });

    async function addSubscription(accountId: string, overrides: Partial<Subscription> = {}): Promise<Subscription> {
      const row = subscriptionRow(accountId, {
        target_url: `https://${Math.random().toString(36).slice(2)}.example.com/hooks`,
        ...overrides,
      });
      await store.createSubscription(row);
      return row;
    }

    async function publish(
      request: Partial<PublishRequest> & { accountId: string },
      now: number,
    ): Promise<EventRecord> {
      const [published] = await store.publishEvents(
        [{ type: 'document.signed', dataJson: '{"document_id":"doc_1"}', occurredAt: now, ...request }],
        now,
      );
      if (!published?.ok) throw new Error('publish refused');
      return published.event;
    }

    /** `count` events for one subscription only. */
    async function publishTo(sub: Subscription, count: number, now: number): Promise<void> {
      for (let i = 0; i < count; i++) await publish({ accountId: sub.account_id, onlySubscriptionId: sub.id }, now);
    }

    async function deliveriesOf(sub: Subscription): Promise<Delivery[]> {
      return (await store.listDeliveries(sub.account_id, { limit: 500, subscriptionId: sub.id })).items;
    }

    const countBy = (claimed: ClaimedDelivery[]) => {
      const counts = new Map<string, number>();
      for (const d of claimed) {
        const key = d.subscriptionId ?? d.accountId;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
      return counts;
    };

    const claim = (limit: number, now: number, room?: (key: string) => number, owner = 'worker-a', s = store) =>
      s.claimRound(owner, limit, now, LEASE_MS, { probeTimeoutMs: CIRCUIT.probeTimeoutMs, ...(room ? { room } : {}) });

    describe('fair claims', () => {
      it('takes another endpoint’s due deliveries beside a long backlog queued before them', async () => {
        const backlogged = await addSubscription(acme.id);
        const quiet = await addSubscription(acme.id);
        await publishTo(backlogged, 300, T0);
        await publishTo(quiet, 5, T0 + SECOND);

        const round = await claim(50, T0 + 2 * SECOND);
        const counts = countBy(round.deliveries);
        expect(counts.get(quiet.id)).toBe(5);
        expect(counts.get(backlogged.id)).toBe(45);
        // The backlog's deliveries came out earliest first.
        const taken = round.deliveries.filter((d) => d.subscriptionId === backlogged.id).map((d) => d.id);
        const oldest = (await deliveriesOf(backlogged))
          .map((d) => d.id)
          .sort()
          .slice(0, 45);
        expect(taken.sort()).toEqual(oldest);
        expect(round.limited).toBe(true);
        // The backlog gave all it was asked (it has more); the quiet endpoint gave what it had.
        expect(round.full).toEqual([backlogged.id]);
      });

      it('divides a round between accounts first, then between each account’s endpoints', async () => {
        const many = [];
        for (let i = 0; i < 10; i++) many.push(await addSubscription(acme.id));
        for (const sub of many) await publishTo(sub, 20, T0);
        const lone = await addSubscription(other.id);
        await publishTo(lone, 40, T0 + SECOND);

        // A round of 40 serves 40 ÷ 8 = 5 endpoints at most, chosen in turn across the accounts: the
        // other account's one, and four of acme's ten. Half the round goes to each account.
        const round = await claim(40, T0 + 2 * SECOND);
        const counts = countBy(round.deliveries);
        expect(counts.get(lone.id)).toBe(20);
        const acmeParts = many.map((sub) => counts.get(sub.id) ?? 0).filter((n) => n > 0);
        expect(acmeParts).toEqual([5, 5, 5, 5]);
        expect(round.limited).toBe(true);
      });

      it('leaves an endpoint the claimer has no room for in the queue, and takes the others', async () => {
        const full = await addSubscription(acme.id);
        const open = await addSubscription(acme.id);
        await publishTo(full, 10, T0);
        await publishTo(open, 10, T0);

        const round = await claim(100, T0 + 1, (key) => (key === full.id ? 0 : 3));
        const counts = countBy(round.deliveries);
        expect(counts.get(full.id)).toBeUndefined();
        expect(counts.get(open.id)).toBe(3);
        expect(round.full).toEqual([open.id]);
        expect((await deliveriesOf(full)).every((d) => d.status === 'pending' && d.attempt_count === 0)).toBe(true);
      });

      it('serves every endpoint in turn when a round cannot serve them all', async () => {
        const subs = [];
        for (let i = 0; i < 12; i++) subs.push(await addSubscription(acme.id));
        for (const sub of subs) await publishTo(sub, 10, T0);
        const served: string[][] = [];
        const sizes: number[] = [];
        for (let round = 0; round < 3; round++) {
          const taken = await claim(40, T0 + 1);
          sizes.push(taken.deliveries.length);
          served.push([...countBy(taken.deliveries).keys()]);
        }
        // The third round's five: the last two (10 each) and three served first (2 left each).
        expect(sizes).toEqual([40, 40, 26]);
        // Five endpoints a round (40 ÷ 8), each round going on where the last stopped: three rounds
        // reach all twelve, and none twice before every one had its turn.
        expect(served.map((keys) => keys.length)).toEqual([5, 5, 5]);
        expect(new Set(served.flat()).size).toBe(12);
        expect(new Set([...(served[0] ?? []), ...(served[1] ?? [])]).size).toBe(10);
      });

      it('treats the account callback as an endpoint of its own', async () => {
        const sub = await addSubscription(acme.id, { target_url: 'https://your-app.com/webhooks/signed' });
        await store.putCallback(callbackRow(acme.id));
        for (let i = 0; i < 5; i++) await publish({ accountId: acme.id }, T0);
        const round = await claim(100, T0 + 1, (key) => (key === acme.id ? 2 : 100));
        const counts = countBy(round.deliveries);
        expect(counts.get(sub.id)).toBe(5);
        expect(counts.get(acme.id)).toBe(2);
      });
    });

    describe('circuit breakers', () => {
      /** Opens `sub`'s circuit at `now` with three faults; returns the faulted deliveries. */
      async function trip(sub: Subscription, now: number): Promise<ClaimedDelivery[]> {
        const round = await claim(3, now, (key) => (key === sub.id ? 3 : 0));
        expect(round.deliveries).toHaveLength(3);
        const outcome = await store.recordAttempts(
          'worker-a',
          round.deliveries.map((d, i) => fault(d, now + i)),
          now + 10,
          WITH_BREAKER,
        );
        expect(outcome.circuits?.map((c) => [c.endpoint, c.transition])).toEqual([[sub.id, 'opened']]);
        return round.deliveries;
      }

      const circuitOf = async (accountId: string, endpoint: string) =>
        (await store.circuitsOf(accountId, [endpoint])).get(endpoint);

      it('opens after the threshold of faults in a row and postpones the endpoint’s deliveries without using attempts', async () => {
        const dead = await addSubscription(acme.id);
        const healthy = await addSubscription(acme.id);
        await publishTo(dead, 10, T0);
        await publishTo(healthy, 4, T0);
        const faulted = await trip(dead, T0 + 1);

        const circuit = await circuitOf(acme.id, dead.id);
        expect(circuit).toMatchObject({
          state: 'open',
          failures: 3,
          openings: 1,
          reason: 'HTTP 503',
          openedAt: T0 + 11,
        });
        expect(circuit?.retryAt).toBe(T0 + 11 + CIRCUIT.openMs);
        const rows = await deliveriesOf(dead);
        expect(rows.every((d) => d.status === 'postponed')).toBe(true);
        // The three that were sent keep their one attempt; the other seven were never tried.
        for (const d of rows) expect(d.attempt_count).toBe(ids(faulted).includes(d.id) ? 1 : 0);

        // The queue goes on for everyone else; nothing of the dead endpoint is claimed, new ones included.
        await publishTo(dead, 2, T0 + 20);
        const round = await claim(100, T0 + 10 * SECOND);
        expect(countBy(round.deliveries)).toEqual(new Map([[healthy.id, 4]]));
        expect((await deliveriesOf(dead)).filter((d) => d.status === 'postponed')).toHaveLength(12);
      });

      it('counts only faults in a row: an answer in between starts the count again', async () => {
        const flaky = await addSubscription(acme.id);
        await publishTo(flaky, 6, T0);
        const round = await claim(6, T0 + 1);
        const [a, b, c, d, e, f] = round.deliveries as ClaimedDelivery[];
        const results = [
          fault(a as ClaimedDelivery, T0 + 2),
          fault(b as ClaimedDelivery, T0 + 3),
          success(c as ClaimedDelivery, T0 + 4),
        ];
        results.push(fault(d as ClaimedDelivery, T0 + 5), fault(e as ClaimedDelivery, T0 + 6));
        // A 4xx answers: the receiver is there, whatever it thought of the payload.
        results.push(
          result(f as ClaimedDelivery, 'retry', T0 + 7, {
            statusCode: 400,
            verdict: 'success',
            nextAttemptAt: T0 + HOUR,
          }),
        );
        const outcome = await store.recordAttempts('worker-a', results, T0 + 10, WITH_BREAKER);
        expect(outcome.circuits).toEqual([]);
        expect(await circuitOf(acme.id, flaky.id)).toMatchObject({ state: 'closed', failures: 0 });
      });

      it('makes one postponed delivery due when the window ends; the claim that takes it sends the probe, and no other', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 6, T0);
        await trip(dead, T0 + 1);
        const windowEnd = T0 + 11 + CIRCUIT.openMs;
        // The earliest due goes first (one never tried, due since T0), the oldest of those by id.
        const [earliest] = (await deliveriesOf(dead)).sort(
          (a, b) => a.next_attempt_at - b.next_attempt_at || (a.id < b.id ? -1 : 1),
        );

        expect(await store.releaseProbes(windowEnd - 1)).toEqual({ released: 0, nextAt: windowEnd });
        expect((await claim(100, windowEnd - 1)).deliveries).toEqual([]);

        expect((await store.releaseProbes(windowEnd)).released).toBe(1);
        // Called again (another process on its poll): still one delivery due, not two.
        expect((await store.releaseProbes(windowEnd)).released).toBe(0);
        const probeRound = await claim(100, windowEnd);
        expect(probeRound.deliveries).toHaveLength(1);
        const probe = probeRound.deliveries[0] as ClaimedDelivery;
        expect(probe.probe).toBe(true);
        expect(probe.id).toBe(earliest?.id);
        expect(await circuitOf(acme.id, dead.id)).toMatchObject({
          state: 'half_open',
          retryAt: windowEnd + CIRCUIT.probeTimeoutMs,
        });
        expect((await claim(100, windowEnd + 1)).deliveries).toEqual([]);
        expect((await store.releaseProbes(windowEnd + 1)).released).toBe(0);
      });

      it('opens again for twice as long when the probe fails; the probe’s delivery keeps its attempt', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 6, T0);
        await trip(dead, T0 + 1);
        const windowEnd = T0 + 11 + CIRCUIT.openMs;
        await store.releaseProbes(windowEnd);
        const [probe] = (await claim(100, windowEnd)).deliveries as ClaimedDelivery[];
        const before = (await deliveriesOf(dead)).find((d) => d.id === probe?.id)?.attempt_count as number;
        const outcome = await store.recordAttempts(
          'worker-a',
          [fault(probe as ClaimedDelivery, windowEnd + 5)],
          windowEnd + 10,
          WITH_BREAKER,
        );
        expect(outcome.circuits?.map((c) => c.transition)).toEqual(['reopened']);
        const circuit = await circuitOf(acme.id, dead.id);
        expect(circuit).toMatchObject({ state: 'open', openings: 2, failures: 4 });
        expect(circuit?.retryAt).toBe(windowEnd + 10 + 2 * CIRCUIT.openMs);
        const probed = (await deliveriesOf(dead)).find((d) => d.id === probe?.id);
        expect(probed).toMatchObject({ status: 'postponed', attempt_count: before });
        expect((await deliveriesOf(dead)).every((d) => d.status === 'postponed')).toBe(true);
      });

      it('closes when the probe succeeds: every postponed delivery is due again, oldest first, its attempts as they were', async () => {
        const dead = await addSubscription(acme.id);
        const watcher = await addSubscription(acme.id, {
          event_types: 'endpoint.circuit_opened endpoint.circuit_closed',
        });
        await publishTo(dead, 6, T0);
        await trip(dead, T0 + 1);
        const windowEnd = T0 + 11 + CIRCUIT.openMs;
        await store.releaseProbes(windowEnd);
        const [probe] = (await claim(100, windowEnd, (key) => (key === dead.id ? 100 : 0)))
          .deliveries as ClaimedDelivery[];
        const outcome = await store.recordAttempts(
          'worker-a',
          [success(probe as ClaimedDelivery, windowEnd + 5)],
          windowEnd + 10,
          WITH_BREAKER,
        );
        expect(outcome.circuits?.map((c) => c.transition)).toEqual(['closed']);
        expect(outcome.queued).toBeGreaterThanOrEqual(5);
        expect(await circuitOf(acme.id, dead.id)).toMatchObject({ state: 'closed', failures: 0, openings: 0 });

        const round = await claim(100, windowEnd + 11, (key) => (key === dead.id ? 100 : 0));
        const rows = await deliveriesOf(dead);
        expect(ids(round.deliveries).sort()).toEqual(
          rows
            .filter((d) => d.id !== probe?.id)
            .map((d) => d.id)
            .sort(),
        );
        // Three faulted attempts before, none for the two never tried (the third was the probe):
        // the circuit cost no attempt.
        const attempts = round.deliveries.map((d) => d.attempt).sort();
        expect(attempts).toEqual([1, 1, 2, 2, 2]);

        // The watcher heard both: the circuit opened, then closed.
        const events = (await store.listEvents(acme.id, { limit: 50 })).items.filter((e) =>
          e.type.startsWith('endpoint.'),
        );
        expect(events.map((e) => e.type).sort()).toEqual(['endpoint.circuit_closed', 'endpoint.circuit_opened']);
        const opened = JSON.parse((events.find((e) => e.type === 'endpoint.circuit_opened') as EventRecord).dataJson);
        expect(opened).toMatchObject({
          subscription_id: dead.id,
          target_url: dead.target_url,
          state: 'open',
          reason: 'HTTP 503',
          consecutive_failures: 3,
        });
        for (const e of events) {
          const to = (await store.listDeliveries(acme.id, { limit: 10, eventId: e.id })).items;
          expect(to.map((d) => d.subscription_id)).toEqual([watcher.id]);
        }
      });

      it('sends an operator’s manual redelivery of a postponed delivery at once, and its answer closes the circuit', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 5, T0);
        await trip(dead, T0 + 1);
        const target = (await deliveriesOf(dead)).find((d) => d.attempt_count === 0) as Delivery;
        const asked = await store.requestRedelivery(acme.id, target.id, T0 + 20);
        expect(asked).toMatchObject({ status: 'pending' });
        const round = await claim(100, T0 + 20);
        expect(ids(round.deliveries)).toEqual([target.id]);
        expect(round.deliveries[0]?.trigger).toBe('manual');
        const outcome = await store.recordAttempts(
          'worker-a',
          [success(round.deliveries[0] as ClaimedDelivery, T0 + 21)],
          T0 + 22,
          WITH_BREAKER,
        );
        expect(outcome.circuits?.map((c) => c.transition)).toEqual(['closed']);
        expect((await deliveriesOf(dead)).filter((d) => d.status === 'pending')).toHaveLength(4);
      });

      it('brings the probe forward when asked, and only for an open circuit', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 4, T0);
        expect(await store.probeNow(acme.id, dead.id, T0)).toBeUndefined();
        await trip(dead, T0 + 1);
        expect(await store.probeNow(other.id, dead.id, T0 + 20)).toBeUndefined();
        const moved = await store.probeNow(acme.id, dead.id, T0 + 20);
        expect(moved).toMatchObject({ circuit: { state: 'open', retryAt: T0 + 20 }, probing: true });
        const round = await claim(100, T0 + 20);
        expect(round.deliveries).toHaveLength(1);
        expect(round.deliveries[0]?.probe).toBe(true);
      });

      it('says when there is nothing to probe: the next delivery published goes as the probe', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 3, T0);
        const round = await claim(3, T0 + 1);
        // Three faults with no retries left: they fail for good, and nothing is postponed.
        await store.recordAttempts(
          'worker-a',
          round.deliveries.map((d, i) => result(d, 'failed', T0 + 2 + i, { statusCode: 503, verdict: 'fault' })),
          T0 + 10,
          WITH_BREAKER,
        );
        expect(await store.probeNow(acme.id, dead.id, T0 + 20)).toMatchObject({ probing: false });
        // Published while the circuit is open: postponed, then made due as the probe.
        await publish({ accountId: acme.id }, T0 + 21);
        expect((await deliveriesOf(dead)).filter((d) => d.status === 'postponed')).toHaveLength(1);
        expect((await store.releaseProbes(T0 + 22)).released).toBe(1);
        const probe = await claim(100, T0 + 22);
        expect(probe.deliveries.map((d) => d.probe)).toEqual([true]);
      });

      it('holds postponed deliveries while the subscription is paused, and postpones them again on resume while the circuit is open', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 5, T0);
        await trip(dead, T0 + 1);
        await store.updateSubscription(acme.id, dead.id, { status: 'paused' }, T0 + 20);
        expect((await deliveriesOf(dead)).every((d) => d.status === 'held')).toBe(true);
        await store.updateSubscription(acme.id, dead.id, { status: 'active' }, T0 + 30);
        expect((await claim(100, T0 + 30)).deliveries).toEqual([]);
        const rows = await deliveriesOf(dead);
        expect(rows.every((d) => d.status === 'postponed')).toBe(true);
        expect(rows.map((d) => d.attempt_count).sort()).toEqual([0, 0, 1, 1, 1]);
      });

      it('starts closed again when the target changes, and forgets the circuit with a deleted subscription', async () => {
        const dead = await addSubscription(acme.id);
        await publishTo(dead, 4, T0);
        await trip(dead, T0 + 1);
        await store.updateSubscription(acme.id, dead.id, { targetUrl: 'https://fixed.example.com/hooks' }, T0 + 20);
        expect(await circuitOf(acme.id, dead.id)).toBeUndefined();
        expect((await claim(100, T0 + 20)).deliveries).toHaveLength(4);

        const gone = await addSubscription(acme.id);
        await publishTo(gone, 4, T0);
        await trip(gone, T0 + 30);
        await store.deleteSubscription(acme.id, gone.id, T0 + 40);
        expect(await circuitOf(acme.id, gone.id)).toBeUndefined();
        expect((await deliveriesOf(gone)).every((d) => d.status === 'cancelled')).toBe(true);
      });

      it('keeps one document’s deliveries in order through an open circuit', async () => {
        const ordered = await addSubscription(acme.id, { ordering: 'document' });
        const doc = (n: number) => ({
          accountId: acme.id,
          onlySubscriptionId: ordered.id,
          dataJson: `{"document_id":"doc_${n}"}`,
          documentId: `doc_${n}`,
        });
        for (const n of [1, 2, 3]) {
          await publish(doc(n), T0);
          await publish(doc(n), T0);
        }
        // doc_1, doc_2 and doc_3 each have one delivery out front and one waiting.
        await trip(ordered, T0 + 1);
        const statuses = (await deliveriesOf(ordered)).map((d) => d.status).sort();
        expect(statuses).toEqual(['postponed', 'postponed', 'postponed', 'waiting', 'waiting', 'waiting']);
        await publish(doc(1), T0 + 20);
        expect((await deliveriesOf(ordered)).filter((d) => d.status === 'waiting')).toHaveLength(4);

        await store.probeNow(acme.id, ordered.id, T0 + 30);
        const [probe] = (await claim(100, T0 + 30)).deliveries as ClaimedDelivery[];
        await store.recordAttempts('worker-a', [success(probe as ClaimedDelivery, T0 + 31)], T0 + 32, WITH_BREAKER);
        // The probe (doc_1's first) was delivered: doc_1's second may go now, doc_1's third still waits.
        const next = await claim(100, T0 + 33);
        const docs = next.deliveries.map((d) => JSON.parse(d.event.dataJson).document_id).sort();
        expect(docs).toEqual(['doc_1', 'doc_2', 'doc_3']);
        expect((await deliveriesOf(ordered)).filter((d) => d.status === 'waiting')).toHaveLength(3);
      });

      it('keeps a circuit for the account callback, keyed by the account', async () => {
        await store.putCallback(callbackRow(acme.id));
        for (let i = 0; i < 4; i++) await publish({ accountId: acme.id }, T0);
        const round = await claim(3, T0 + 1);
        await store.recordAttempts(
          'worker-a',
          round.deliveries.map((d) => fault(d, T0 + 2)),
          T0 + 3,
          WITH_BREAKER,
        );
        expect(await circuitOf(acme.id, acme.id)).toMatchObject({ state: 'open' });
        await publish({ accountId: acme.id }, T0 + 4);
        expect((await claim(100, T0 + 5)).deliveries).toEqual([]);
        // Registering the callback again starts it closed: its postponed deliveries go.
        await store.putCallback(callbackRow(acme.id, { updated_at: T0 + 6 }));
        expect(await circuitOf(acme.id, acme.id)).toBeUndefined();
        expect((await claim(100, T0 + 7)).deliveries).toHaveLength(5);
      });

      it('moves no circuit without breaker settings, and keeps no row for an endpoint that never failed', async () => {
        const sub = await addSubscription(acme.id);
        await publishTo(sub, 4, T0);
        const round = await claim(4, T0 + 1);
        await store.recordAttempts(
          'worker-a',
          round.deliveries.slice(0, 3).map((d) => fault(d, T0 + 2)),
          T0 + 3,
          { disableAfterFailingMs: HOUR },
        );
        expect(await circuitOf(acme.id, sub.id)).toBeUndefined();
        await store.recordAttempts(
          'worker-a',
          [success(round.deliveries[3] as ClaimedDelivery, T0 + 4)],
          T0 + 5,
          WITH_BREAKER,
        );
        expect(await circuitOf(acme.id, sub.id)).toBeUndefined();
      });

      describe('shared by every store on the database', () => {
        let second: Store;
        beforeEach(async () => {
          second = await openStore(openDialect(parseDatabaseUrl(database.url)));
        });
        afterEach(async () => {
          await second.close();
        });

        it('stops every store from sending to an endpoint one store saw fail, and lets exactly one of them probe', async () => {
          const dead = await addSubscription(acme.id);
          await publishTo(dead, 8, T0);
          await trip(dead, T0 + 1);
          // The other store publishes and claims after the circuit opened: nothing of the endpoint goes.
          const [fresh] = await second.publishEvents(
            [
              {
                accountId: acme.id,
                type: 'document.signed',
                dataJson: '{}',
                occurredAt: T0 + 20,
                onlySubscriptionId: dead.id,
              },
            ],
            T0 + 20,
          );
          expect(fresh?.ok).toBe(true);
          expect((await claim(100, T0 + 21, undefined, 'worker-b', second)).deliveries).toEqual([]);

          const windowEnd = T0 + 11 + CIRCUIT.openMs;
          // SQLite's two connections in one process would block each other's transaction: in turn there.
          const both = <T>(a: () => Promise<T>, b: () => Promise<T>): Promise<T[]> =>
            dialect.name === 'postgres' ? Promise.all([a(), b()]) : a().then(async (x) => [x, await b()]);
          const released = await both(
            () => store.releaseProbes(windowEnd),
            () => second.releaseProbes(windowEnd),
          );
          expect((released[0]?.released ?? 0) + (released[1]?.released ?? 0)).toBe(1);
          const [a, b] = (await both(
            () => claim(100, windowEnd),
            () => claim(100, windowEnd, undefined, 'worker-b', second),
          )) as [ClaimRound, ClaimRound];
          expect(a.deliveries.length + b.deliveries.length).toBe(1);
          const statuses = (await deliveriesOf(dead)).map((d) => d.status);
          expect(statuses.filter((s) => s === 'sending')).toHaveLength(1);
          expect(statuses.filter((s) => s === 'postponed')).toHaveLength(8);
        });

        it('divides a round fairly whichever store claims, and never hands one delivery to two', async () => {
          const subs = [];
          for (let i = 0; i < 4; i++) subs.push(await addSubscription(i % 2 === 0 ? acme.id : other.id));
          for (const sub of subs) await publishTo(sub, 25, T0);
          const seen: string[] = [];
          for (let round = 0; round < 20; round++) {
            const [a, b] = await Promise.all([claim(9, T0 + 1), claim(9, T0 + 1, undefined, 'worker-b', second)]);
            seen.push(...ids(a.deliveries), ...ids(b.deliveries));
            if (a.deliveries.length + b.deliveries.length === 0) break;
          }
          expect(seen).toHaveLength(100);
          expect(new Set(seen).size).toBe(100);
        });
      });
    });
  });
});
