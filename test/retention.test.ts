// Retention (COUNTERSIGN_RETENTION, `countersign purge`): what a purge removes and keeps, on both
// dialects, driven through `now` where it can be; a purge under a steady publishing load through
// the real HTTP API, with a real receiver; and the setting itself.
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { RetentionPurge } from '../src/retention.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type { ClaimedDelivery, PublishRequest, Store } from '../src/store/store.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';
import { LEASE_MS, result, SECOND, SETTINGS, subscriptionRow, T0 } from './helpers/store-fixtures.js';

const DAY = 86_400_000;
const OLD = T0 - 10 * DAY;
const CUTOFF = T0 - 7 * DAY;
const FAR = T0 + 100 * DAY;
const OWNER = 'test-dispatcher';

function request(accountId: string, type: string, documentId = 'doc_1'): PublishRequest {
  return {
    accountId,
    type,
    dataJson: JSON.stringify({
      document_id: documentId,
      signer_email: 'ana@example.com',
      audit_url: 'https://sign.example.com/audit/1',
    }),
    occurredAt: OLD,
    documentId,
  };
}

async function publish(store: Store, requests: PublishRequest[], now: number): Promise<string[]> {
  const results = await store.publishEvents(requests, now);
  return results.map((r) => {
    if (!r.ok) throw new Error('publish refused');
    return r.event.id;
  });
}

/** Claims what is due at `now`; every delivery claimed must be of one of `eventIds`. */
async function claim(store: Store, now: number, eventIds: string[]): Promise<ClaimedDelivery[]> {
  const claimed = await store.claimDueDeliveries(OWNER, 100, now, LEASE_MS);
  for (const c of claimed) expect(eventIds, `claimed a delivery of ${c.eventId}`).toContain(c.eventId);
  return claimed;
}

interface History {
  accounts: string[];
  /** Old events that must go, with their deliveries and attempts. */
  gone: { events: string[]; deliveries: string[] };
  /** Events that must stay, with every delivery and attempt they have. */
  kept: { events: string[]; deliveries: string[]; attempts: number };
}

/**
 * Old events in every state a delivery can be in, and a new one:
 * - gone: delivered (1 attempt), failed (2 attempts), an ordered one delivered, one cancelled (1 attempt);
 * - kept: pending (a retry due later, 1 attempt), held (paused subscription), sending (claimed,
 *   in flight), waiting (behind the sending one of its document), one with a delivered and a pending
 *   delivery, and a new delivered one.
 */
