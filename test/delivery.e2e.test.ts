// The delivery engine end to end, on every dialect: the real store, API and dispatcher against real
// HTTP receivers on loopback. Each case asserts on what the receiver got and on the delivery log.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import type { DispatcherConfig } from '../src/config.js';
import { apiOf, type DeliveryView, eventually, headerOf, payloadOf, SIGNED_DATA } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { gate, type ReceivedRequest, type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** A port on 127.0.0.1 with nothing listening on it (taken from the OS, then given back). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe.each(DIALECTS)('delivery engine end to end on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const receivers: Receiver[] = [];

    /** A service with a real dispatcher: short retries unless the case says otherwise. */
    async function start(dispatcher: Partial<DispatcherConfig> = {}) {
      service = await startTestService(dialect, {
        dispatcher: { retrySchedule: [0, 100, 200], ...dispatcher },
      });
      return { service, api: apiOf(service) };
    }

    async function receiver(responder?: Responder): Promise<Receiver> {
      const r = await startReceiver(responder);
      receivers.push(r);
      return r;
    }

    afterEach(async () => {
      await service?.close();
      service = undefined;
      await Promise.all(receivers.splice(0).map((r) => r.close()));
    });

    describe('what a receiver gets', () => {
      it('delivers the exact seed payload with the event id, signed and labelled, and logs the attempt', async () => {
        const { api } = await start();
        const plain = await receiver();
        const withToken = await receiver();
        const sub = await api.subscribe(`${plain.url}/hooks/conga`);
        const tokened = await api.subscribe(`${withToken.url}/hooks/conga`, 'document.signed', 'shhh_its_a_secret');

        const before = Math.floor(Date.now() / 1000);
        const res = await api.publish('document.signed', SIGNED_DATA, { timestamp: '2025-12-18T14:30:05Z' });
        expect(res.statusCode).toBe(202);
        const accepted = res.json();
        expect(accepted).toEqual({
          id: expect.stringMatching(/^evt_/),
          event: 'document.signed',
          timestamp: '2025-12-18T14:30:05Z',
          deliveries: 2,
        });

        const [got] = await plain.waitFor(1);
        if (!got) throw new Error('nothing received');
        expect(got.method).toBe('POST');
        expect(got.url).toBe('/hooks/conga');
        expect(got.body).toBe(
          JSON.stringify({
            event: 'document.signed',
            timestamp: '2025-12-18T14:30:05Z',
            data: SIGNED_DATA,
            id: accepted.id,
          }),
        );
        expect(headerOf(got, 'content-type')).toBe('application/json');
        expect(headerOf(got, 'user-agent')).toBe(`countersign/${PACKAGE_VERSION}`);
        expect(headerOf(got, 'webhook-id')).toBe(accepted.id);
        const sentAt = Number(headerOf(got, 'webhook-timestamp'));
        expect(sentAt).toBeGreaterThanOrEqual(before);
        expect(sentAt).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
        const signatureHeaders = {
          'webhook-id': headerOf(got, 'webhook-id') as string,
          'webhook-timestamp': headerOf(got, 'webhook-timestamp') as string,
          'webhook-signature': headerOf(got, 'webhook-signature') as string,
        };
        expect(new Webhook(sub.secret).verify(got.body, signatureHeaders)).toEqual(payloadOf(got));
        // Signed under this subscription's secret, not any other's.
        expect(() => new Webhook(tokened.secret).verify(got.body, signatureHeaders)).toThrow();

        const [gotWithToken] = await withToken.waitFor(1);
        if (!gotWithToken) throw new Error('nothing received');
        expect(gotWithToken.body).toBe(
          JSON.stringify({
            event: 'document.signed',
            timestamp: '2025-12-18T14:30:05Z',
            data: SIGNED_DATA,
            id: accepted.id,
            secret_token: 'shhh_its_a_secret',
          }),
        );
        expect(
          new Webhook(tokened.secret).verify(gotWithToken.body, {
            'webhook-id': headerOf(gotWithToken, 'webhook-id') as string,
            'webhook-timestamp': headerOf(gotWithToken, 'webhook-timestamp') as string,
            'webhook-signature': headerOf(gotWithToken, 'webhook-signature') as string,
          }),
        ).toMatchObject({ id: accepted.id, secret_token: 'shhh_its_a_secret' });

        const list = await eventually('both deliveries to be delivered', async () => {
          const all = await api.deliveriesOf(`event_id=${accepted.id}`);
          return all.length === 2 && all.every((d) => d.status === 'delivered') ? all : undefined;
        });
        expect(new Set(list.map((d) => d.subscription_id))).toEqual(new Set([sub.id, tokened.id]));
        for (const d of list) {
          expect(d).toMatchObject({ target: 'subscription', attempt_count: 1, delivered_at: expect.any(String) });
          expect(d.last_attempt).toMatchObject({ number: 1, trigger: 'scheduled', status_code: 200, error: null });
        }
        const detail = await api.delivery((list.find((d) => d.subscription_id === sub.id) as DeliveryView).id);
        const sentHeaders = {
          'content-type': 'application/json',
          'user-agent': `countersign/${PACKAGE_VERSION}`,
          'webhook-id': accepted.id,
          'webhook-timestamp': headerOf(got, 'webhook-timestamp'),
          'webhook-subscription-id': sub.id,
          'webhook-signature': headerOf(got, 'webhook-signature'),
        };
        expect(detail.attempts).toEqual([
          {
            number: 1,
            trigger: 'scheduled',
            started_at: expect.any(String),
            duration_ms: expect.any(Number),
            request_url: `${plain.url}/hooks/conga`,
            request_headers: sentHeaders,
            status_code: 200,
            error: null,
            response_headers: expect.objectContaining({ 'content-type': 'text/plain', connection: 'keep-alive' }),
            response_excerpt: 'ok',
          },
        ]);
        // The delivery shows its target and the exact request sent.
        expect(detail).toMatchObject({
          target_url: `${plain.url}/hooks/conga`,
          request: { method: 'POST', url: `${plain.url}/hooks/conga`, headers: sentHeaders, body: got.body },
        });
        expect(detail.attempts?.[0]?.duration_ms).toBeGreaterThanOrEqual(0);
      });

      it('cuts the logged response excerpt to 4 KiB when the receiver answers a large body', async () => {
        const { api } = await start();
        const big = `${'a'.repeat(4096)}${'b'.repeat(100 * 1024)}`;
        const rx = await receiver(() => ({ status: 200, body: big }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'delivered', 1);
        const excerpt = delivery.attempts?.[0]?.response_excerpt as string;
        expect(excerpt).toHaveLength(4096);
        expect(excerpt).toBe('a'.repeat(4096));
      });
    });

    describe('secrets echoed back', () => {
      it('keeps the secret_token and the callback’s bearer token out of what an echoing receiver answers', async () => {
        const { service, api } = await start();
        // Echoes the request: its body, and its Authorization in a header of the answer.
        const rx = await receiver((req) => ({
          status: 200,
          body: `you sent ${req.body} with ${String(req.headers.authorization)}`,
          headers: {
            'x-echo-authorization': String(req.headers.authorization),
            'x-echo-body': encodeURIComponent(req.body),
          },
        }));
        const tokenSecret = 'tok-Echo"Secret/42';
        await api.subscribe(`${rx.url}/hook`, 'document.signed', tokenSecret);
        const bearer = 'bearer.echo.value.9000';
        const put = await service.request({
          method: 'PUT',
          url: '/api/sign/v1/callback/register',
          payload: { callbackUrl: `${rx.url}/cb`, authType: 'Bearer', bearerToken: bearer },
        });
        expect(put.statusCode, put.body).toBe(200);
        const event = await api.published();
        const [first, second] = await rx.waitFor(2);
        // The receiver did get them: the redaction is of the log only.
        expect([first?.body, second?.body].join('')).toContain(JSON.stringify(tokenSecret).slice(1, -1));
        expect([first?.headers.authorization, second?.headers.authorization]).toContain(`Bearer ${bearer}`);

        const all = await eventually('both deliveries to be delivered', async () => {
          const list = await api.deliveriesOf(`event_id=${event.id}`);
          return list.length === 2 && list.every((d) => d.status === 'delivered') ? list : undefined;
        });
        for (const d of all) {
          const detail = await api.delivery(d.id);
          const logged = JSON.stringify(detail.attempts);
          expect(logged).toContain('[redacted]');
          for (const secret of [
            tokenSecret,
            JSON.stringify(tokenSecret).slice(1, -1),
            encodeURIComponent(tokenSecret),
            bearer,
          ]) {
            expect(logged, secret).not.toContain(secret);
          }
        }
      });
    });

    describe('failures and retries', () => {
      it('retries a 500 and delivers on the next attempt, with the same webhook-id both times', async () => {
        const { api } = await start();
        const rx = await receiver((_req, i) => (i === 0 ? { status: 500, body: 'database down' } : { status: 200 }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const [first, second] = await rx.waitFor(2);
        expect(headerOf(first as ReceivedRequest, 'webhook-id')).toBe(event.id);
        expect(headerOf(second as ReceivedRequest, 'webhook-id')).toBe(event.id);
        expect((second as ReceivedRequest).body).toBe((first as ReceivedRequest).body);

        const delivery = await api.settled(event.id, 'delivered', 2);
        expect(delivery.attempt_count).toBe(2);
        expect(delivery.attempts).toMatchObject([
          { number: 1, trigger: 'scheduled', status_code: 500, response_excerpt: 'database down' },
          { number: 2, trigger: 'scheduled', status_code: 200, error: null },
        ]);
      });

      it('logs a timeout when the receiver answers after the request timeout, and retries', async () => {
        // A short timeout, as timeouts are the subject. The first request is held open until the
        // end, so it times out however loaded the machine is.
        const { api } = await start({ requestTimeoutMs: 1000, retrySchedule: [0, 50, 50, 50, 50] });
        const held = gate();
        const rx = await receiver((_req, i) => (i === 0 ? { status: 200, until: held.promise } : { status: 200 }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'delivered');
        held.release();
        const attempts = delivery.attempts ?? [];
        expect(attempts[0]).toMatchObject({ number: 1, status_code: null, response_excerpt: null });
        expect(attempts[0]?.error).toMatch(/timeout/i);
        // The retries answer at once, yet on a loaded machine one may still miss the short timeout:
        // so no exact count, but every attempt before the last a timeout, and the last delivered.
        expect(attempts.length).toBeGreaterThanOrEqual(2);
        for (const attempt of attempts.slice(0, -1)) {
          expect(attempt).toMatchObject({ status_code: null, error: expect.stringMatching(/timeout/) });
        }
        expect(attempts.at(-1)).toMatchObject({ number: attempts.length, status_code: 200, error: null });
        // One request per attempt.
        expect(rx.requests).toHaveLength(attempts.length);
      });

      it('logs connection refused on every attempt and marks the delivery failed after the last one', async () => {
        const { api } = await start({ retrySchedule: [0, 50, 50] });
        const port = await closedPort();
        const sub = await api.subscribe(`http://127.0.0.1:${port}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'failed', 3);
        expect(delivery.attempt_count).toBe(3);
        expect(delivery.delivered_at).toBeNull();
        for (const attempt of delivery.attempts ?? []) {
          expect(attempt).toMatchObject({ status_code: null, error: 'connection refused', response_excerpt: null });
        }
        // Ordinary failures do not disable the subscription (only 410 or days of failure do).
        expect((await api.subscription(sub.id)).status).toBe('active');
      });

      it('does not follow a 301: the Location gets nothing, and the attempt is a failure that is retried', async () => {
        const { api } = await start({ retrySchedule: [0, 50, 50] });
        const elsewhere = await receiver();
        const rx = await receiver(() => ({ status: 301, headers: { location: `${elsewhere.url}/moved` } }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'failed', 3);
        for (const attempt of delivery.attempts ?? []) {
          expect(attempt.status_code).toBe(301);
          expect(attempt.error).toMatch(/redirect/);
        }
        expect(rx.requests).toHaveLength(3);
        expect(elsewhere.requests).toHaveLength(0);
      });

      it('disables the subscription on 410, fails the delivery, and queues nothing for it afterwards', async () => {
        const { api } = await start();
        const rx = await receiver(() => ({ status: 410, body: 'gone for good' }));
        const sub = await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'failed', 1);
        expect(delivery.attempts?.[0]).toMatchObject({ status_code: 410, response_excerpt: 'gone for good' });
        const disabled = await api.subscription(sub.id);
        expect(disabled.status).toBe('disabled');
        expect(disabled.disabled_reason).toMatch(/410/);

        const later = await api.published();
        expect(later.deliveries).toBe(0);
        expect(await api.deliveriesOf(`event_id=${later.id}`)).toEqual([]);
        await api.drained();
        expect(rx.requests).toHaveLength(1);
      });

      it('waits at least the Retry-After of a 429 before the next attempt, though the schedule says sooner', async () => {
        const { api } = await start({ retrySchedule: [0, 50, 50] });
        const rx = await receiver((_req, i) =>
          i === 0 ? { status: 429, headers: { 'retry-after': '1' }, body: 'slow down' } : { status: 200 },
        );
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const [first, second] = await rx.waitFor(2);
        // The schedule alone would retry after ~50 ms; Retry-After: 1 must hold it back a second.
        expect((second as ReceivedRequest).at - (first as ReceivedRequest).at).toBeGreaterThanOrEqual(950);
        const delivery = await api.settled(event.id, 'delivered', 2);
        expect(delivery.attempts?.[0]).toMatchObject({ status_code: 429, response_excerpt: 'slow down' });
      });

      it('waits at least the Retry-After of a 503 too, as the README promises for 429 and 503', async () => {
        const { api } = await start({ retrySchedule: [0, 50, 50] });
        const rx = await receiver((_req, i) =>
          i === 0 ? { status: 503, headers: { 'retry-after': '1' }, body: 'maintenance' } : { status: 200 },
        );
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const [first, second] = await rx.waitFor(2);
        // A lower bound only: a loaded machine makes the gap longer, never shorter.
        expect((second as ReceivedRequest).at - (first as ReceivedRequest).at).toBeGreaterThanOrEqual(950);
        const delivery = await api.settled(event.id, 'delivered', 2);
        expect(delivery.attempts?.[0]).toMatchObject({ status_code: 503, response_excerpt: 'maintenance' });
      });

      it('disables a subscription whose deliveries have failed for longer than disableAfterFailingMs', async () => {
        const { api } = await start({
          retrySchedule: [0, ...Array.from({ length: 40 }, () => 100)],
          disableAfterFailingMs: 300,
        });
        const rx = await receiver(() => ({ status: 503, body: 'maintenance' }));
        const sub = await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const disabled = await eventually('the subscription to be disabled', async () => {
          const s = await api.subscription(sub.id);
          return s.status === 'disabled' ? s : undefined;
        });
        expect(disabled.disabled_reason).toBe('every attempt failed for 300 ms');
        // Its unfinished delivery is held, not failed and not retried further.
        const delivery = await api.settled(event.id, 'held');
        expect(delivery.attempt_count).toBeGreaterThanOrEqual(2);
        expect(delivery.attempt_count).toBeLessThan(40);
        const seen = rx.requests.length;
        await api.drained();
        expect(rx.requests).toHaveLength(seen);
      });
    });

    describe('the account callback', () => {
      it('sends Basic, then Bearer, then no Authorization, and receives every event type of its account', async () => {
        const { api } = await start();
        const cb = await receiver();
        const subscriber = await receiver();
        await api.subscribe(`${subscriber.url}/hook`, 'document.signed');
        await api.registerCallback({
          callbackUrl: `${cb.url}/callback`,
          authType: 'Basic',
          username: 'integrations',
          password: 'p@ss:word',
        });

        const sent = await api.published('document.sent');
        const signed = await api.published('document.signed');
        const declined = await api.published('document.declined', { ...SIGNED_DATA, reason: 'wrong name' });
        expect([sent.deliveries, signed.deliveries, declined.deliveries]).toEqual([1, 2, 1]);
        const basic = await cb.waitFor(3);
        const expected = `Basic ${Buffer.from('integrations:p@ss:word').toString('base64')}`;
        for (const request of basic) {
          expect(headerOf(request, 'authorization')).toBe(expected);
          expect(request.url).toBe('/callback');
          expect(Object.keys(payloadOf(request))).toEqual(['event', 'timestamp', 'data', 'id']);
        }
        expect(new Set(basic.map((r) => payloadOf(r).id))).toEqual(new Set([sent.id, signed.id, declined.id]));
        expect(new Set(basic.map((r) => payloadOf(r).event))).toEqual(
          new Set(['document.sent', 'document.signed', 'document.declined']),
        );
        await subscriber.waitFor(1);
        const callbackDelivery = (await api.deliveriesOf(`event_id=${sent.id}`))[0];
        expect(callbackDelivery).toMatchObject({ target: 'callback', subscription_id: null });

        await api.registerCallback({ callbackUrl: `${cb.url}/callback`, authType: 'Bearer', bearerToken: 'tok_123' });
        await api.published('document.sent');
        const [, , , bearer] = await cb.waitFor(4);
        expect(headerOf(bearer as ReceivedRequest, 'authorization')).toBe('Bearer tok_123');

        await api.registerCallback({ callbackUrl: `${cb.url}/callback`, authType: 'None' });
        await api.published('document.sent');
        const [, , , , none] = await cb.waitFor(5);
        expect((none as ReceivedRequest).headers.authorization).toBeUndefined();
      });
    });

    describe('publishing', () => {
      it('answers the same event for a repeated Idempotency-Key and delivers it once; 422 for another body', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        await api.subscribe(`${rx.url}/hook`);
        const headers = { 'idempotency-key': 'order-42' };
        const first = await api.publish('document.signed', SIGNED_DATA, { headers });
        const again = await api.publish('document.signed', SIGNED_DATA, { headers });
        expect(first.statusCode).toBe(202);
        expect(again.statusCode).toBe(202);
        expect(first.headers['idempotent-replayed']).toBeUndefined();
        expect(again.headers['idempotent-replayed']).toBe('true');
        expect(again.json()).toEqual(first.json());

        const other = await api.publish('document.signed', { ...SIGNED_DATA, document_id: 'doc_other' }, { headers });
        expect(other.statusCode).toBe(422);
        expect(other.json().error.code).toBe('idempotency_key_reused');

        // Two at once with a new key land in the same group commit: still one event.
        const both = await Promise.all([
          api.publish('document.signed', SIGNED_DATA, { headers: { 'idempotency-key': 'order-43' } }),
          api.publish('document.signed', SIGNED_DATA, { headers: { 'idempotency-key': 'order-43' } }),
        ]);
        expect(both.map((r) => r.statusCode)).toEqual([202, 202]);
        expect(both[0]?.json().id).toBe(both[1]?.json().id);
        expect(both.filter((r) => r.headers['idempotent-replayed'] === 'true')).toHaveLength(1);

        await rx.waitFor(2);
        await api.settled(first.json().id, 'delivered');
        await api.settled(both[0]?.json().id, 'delivered');
        await api.drained();
        expect(rx.requests.map((r) => payloadOf(r).id).sort()).toEqual([first.json().id, both[0]?.json().id].sort());
        const events = await service.request({ method: 'GET', url: '/v1/events' });
        expect(events.json().events).toHaveLength(2);
      });

      it('refuses invalid events with a 400 that names the field', async () => {
        const { api } = await start();
        const badEmail = await api.publish('document.signed', { ...SIGNED_DATA, signer_email: 'not-an-email' });
        expect(badEmail.statusCode).toBe(400);
        expect(badEmail.json().error).toMatchObject({ code: 'validation_failed' });
        expect(badEmail.json().error.message).toContain('data.signer_email');

        const { document_id: _omitted, ...withoutDocument } = SIGNED_DATA;
        const missing = await api.publish('document.signed', withoutDocument);
        expect(missing.statusCode).toBe(400);
        expect(missing.json().error.message).toContain('data.document_id');

        const unknown = await api.publish('document.exploded');
        expect(unknown.statusCode).toBe(400);
        expect(unknown.json().error.message).toMatch(/^event\b/);

        const noData = await service?.request({
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.sent' },
        });
        expect(noData?.statusCode).toBe(400);
        expect(noData?.json().error.message).toMatch(/^data\b/);

        const events = await service?.request({ method: 'GET', url: '/v1/events' });
        expect(events?.json().events).toEqual([]);
      });

      it('lists events newest first with filters and cursor pagination, and shows one by id', async () => {
        const { service, api } = await start();
        const sent = await api.published('document.sent');
        const signed = await api.published('document.signed');
        const declined = await api.published('document.declined', { ...SIGNED_DATA, reason: 'typo' });

        const page1 = (await service.request({ method: 'GET', url: '/v1/events?limit=2' })).json();
        expect(page1.events.map((e: { id: string }) => e.id)).toEqual([declined.id, signed.id]);
        expect(page1.next_cursor).toEqual(expect.any(String));
        const page2 = (
          await service.request({ method: 'GET', url: `/v1/events?limit=2&cursor=${page1.next_cursor}` })
        ).json();
        expect(page2.events.map((e: { id: string }) => e.id)).toEqual([sent.id]);
        expect(page2.next_cursor).toBeNull();

        const onlySigned = (
          await service.request({ method: 'GET', url: '/v1/events?event_type=document.signed' })
        ).json();
        expect(onlySigned.events.map((e: { id: string }) => e.id)).toEqual([signed.id]);

        const one = await service.request({ method: 'GET', url: `/v1/events/${declined.id}` });
        expect(one.statusCode).toBe(200);
        expect(one.json()).toEqual({
          id: declined.id,
          event: 'document.declined',
          timestamp: declined.timestamp,
          data: { ...SIGNED_DATA, reason: 'typo' },
          created_at: expect.any(String),
          deliveries: 0,
          test: false,
        });
        const missing = await service.request({ method: 'GET', url: '/v1/events/evt_01JZZZZZZZZZZZZZZZZZZZZZZZ' });
        expect(missing.statusCode).toBe(404);
      });
    });

    describe('operating subscriptions and deliveries', () => {
      it('holds deliveries while paused, delivers them on resume, and cancels them on delete', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const sub = await api.subscribe(`${rx.url}/hook`);
        await api.patch(sub.id, { status: 'paused' });
        const a = await api.published();
        const b = await api.published();
        expect([a.deliveries, b.deliveries]).toEqual([1, 1]);
        // Nothing is left to send (held deliveries are not): had they been queued, they would have gone.
        await api.drained();
        expect(rx.requests).toHaveLength(0);
        expect((await api.deliveryOfEvent(a.id)).status).toBe('held');

        await api.patch(sub.id, { status: 'active' });
        const got = await rx.waitFor(2);
        expect(new Set(got.map((r) => payloadOf(r).id))).toEqual(new Set([a.id, b.id]));
        await api.settled(a.id, 'delivered', 1);
        await api.settled(b.id, 'delivered', 1);

        await api.patch(sub.id, { status: 'paused' });
        const c = await api.published();
        const deleted = await service.request({ method: 'DELETE', url: `/v1/webhooks/subscriptions/${sub.id}` });
        expect(deleted.statusCode).toBe(204);
        const cancelled = await api.deliveryOfEvent(c.id);
        expect(cancelled).toMatchObject({ status: 'cancelled', attempt_count: 0 });
        await api.drained();
        expect(rx.requests).toHaveLength(2);
        // A cancelled delivery cannot be redelivered.
        const redeliver = await service.request({ method: 'POST', url: `/v1/deliveries/${cancelled.id}/redeliver` });
        expect(redeliver.statusCode).toBe(409);
      });

      it('makes one more, manual attempt when a delivered delivery is redelivered', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivered = await api.settled(event.id, 'delivered', 1);

        const res = await service.request({ method: 'POST', url: `/v1/deliveries/${delivered.id}/redeliver` });
        expect(res.statusCode).toBe(202);
        const [first, second] = await rx.waitFor(2);
        expect(headerOf(second as ReceivedRequest, 'webhook-id')).toBe(event.id);
        expect((second as ReceivedRequest).body).toBe((first as ReceivedRequest).body);
        const after = await api.settled(event.id, 'delivered', 2);
        expect(after.attempts?.map((a) => [a.number, a.trigger, a.status_code])).toEqual([
          [1, 'scheduled', 200],
          [2, 'manual', 200],
        ]);
        await api.drained();
        expect(rx.requests).toHaveLength(2);
      });

      it('makes exactly one manual attempt when a redelivery fails: no retries on the schedule', async () => {
        const { service, api } = await start({ retrySchedule: [0, 50, 50, 50] });
        let failing = false;
        const rx = await receiver((req) =>
          failing && req.url === '/hook' ? { status: 500, body: 'down' } : { status: 200 },
        );
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivered = await api.settled(event.id, 'delivered', 1);

        failing = true;
        const res = await service.request({ method: 'POST', url: `/v1/deliveries/${delivered.id}/redeliver` });
        expect(res.statusCode).toBe(202);
        await rx.waitFor(2);
        const afterManual = await eventually('the manual attempt to be logged', async () => {
          const d = await api.delivery(delivered.id);
          // The row and its attempts are read apart: the status may lag the log by a moment.
          return (d.attempts?.length ?? 0) >= 2 && d.status !== 'sending' ? d : undefined;
        });
        // Had the manual attempt been put on the schedule, its retries would be pending until spent.
        await api.drained();
        const final = await api.delivery(delivered.id);
        expect(final.attempts?.map((a) => [a.number, a.trigger, a.status_code])).toEqual([
          [1, 'scheduled', 200],
          [2, 'manual', 500],
        ]);
        expect(final.status).toBe(afterManual.status);
        expect(rx.requests.filter((r) => r.url === '/hook')).toHaveLength(2);
      });

      it('re-queues a failed delivery on replay and delivers it once the receiver works', async () => {
        const { service, api } = await start({ retrySchedule: [0, 50] });
        let healthy = false;
        const rx = await receiver(() => (healthy ? { status: 200 } : { status: 500 }));
        const sub = await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await api.settled(event.id, 'failed', 2);

        const replay = (body: Record<string, string>) =>
          service.request({ method: 'POST', url: `/v1/webhooks/subscriptions/${sub.id}/replay`, payload: body });
        const anHourAgo = new Date(Date.now() - 3_600_000).toISOString();
        const aDayAgo = new Date(Date.now() - 86_400_000).toISOString();
        const outside = await replay({ since: aDayAgo, until: anHourAgo });
        expect(outside.statusCode).toBe(202);
        expect(outside.json()).toEqual({ requeued: 0 });

        healthy = true;
        const inside = await replay({ since: anHourAgo });
        expect(inside.statusCode).toBe(202);
        expect(inside.json()).toEqual({ requeued: 1 });
        const delivery = await api.settled(event.id, 'delivered', 3);
        expect(delivery.attempts?.map((a) => a.status_code)).toEqual([500, 500, 200]);
        expect(rx.requests.map((r) => headerOf(r, 'webhook-id'))).toEqual([event.id, event.id, event.id]);

        expect((await replay({ since: anHourAgo })).json()).toEqual({ requeued: 0 });
        const bad = await replay({ since: 'yesterday' });
        expect(bad.statusCode).toBe(400);
        expect(bad.json().error.message).toContain('since');
      });

      it('sends a test event to that one subscription only, marked as a test, and shows it in the log', async () => {
        const { service, api } = await start();
        const target = await receiver();
        const bystander = await receiver();
        const sub = await api.subscribe(`${target.url}/hook`);
        await api.subscribe(`${bystander.url}/hook`);

        const res = await service.request({ method: 'POST', url: `/v1/webhooks/subscriptions/${sub.id}/test` });
        expect(res.statusCode).toBe(202);
        const { event_id: eventId, deliveries } = res.json();
        expect(deliveries).toBe(1);
        const [got] = await target.waitFor(1);
        expect(payloadOf(got as ReceivedRequest)).toMatchObject({ event: 'document.signed', id: eventId, test: true });
        expect(headerOf(got as ReceivedRequest, 'webhook-id')).toBe(eventId);

        const delivery = await api.settled(eventId, 'delivered', 1);
        expect(delivery.subscription_id).toBe(sub.id);
        const shown = await service.request({ method: 'GET', url: `/v1/events/${eventId}` });
        expect(shown.statusCode).toBe(200);
        expect(shown.json()).toMatchObject({ id: eventId, event: 'document.signed', deliveries: 1, test: true });
        // Test events stay out of the event list unless asked for.
        const listed = (await service.request({ method: 'GET', url: '/v1/events' })).json();
        expect(listed.events.map((e: { id: string }) => e.id)).not.toContain(eventId);
        const withTests = (await service.request({ method: 'GET', url: '/v1/events?include_tests=true' })).json();
        expect(withTests.events.map((e: { id: string }) => e.id)).toContain(eventId);
        const logged = await api.deliveriesOf(`subscription_id=${sub.id}`);
        expect(logged.map((d) => d.event_id)).toEqual([eventId]);

        await api.drained();
        expect(bystander.requests).toHaveLength(0);
      });
    });

    describe('stopping', () => {
      it('waits for a send in flight when stopped and records its result', async () => {
        // A grace longer than the test: whatever the load, the answer comes within it.
        const { service, api } = await start({ shutdownGraceMs: 60_000 });
        const held = gate();
        const rx = await receiver(() => ({ status: 200, body: 'late but fine', until: held.promise }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await rx.waitFor(1);
        // In flight when the stop begins; answered only after.
        const stopping = service.dispatcher?.stop();
        held.release();
        await stopping;
        const delivery = await api.deliveryOfEvent(event.id);
        expect(delivery.status).toBe('delivered');
        expect(delivery.attempts).toMatchObject([{ number: 1, status_code: 200, response_excerpt: 'late but fine' }]);
      });

      it('hands a send still running at the shutdown deadline back to the queue', async () => {
        const { service, api } = await start({ shutdownGraceMs: 200 });
        // Never answered: the send is still running at the deadline, however late that comes.
        const rx = await receiver(() => ({ status: 200, until: gate().promise }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await rx.waitFor(1);
        await service.dispatcher?.stop();
        // The aborted send has ended and been let go: nothing of it can be written after this.
        await service.dispatcher?.idle();
        const delivery = await api.deliveryOfEvent(event.id);
        // Handed back as if never tried: no attempt counted, and none logged for the aborted send.
        expect(delivery).toMatchObject({ status: 'pending', attempt_count: 0, attempts: [] });
      });
    });
  });
});
