// POST /v1/events/batch on every dialect, with the real dispatcher delivering to real receivers on
// loopback: a batch is one transaction (all stored, or nothing), an invalid item's 400 names it,
// each item's idempotency_key works as a single publish's Idempotency-Key, an event fans out to
// every subscription and the callback, and 1,000 events in one request are all delivered.
import { afterEach, describe, expect, it } from 'vitest';
import { apiOf, eventually, headerOf, SIGNED_DATA } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError, expectFieldError } from './helpers/expect-error.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService, type TestServiceOptions } from './helpers/service.js';

const BATCH = '/v1/events/batch';

interface Item {
  event: string;
  data: Record<string, unknown>;
  timestamp?: string;
  idempotency_key?: string;
}
interface Accepted {
  id: string;
  event: string;
  timestamp: string;
  deliveries: number;
  replayed?: true;
}

const item = (n: number, extra: Partial<Item> = {}): Item => ({
  event: 'document.signed',
  data: { ...SIGNED_DATA, document_id: `doc_${n}`, n },
  ...extra,
});

describe.each(DIALECTS)('batch publishing on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const receivers: Receiver[] = [];

    async function start(options: TestServiceOptions = {}) {
      service = await startTestService(dialect, options);
      const s = service;
      const batch = (events: unknown, token?: string) =>
        s.request({ method: 'POST', url: BATCH, payload: { events }, ...(token ? { token } : {}) });
      const accepted = async (events: Item[]) => {
        const res = await batch(events);
        expect(res.statusCode, res.body).toBe(202);
        return (res.json() as { events: Accepted[] }).events;
      };
      const storedEvents = async () => {
        const res = await s.request({ method: 'GET', url: '/v1/events?limit=100' });
        return res.json().events as { id: string; data: Record<string, unknown> }[];
      };
      return { service: s, api: apiOf(s), batch, accepted, storedEvents };
    }

    async function receiver(): Promise<Receiver> {
      const r = await startReceiver();
      receivers.push(r);
      return r;
    }

    afterEach(async () => {
      await service?.close();
      service = undefined;
      for (const r of receivers.splice(0)) await r.close();
    });

    it('answers each event in input order, and fans one out to three subscriptions and the callback', async () => {
      const { api, accepted } = await start();
      for (const path of ['a', 'b', 'c']) await api.subscribe(`https://your-app.com/${path}`, 'document.signed');
      await api.subscribe('https://your-app.com/sent-only', 'document.sent');
      await api.registerCallback({ callbackUrl: 'https://your-app.com/callback', authType: 'None' });
      const answers = await accepted([
        item(1),
        item(2, { event: 'document.sent', timestamp: '2026-01-02T03:04:05Z' }),
        item(3, { event: 'document.declined' }),
      ]);
      expect(answers.map((a) => [a.event, a.deliveries])).toEqual([
        ['document.signed', 4],
        ['document.sent', 2],
        ['document.declined', 1],
      ]);
      expect(answers[1]?.timestamp).toBe('2026-01-02T03:04:05Z');
      expect(answers.every((a) => a.replayed === undefined)).toBe(true);
      expect(await api.deliveriesOf(`event_id=${answers[0]?.id}`)).toHaveLength(4);
      const stored = await service?.request({ method: 'GET', url: `/v1/events/${answers[0]?.id}` });
      expect(stored?.json()).toMatchObject({ event: 'document.signed', data: { document_id: 'doc_1', n: 1 } });
    });

    it('refuses an invalid item with a 400 naming it, and stores nothing of the batch', async () => {
      const { batch, storedEvents } = await start();
      const events = Array.from({ length: 20 }, (_, n) => item(n));
      events[17] = item(17, { data: { ...SIGNED_DATA, signer_email: 'not an address' } });
      expectFieldError(await batch(events), 'events[17].data.signer_email');
      const noAudit = Array.from({ length: 5 }, (_, n) => item(n));
      noAudit[3] = { event: 'document.signed', data: { document_id: 'doc_3', signer_email: 'a@example.com' } };
      expectFieldError(await batch(noAudit), 'events[3].data.audit_url');
      const badTime = [item(0), item(1, { timestamp: '2025-02-30T00:00:00Z' })];
      expectFieldError(await batch(badTime), 'events[1].timestamp');
      expectFieldError(await batch([item(0), { ...item(1), event: 'document.opened' }]), 'events[1].event');
      expectFieldError(await batch([item(0), { ...item(1), colour: 'red' }]), 'events[1].colour');
      expectFieldError(await batch([]), 'events');
      expectFieldError(await batch(Array.from({ length: 1001 }, (_, n) => item(n))), 'events');
      expect(await storedEvents()).toEqual([]);
    });

    it('takes bodies over 1 MiB up to 10 MiB on this route only', async () => {
      const { batch, api } = await start();
      const padding = 'x'.repeat(3000);
      const events = Array.from({ length: 1000 }, (_, n) => item(n, { data: { ...SIGNED_DATA, padding } }));
      const res = await batch(events);
      expect(res.statusCode, res.body.slice(0, 200)).toBe(202);
      expect(Buffer.byteLength(JSON.stringify({ events }))).toBeGreaterThan(2 * 1024 * 1024);
      const tooBig = await api.publish('document.signed', { ...SIGNED_DATA, padding: 'x'.repeat(1024 * 1024) });
      expect(expectError(tooBig, 413, 'payload_too_large').message).toContain('1 MiB');
      const hugeBatch = await batch([item(0, { data: { ...SIGNED_DATA, padding: 'x'.repeat(10 * 1024 * 1024) } })]);
      expect(expectError(hugeBatch, 413, 'payload_too_large').message).toContain('10 MiB');
    });

    it('answers a repeated idempotency_key with the first result, replayed, and queues nothing new', async () => {
      const { api, accepted } = await start();
      await api.subscribe('https://your-app.com/a', 'document.signed');
      const [first] = await accepted([item(1, { idempotency_key: 'k1' })]);
      // The same key and request again, with a new item: the first answer replayed, the new one made.
      const [again, fresh] = await accepted([item(1, { idempotency_key: 'k1' }), item(2)]);
      expect(again).toEqual({ ...first, replayed: true });
      expect(fresh?.replayed).toBeUndefined();
      expect(fresh?.id).not.toBe(first?.id);
      expect(await api.deliveriesOf(`event_id=${first?.id}`)).toHaveLength(1);
      // A single publish's Idempotency-Key is the same key.
      const single = await api.publish('document.signed', item(1).data, { headers: { 'idempotency-key': 'k1' } });
      expect(single.json()).toMatchObject({ id: first?.id });
      expect(single.headers['idempotent-replayed']).toBe('true');
      // The same key twice in one batch: one event.
      const [x, y] = await accepted([item(5, { idempotency_key: 'k5' }), item(5, { idempotency_key: 'k5' })]);
      expect(y).toEqual({ ...x, replayed: true });
    });

    it('refuses the whole batch when an item reuses a key with another request, naming the item', async () => {
      const { accepted, batch, storedEvents } = await start();
      await accepted([item(1, { idempotency_key: 'k1' })]);
      const before = await storedEvents();
      const reused = await batch([item(7), item(8), item(9, { idempotency_key: 'k1' })]);
      const error = expectError(reused, 422, 'idempotency_key_reused');
      expect(error.message).toContain('events[2].idempotency_key');
      expect(await storedEvents()).toEqual(before);
      const inside = await batch([item(3, { idempotency_key: 'k3' }), item(4, { idempotency_key: 'k3' })]);
      expect(expectError(inside, 422, 'idempotency_key_reused').message).toContain('events[1]');
      expect(await storedEvents()).toEqual(before);
    });

    it('refuses a batch that would make more deliveries than COUNTERSIGN_MAX_BATCH_DELIVERIES, storing nothing', async () => {
      const { api, batch, accepted, storedEvents } = await start({ quotas: { deliveriesPerBatch: 10 } });
      for (let n = 0; n < 3; n++) await api.subscribe(`https://your-app.com/hooks/${n}`, 'document.signed');
      // Three subscriptions: four events make 12 deliveries, past 10 from the fourth event on.
      const refused = await batch([item(1), item(2), item(3), item(4)]);
      expect(expectError(refused, 409, 'quota_exceeded').message).toBe(
        'this batch would make 12 deliveries, more than the 10 one batch may (COUNTERSIGN_MAX_BATCH_DELIVERIES; from events[3] on); nothing of it was stored: send fewer events per batch',
      );
      expect(await storedEvents()).toEqual([]);
      // Three make 9: within the limit.
      const answers = await accepted([item(1), item(2), item(3)]);
      expect(answers.map((a) => a.deliveries)).toEqual([3, 3, 3]);
    });

    it('needs the publish scope', async () => {
      const { service: s, batch, storedEvents } = await start();
      const reader = await s.tokenFor('acme', { scopes: ['read', 'write'] });
      expectError(await batch([item(1)], reader.token), 403, 'forbidden');
      expect(await storedEvents()).toEqual([]);
    });

    it('delivers all 1,000 events of one request, each once', { timeout: 120_000 }, async () => {
      // A send that times out is sent again (at least once), so this test's sends may take as long as a
      // loaded machine needs: "each once" is about the batch, not about timeouts.
      const { api, accepted } = await start({ dispatcher: { requestTimeoutMs: 60_000 } });
      const r = await receiver();
      await api.subscribe(r.url, 'document.signed');
      const answers = await accepted(Array.from({ length: 1000 }, (_, n) => item(n)));
      expect(new Set(answers.map((a) => a.id)).size).toBe(1000);
      expect(answers.every((a) => a.deliveries === 1)).toBe(true);
      await r.waitFor(1000, 90_000);
      await eventually(
        'every delivery to be delivered',
        async () => {
          const res = await service?.request({ method: 'GET', url: '/v1/stats/overview' });
          const counts = res?.json().deliveries as Record<string, number> | undefined;
          return counts?.delivered === 1000 ? true : undefined;
        },
        60_000,
      );
      const ids = r.requests.map((q) => headerOf(q, 'webhook-id'));
      expect(new Set(ids)).toEqual(new Set(answers.map((a) => a.id)));
      expect(ids).toHaveLength(1000);
    });
  });
});