async function seedHistory(store: Store): Promise<History> {
  const acme = (await store.ensureAccount('acme', OLD)).id;
  const globex = (await store.ensureAccount('globex', OLD)).id;
  const signed = subscriptionRow(acme, { event_types: 'document.signed', target_url: 'https://a.example.com/s' });
  const sent = subscriptionRow(acme, {
    event_types: 'document.sent',
    target_url: 'https://a.example.com/p',
    status: 'paused',
  });
  const ordered = subscriptionRow(acme, {
    event_types: 'document.declined',
    target_url: 'https://a.example.com/o',
    ordering: 'document',
  });
  const toDelete = subscriptionRow(globex, { event_types: 'document.sent', target_url: 'https://g.example.com/d' });
  const first = subscriptionRow(globex, { event_types: 'document.signed', target_url: 'https://g.example.com/1' });
  const second = subscriptionRow(globex, { event_types: 'document.signed', target_url: 'https://g.example.com/2' });
  for (const sub of [signed, sent, ordered, toDelete, first, second]) await store.createSubscription(sub);

  const at = (n: number) => OLD + n * SECOND;
  // Delivered.
  const [delivered] = await publish(store, [request(acme, 'document.signed')], at(1));
  let claimed = await claim(store, at(1), [delivered as string]);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) => result(c, 'delivered', at(1))),
    at(1),
    SETTINGS,
  );
  // Failed after a retry.
  const [failed] = await publish(store, [request(acme, 'document.signed')], at(2));
  claimed = await claim(store, at(2), [failed as string]);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) => result(c, 'retry', at(2), { nextAttemptAt: at(3) })),
    at(2),
    SETTINGS,
  );
  claimed = await claim(store, at(3), [failed as string]);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) => result(c, 'failed', at(3))),
    at(3),
    SETTINGS,
  );
  // Pending: its next attempt is due long after the purge.
  const [pending] = await publish(store, [request(acme, 'document.signed')], at(4));
  claimed = await claim(store, at(4), [pending as string]);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) => result(c, 'retry', at(4), { nextAttemptAt: FAR })),
    at(4),
    SETTINGS,
  );
  // Held by a paused subscription.
  const [held] = await publish(store, [request(acme, 'document.sent')], at(5));
  // Ordered: doc_x's first is being sent, its second waits; doc_y's one was delivered.
  const [sending, waiting, orderedDone] = await publish(
    store,
    [
      request(acme, 'document.declined', 'doc_x'),
      request(acme, 'document.declined', 'doc_x'),
      request(acme, 'document.declined', 'doc_y'),
    ],
    at(6),
  );
  claimed = await claim(store, at(6), [sending as string, orderedDone as string]);
  expect(claimed).toHaveLength(2);
  await store.recordAttempts(
    OWNER,
    claimed.filter((c) => c.eventId === orderedDone).map((c) => result(c, 'delivered', at(6))),
    at(6),
    SETTINGS,
  );
  // Cancelled, after one attempt: its subscription was deleted.
  const [cancelled] = await publish(store, [request(globex, 'document.sent')], at(7));
  claimed = await claim(store, at(7), [cancelled as string]);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) => result(c, 'retry', at(7), { nextAttemptAt: FAR })),
    at(7),
    SETTINGS,
  );
  expect(await store.deleteSubscription(globex, toDelete.id, at(7))).toBe(true);
  // One delivery delivered, the other still to be retried: the event and both stay.
  const [mixed] = await publish(store, [request(globex, 'document.signed')], at(8));
  claimed = await claim(store, at(8), [mixed as string]);
  expect(claimed).toHaveLength(2);
  await store.recordAttempts(
    OWNER,
    claimed.map((c) =>
      c.subscriptionId === first.id ? result(c, 'delivered', at(8)) : result(c, 'retry', at(8), { nextAttemptAt: FAR }),
    ),
    at(8),
    SETTINGS,
  );
  // New and delivered. At T0 the in-flight doc_x lease has run out, so the claim takes it over
  // again: it stays `sending`.
  const [fresh] = await publish(store, [request(acme, 'document.signed')], T0);
  claimed = await claim(store, T0, [fresh as string, sending as string]);
  await store.recordAttempts(
    OWNER,
    claimed.filter((c) => c.eventId === fresh).map((c) => result(c, 'delivered', T0)),
    T0,
    SETTINGS,
  );

  const deliveriesOf = async (eventIds: string[]) => {
    const out: string[] = [];
    for (const accountId of [acme, globex]) {
      for (const eventId of eventIds) {
        const page = await store.listDeliveries(accountId, { limit: 100, eventId });
        out.push(...page.items.map((d) => d.id));
      }
    }
    return out;
  };
  const goneEvents = [delivered, failed, orderedDone, cancelled] as string[];
  const keptEvents = [pending, held, sending, waiting, mixed, fresh] as string[];
  // Events countersign published itself meanwhile (operational events, `delivery.failed`): old,
  // with no delivery (nothing here subscribes to them), so they go too.
  for (const accountId of [acme, globex]) {
    for (const event of (await store.listEvents(accountId, { limit: 100, includeTests: true })).items) {
      if (goneEvents.includes(event.id) || keptEvents.includes(event.id)) continue;
      expect(event.createdAt).toBeLessThan(CUTOFF);
      expect((await store.listDeliveries(accountId, { limit: 100, eventId: event.id })).items).toEqual([]);
      goneEvents.push(event.id);
    }
  }
  const keptDeliveries = await deliveriesOf(keptEvents);
  return {
    accounts: [acme, globex],
    gone: { events: goneEvents, deliveries: await deliveriesOf(goneEvents) },
    kept: {
      events: keptEvents,
      deliveries: keptDeliveries,
      attempts: (await store.listAttempts(keptDeliveries)).length,
    },
  };
}

/** Every event, delivery and attempt of these accounts, by id. */
async function snapshot(store: Store, accounts: string[]) {
  const events: string[] = [];
  const deliveries: string[] = [];
  for (const accountId of accounts) {
    events.push(...(await store.listEvents(accountId, { limit: 100, includeTests: true })).items.map((e) => e.id));
    deliveries.push(...(await store.listDeliveries(accountId, { limit: 100 })).items.map((d) => d.id));
  }
  const attempts = (await store.listAttempts(deliveries)).map((a) => `${a.delivery_id}#${a.number}`);
  return { events: events.sort(), deliveries: deliveries.sort(), attempts: attempts.sort() };
}

/** Calls `step` from the start until no old event is left to look at; sums what it reports. */
async function untilDone(step: Store['purgeOlderThan'], cutoff: number, limit: number) {
  const totals = { calls: 0, examined: 0, events: 0, deliveries: 0, attempts: 0, largest: 0 };
  let after: Parameters<Store['purgeOlderThan']>[2];
  do {
    const batch = await step(cutoff, limit, after);
    totals.calls++;
    totals.examined += batch.examined;
    totals.events += batch.events;
    totals.deliveries += batch.deliveries;
    totals.attempts += batch.attempts;
    totals.largest = Math.max(totals.largest, batch.examined);
    after = batch.next;
  } while (after);
  return totals;
}

describe.each(DIALECTS)('retention on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let database: TestDatabase | undefined;
    const stores: Store[] = [];
    const open = async () => {
      database ??= await dialect.create();
      const store = await openStore(openDialect(parseDatabaseUrl(database.url)));
      stores.push(store);
      return store;
    };
    afterEach(async () => {
      for (const store of stores.splice(0)) await store.close();
      await database?.drop();
      database = undefined;
    });

    it('removes old delivered, failed and cancelled events with their attempts, and keeps everything unfinished or new', async () => {
      const store = await open();
      const history = await seedHistory(store);
      const before = await snapshot(store, history.accounts);

      // --dry-run first: the same counts, nothing changed.
      const old = history.gone.events.length + 5;
      const counted = await untilDone(store.countPurgeable.bind(store), CUTOFF, 500);
      expect(counted).toMatchObject({ calls: 1, examined: old, events: old - 5, deliveries: 4, attempts: 5 });
      expect(await snapshot(store, history.accounts)).toEqual(before);

      const purged = await untilDone(store.purgeOlderThan.bind(store), CUTOFF, 500);
      expect(purged).toMatchObject({ examined: old, events: old - 5, deliveries: 4, attempts: 5 });

      const after = await snapshot(store, history.accounts);
      expect(after.events).toEqual([...history.kept.events].sort());
      expect(after.deliveries).toEqual([...history.kept.deliveries].sort());
      expect(after.attempts).toHaveLength(history.kept.attempts);
      expect(history.kept.attempts).toBe(4);
      for (const id of history.gone.deliveries) {
        expect(await store.getDelivery(history.accounts[0] as string, id)).toBeUndefined();
        expect(await store.getDelivery(history.accounts[1] as string, id)).toBeUndefined();
      }
      expect(await store.listAttempts(history.gone.deliveries)).toEqual([]);
      // The kept events keep their state: nothing unfinished was touched.
      const statuses = (await snapshotStatuses(store, history.accounts)).sort();
      expect(statuses).toEqual(['delivered', 'delivered', 'held', 'pending', 'pending', 'sending', 'waiting']);

      // A second purge finds nothing more.
      expect(await untilDone(store.purgeOlderThan.bind(store), CUTOFF, 500)).toMatchObject({
        events: 0,
        deliveries: 0,
        attempts: 0,
      });
      expect(await store.countEventsOlderThan(CUTOFF)).toBe(5);
    });

    it('looks at no more than `limit` old events per call and gets past those that must stay', async () => {
      const store = await open();
      const history = await seedHistory(store);
      const old = history.gone.events.length + 5;
      const purged = await untilDone(store.purgeOlderThan.bind(store), CUTOFF, 2);
      // The last call looks at fewer than the limit (none, when the old events divide evenly).
      expect(purged).toMatchObject({
        calls: Math.floor(old / 2) + 1,
        examined: old,
        largest: 2,
        events: old - 5,
        deliveries: 4,
        attempts: 5,
      });
      expect((await snapshot(store, history.accounts)).events).toEqual([...history.kept.events].sort());
    });

    describe('against a steady publishing load through the HTTP API', () => {
      let service: TestService | undefined;
      let receiver: Receiver | undefined;
      afterEach(async () => {
        await service?.close();
        await receiver?.close();
        service = undefined;
        receiver = undefined;
      });

      it('adds no 5xx and loses no event: every event published while it runs is delivered', async () => {
        receiver = await startReceiver();
        const svc = await startTestService(dialect, { dispatcher: true });
        service = svc;
        const base = await svc.app.listen({ port: 0, host: '127.0.0.1' });
        const created = await svc.request({
          method: 'POST',
          url: '/v1/webhooks/subscriptions',
          payload: { target_url: `${receiver.url}/hooks`, event_type: 'document.signed' },
        });
        expect(created.statusCode, created.body).toBe(200);

        // History: 1,500 events created ten days ago, delivered now by the real dispatcher.
        const OLD_EVENTS = 1500;
        const tenDaysAgo = Date.now() - 10 * DAY;
        for (let i = 0; i < OLD_EVENTS; i += 500) {
          await publish(
            svc.store,
            Array.from({ length: 500 }, () => request(svc.accountId, 'document.signed')),
            tenDaysAgo,
          );
        }
        await receiver.waitFor(OLD_EVENTS, 60_000);
        const cutoff = Date.now() - 7 * DAY;
        await expect
          .poll(async () => (await untilDone(svc.store.countPurgeable.bind(svc.store), cutoff, 500)).events, {
            timeout: 15_000,
          })
          .toBe(OLD_EVENTS);
        // A send that timed out under the burst was retried: count the attempts there are.
        const due = await untilDone(svc.store.countPurgeable.bind(svc.store), cutoff, 500);
        expect(due.deliveries).toBe(OLD_EVENTS);
        expect(due.attempts).toBeGreaterThanOrEqual(OLD_EVENTS);

        // The load: one publish every 5 ms, for at least 2 s and until the purge is done.
        const statuses: number[] = [];
        const published: string[] = [];
        let purgeDone = false;
        const started = Date.now();
        const load = (async () => {
          while (!purgeDone || Date.now() - started < 2000) {
            const res = await fetch(`${base}/v1/events`, {
              method: 'POST',
              headers: { authorization: `Bearer ${svc.token}`, 'content-type': 'application/json' },
              body: JSON.stringify({
                event: 'document.signed',
                data: {
                  document_id: 'doc_live',
                  signer_email: 'live@example.com',
                  audit_url: 'https://x.example.com/a',
                },
              }),
            });
            statuses.push(res.status);
            if (res.status === 202) published.push(((await res.json()) as { id: string }).id);
            else await res.text();
            await new Promise((resolve) => setTimeout(resolve, 5));
          }
        })();
        await expect.poll(() => published.length, { timeout: 15_000 }).toBeGreaterThan(0);
        const publishedBefore = published.length;
        // After its first batch the purge goes on only once a publish has been answered since it
        // began: publishes are answered while it runs however the machine schedules the two.
        let batches = 0;
        const paced = new Proxy(svc.store, {
          get(target, name) {
            if (name !== 'purgeOlderThan') return Reflect.get(target, name, target);
            return async (...args: Parameters<Store['purgeOlderThan']>) => {
              if (batches++ > 0) {
                await expect.poll(() => published.length, { timeout: 15_000 }).toBeGreaterThan(publishedBefore);
              }
              return target.purgeOlderThan(...args);
            };
          },
        });
        const purge = new RetentionPurge(paced, 7 * DAY, pino({ level: 'silent' }), {
          batchSize: 100,
          pauseMs: 5,
        });
        const totals = await purge.run();
        const publishedDuring = published.length - publishedBefore;
        purgeDone = true;
        await load;

        expect(totals).toEqual({ events: OLD_EVENTS, deliveries: OLD_EVENTS, attempts: due.attempts });
        expect(publishedDuring, 'publishes answered while the purge ran').toBeGreaterThan(0);
        expect(statuses.filter((s) => s !== 202)).toEqual([]);
        expect(await svc.store.countEventsOlderThan(cutoff)).toBe(0);
        const missing = () => {
          const received = new Set(receiver?.requests.map((r) => r.headers['webhook-id']));
          return published.filter((id) => !received.has(id));
        };
        await expect.poll(missing, { timeout: 30_000 }).toEqual([]);
        for (const id of published.slice(0, 20)) {
          expect(await svc.store.getEvent(svc.accountId, id)).toBeDefined();
        }
      }, 120_000);
    });
  });
});

async function snapshotStatuses(store: Store, accounts: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const accountId of accounts) {
    out.push(...(await store.listDeliveries(accountId, { limit: 100 })).items.map((d) => d.status));
  }
  return out;
}

describe('COUNTERSIGN_RETENTION', () => {
  it('is 30 days unless set, takes a duration, and off keeps everything', () => {
    expect(loadConfig({}, {}).retentionMs).toBe(30 * DAY);
    expect(loadConfig({}, { COUNTERSIGN_RETENTION: '12h' }).retentionMs).toBe(12 * 3_600_000);
    expect(loadConfig({}, { COUNTERSIGN_RETENTION: 'OFF' }).retentionMs).toBeUndefined();
    expect(loadConfig({ retention: '7d' }, { COUNTERSIGN_RETENTION: 'off' }).retentionMs).toBe(7 * DAY);
  });

  it('refuses a malformed, zero or out-of-range value with a message naming it', () => {
    for (const bad of ['bogus', '0', '30s', '3651d', '-1d', '']) {
      const given = bad === '' ? { retention: '' } : {};
      const env = bad === '' ? {} : { COUNTERSIGN_RETENTION: bad };
      let error: unknown;
      try {
        loadConfig(given, env);
      } catch (err) {
        error = err;
      }
      expect(error, bad).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        `${bad === '' ? '--retention' : 'COUNTERSIGN_RETENTION'} must be a duration from 1m to 3650d (such as 30d or 12h), or off, got "${bad}"`,
      );
    }
  });
});
