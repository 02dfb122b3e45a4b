// Listen sessions, the API behind `countersign listen`, on every dialect, over loopback: a real
// server-sent-events stream carries each delivery signed exactly as a subscription's would be, the
// reported local answer is the attempt in the delivery log, failures are retried, unanswered sends
// come back on the next stream, a newer stream replaces an older one, and ending the session
// cancels what it has not delivered. The SSRF guard stays in its secure default throughout: the
// server makes no outbound connection for a listen session.
import { verifyWebhook } from '@countersign/verify';
import { afterEach, describe, expect, it } from 'vitest';
import { type DeliveryView, eventually, SIGNED_DATA } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError, expectFieldError } from './helpers/expect-error.js';
import { startTestService, type TestService, type TestServiceOptions } from './helpers/service.js';

const SESSIONS = '/v1/listen/sessions';

interface Session {
  id: string;
  event_types: string[];
  signing_secret: string;
  stream_url: string;
  created_at: string;
}

interface StreamEvent {
  event: string;
  data: Record<string, unknown>;
}

interface Delivery {
  delivery_id: string;
  attempt: number;
  event_id: string;
  event_type: string;
  headers: Record<string, string>;
  body: string;
}

/** A real SSE client: every event the stream carried, in order, and a way to wait for the next of a kind. */
async function openStream(url: string, token: string) {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  const events: StreamEvent[] = [];
  const taken = new Set<number>();
  let ended = false;
  void (async () => {
    if (!response.ok || !response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      const reader = response.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
          const data = /^data: (.*)$/m.exec(block)?.[1] ?? '{}';
          events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    } catch {
      // aborted by the test
    } finally {
      ended = true;
    }
  })();
  return {
    status: response.status,
    response,
    events,
    /** Resolves once the server has ended the stream. */
    closed: () => eventually('the stream to close', async () => (ended ? true : undefined), 10_000),
    /** The next event of this kind not taken yet. */
    async next<T = Record<string, unknown>>(kind: string, timeoutMs = 10_000): Promise<T> {
      const index = await eventually(
        `a "${kind}" event (got ${events.map((e) => e.event).join(', ') || 'none'})`,
        async () => {
          const i = events.findIndex((e, n) => e.event === kind && !taken.has(n));
          return i === -1 ? undefined : i;
        },
        timeoutMs,
      );
      taken.add(index);
      return events[index]?.data as T;
    },
    close: () => controller.abort(),
  };
}

describe.each(DIALECTS)('listen sessions on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const streams: { close(): void }[] = [];

    async function start(options: TestServiceOptions = {}) {
      // The secure default: no loopback or private targets; a listen session needs none.
      service = await startTestService(dialect, {
        allowInsecureTargets: false,
        ...options,
        listen: { retrySchedule: [0, 200], ...options.listen },
      });
      const base = await service.app.listen({ port: 0, host: '127.0.0.1' });
      const s = service;
      const call = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object, token?: string) =>
        s.request({ method, url, ...(payload === undefined ? {} : { payload }), ...(token ? { token } : {}) });
      const open = async (body: object = {}, token?: string): Promise<Session> => {
        const res = await call('POST', SESSIONS, body, token);
        expect(res.statusCode, res.body).toBe(200);
        return res.json() as Session;
      };
      const stream = async (session: Session, token = s.token) => {
        const opened = await openStream(`${base}${new URL(session.stream_url).pathname}`, token);
        streams.push(opened);
        return opened;
      };
      const publish = async (event = 'document.signed', data: object = SIGNED_DATA) => {
        const res = await call('POST', '/v1/events', { event, data });
        expect(res.statusCode, res.body).toBe(202);
        return res.json() as { id: string; deliveries: number };
      };
      const answer = (session: Session, body: Record<string, unknown>) =>
        call('POST', `${SESSIONS}/${session.id}/answers`, {
          forwarded_to: 'http://localhost:3000/webhooks',
          duration_ms: 7,
          ...body,
        });
      const deliveryLog = async (id: string) => {
        const res = await call('GET', `/v1/deliveries/${id}`);
        expect(res.statusCode, res.body).toBe(200);
        return res.json() as DeliveryView;
      };
      return { service: s, base, call, open, stream, publish, answer, deliveryLog };
    }

    afterEach(async () => {
      for (const s of streams.splice(0)) s.close();
      await service?.close();
      service = undefined;
    });

    it('opens one session per token, with the same id and signing secret on every run, hidden from subscriptions', async () => {
      const { call, open, service: s } = await start();
      const first = await open({ event_types: ['document.signed'] });
      expect(first).toMatchObject({
        id: expect.stringMatching(/^lsn_/),
        event_types: ['document.signed'],
        signing_secret: expect.stringMatching(/^whsec_/),
        stream_url: `http://localhost${SESSIONS}/${first.id}/stream`,
      });
      const again = await open();
      expect(again).toMatchObject({ id: first.id, signing_secret: first.signing_secret });
      expect(again.event_types).toEqual([
        'document.sent',
        'document.signed',
        'document.declined',
        'document.completed',
      ]);
      const otherToken = await s.tokenFor('acme');
      const other = await open({}, otherToken.token);
      expect(other.id).not.toBe(first.id);
      expect(other.signing_secret).not.toBe(first.signing_secret);

      const list = await call('GET', '/v1/webhooks/subscriptions');
      expect(list.json().subscriptions).toEqual([]);
      expect((await call('GET', `/v1/webhooks/subscriptions/${first.id}`)).statusCode).toBe(404);
      // Another account's token cannot reach it.
      const globex = await s.tokenFor('globex');
      const foreign = await call('GET', `${SESSIONS}/${first.id}/stream`, undefined, globex.token);
      expectError(foreign, 404, 'not_found');
      expect((await call('DELETE', `${SESSIONS}/${first.id}`, undefined, globex.token)).statusCode).toBe(404);
    });

    it('refuses bad input with a 400 and a read-only token with a 403, changing nothing', async () => {
      const { call, service: s } = await start();
      expectFieldError(await call('POST', SESSIONS, { event_types: ['document.opened'] }), 'event_types');
      expectFieldError(await call('POST', SESSIONS, { event_types: [] }), 'event_types');
      expectError(await call('POST', SESSIONS, { forward_to: 'x' }), 400, 'validation_failed');
      const reader = await s.tokenFor('acme', { scopes: ['read'] });
      expectError(await call('POST', SESSIONS, {}, reader.token), 403, 'forbidden');
      const session = (await call('POST', SESSIONS, {})).json() as Session;
      expectFieldError(
        await call('POST', `${SESSIONS}/${session.id}/answers`, { delivery_id: 'dlv_x', attempt: 1 }),
        'forwarded_to',
      );
      expectError(await call('POST', `${SESSIONS}/${session.id}/heartbeat`, { beat: 1 }), 400, 'validation_failed');
    });

    it('streams each delivery signed as a subscription’s, and records the local answer as the attempt', async () => {
      const { open, stream, publish, answer, deliveryLog } = await start();
      const session = await open({ event_types: ['document.signed'] });
      const sse = await stream(session);
      expect(sse.status).toBe(200);
      expect(sse.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(await sse.next('ready')).toMatchObject({ session: session.id, event_types: ['document.signed'] });

      const skipped = await publish('document.sent');
      expect(skipped.deliveries).toBe(0);
      const published = await publish();
      expect(published.deliveries).toBe(1);
      const d = await sse.next<Delivery>('delivery');
      expect(d).toMatchObject({ event_id: published.id, event_type: 'document.signed', attempt: 1 });
      expect(d.headers['webhook-id']).toBe(published.id);
      const event = await verifyWebhook({ payload: d.body, headers: d.headers, secret: session.signing_secret });
      expect(event).toMatchObject({ event: 'document.signed', data: SIGNED_DATA });

      const ok = await answer(session, {
        delivery_id: d.delivery_id,
        attempt: 1,
        status_code: 200,
        response_headers: { 'content-type': 'text/plain' },
        response_excerpt: 'thanks',
      });
      expect(ok.statusCode, ok.body).toBe(204);
      const logged = await deliveryLog(d.delivery_id);
      expect(logged).toMatchObject({ status: 'delivered', target: 'listen', subscription_id: session.id });
      expect(logged.attempts).toEqual([
        expect.objectContaining({
          number: 1,
          status_code: 200,
          duration_ms: 7,
          request_url: 'http://localhost:3000/webhooks',
          response_excerpt: 'thanks',
        }),
      ]);
      // Answered once: a second report is refused and changes nothing.
      const twice = await answer(session, { delivery_id: d.delivery_id, attempt: 1, status_code: 500 });
      expectError(twice, 409, 'conflict');
      expect((await deliveryLog(d.delivery_id)).attempts).toHaveLength(1);
    });

    it('retries a local 500 and a refused connection like any failed attempt', async () => {
      const { open, stream, publish, answer, deliveryLog } = await start({ listen: { retrySchedule: [0, 100, 100] } });
      const session = await open();
      const sse = await stream(session);
      await publish();
      const first = await sse.next<Delivery>('delivery');
      expect(
        (
          await answer(session, {
            delivery_id: first.delivery_id,
            attempt: 1,
            status_code: 500,
            response_excerpt: 'boom',
          })
        ).statusCode,
      ).toBe(204);
      const second = await sse.next<Delivery>('delivery');
      expect(second).toMatchObject({ delivery_id: first.delivery_id, attempt: 2 });
      const refused = await answer(session, {
        delivery_id: second.delivery_id,
        attempt: 2,
        status_code: null,
        error: 'connection refused',
      });
      expect(refused.statusCode, refused.body).toBe(204);
      const third = await sse.next<Delivery>('delivery');
      expect(third).toMatchObject({ delivery_id: first.delivery_id, attempt: 3 });
      await answer(session, { delivery_id: third.delivery_id, attempt: 3, status_code: 503 });
      const log = await eventually('the delivery to fail for good', async () => {
        const view = await deliveryLog(first.delivery_id);
        return view.status === 'failed' ? view : undefined;
      });
      expect(log.attempts?.map((a) => [a.status_code, a.error])).toEqual([
        [500, null],
        [null, 'connection refused'],
        [503, null],
      ]);
    });

    it('sends again on the next stream what a closed stream left unanswered, counting no attempt', async () => {
      const { call, open, stream, publish, answer, deliveryLog } = await start();
      const session = await open();
      const first = await stream(session);
      await publish();
      const d = await first.next<Delivery>('delivery');
      first.close();
      await eventually('the server to see the stream gone', async () => {
        const res = await call('POST', `${SESSIONS}/${session.id}/heartbeat`);
        return res.statusCode === 409 ? true : undefined;
      });
      // Reported on no stream: refused, so the CLI knows it comes again.
      expectError(await answer(session, { delivery_id: d.delivery_id, attempt: 1, status_code: 200 }), 409, 'conflict');
      const second = await stream(session);
      const again = await second.next<Delivery>('delivery');
      expect(again).toMatchObject({ delivery_id: d.delivery_id, attempt: 1, event_id: d.event_id });
      expect((await deliveryLog(d.delivery_id)).attempts).toEqual([]);
      expect((await answer(session, { delivery_id: d.delivery_id, attempt: 1, status_code: 200 })).statusCode).toBe(
        204,
      );
      expect((await deliveryLog(d.delivery_id)).status).toBe('delivered');
    });

    it('keeps at most 10 deliveries unanswered on a stream, and writes the rest as answers come', async () => {
      const { open, stream, publish, answer } = await start({ listen: { pingMs: 50, pollMs: 50 } });
      const session = await open();
      const sse = await stream(session);
      for (let i = 0; i < 12; i++) await publish();
      const written: Delivery[] = [];
      for (let i = 0; i < 10; i++) written.push(await sse.next<Delivery>('delivery'));
      // Pings written after the tenth delivery, with polls between them: the hub has gone on
      // writing to this stream, and wrote no eleventh.
      const tenth = sse.events.length;
      await eventually('two pings after the tenth delivery', async () =>
        sse.events.slice(tenth).filter((e) => e.event === 'ping').length >= 2 ? true : undefined,
      );
      expect(sse.events.filter((e) => e.event === 'delivery')).toHaveLength(10);
      for (const d of written.slice(0, 2)) {
        await answer(session, { delivery_id: d.delivery_id, attempt: 1, status_code: 200 });
      }
      await sse.next<Delivery>('delivery');
      await sse.next<Delivery>('delivery');
      const ids = new Set(sse.events.filter((e) => e.event === 'delivery').map((e) => e.data.delivery_id));
      expect(ids.size).toBe(12);
    });

    it('answers heartbeats only while a stream is connected here', async () => {
      const { call, open, stream } = await start();
      const session = await open();
      expectError(await call('POST', `${SESSIONS}/${session.id}/heartbeat`), 409, 'conflict');
      const sse = await stream(session);
      await sse.next('ready');
      expect((await call('POST', `${SESSIONS}/${session.id}/heartbeat`)).statusCode).toBe(204);
    });

    it('pings every stream, and closes one the CLI has gone silent on', async () => {
      const { open, stream, call } = await start({ listen: { pingMs: 100, clientSilenceMs: 600 } });
      const session = await open();
      const sse = await stream(session);
      await sse.next('ping');
      await sse.closed();
      expectError(await call('POST', `${SESSIONS}/${session.id}/heartbeat`), 409, 'conflict');
    });

    it('counts a delivery the CLI never answers as a failed attempt, and sends it again', async () => {
      const { open, stream, publish, deliveryLog } = await start({ listen: { answerTimeoutMs: 300 } });
      const session = await open();
      const sse = await stream(session);
      await publish();
      const first = await sse.next<Delivery>('delivery');
      const second = await sse.next<Delivery>('delivery');
      expect(second).toMatchObject({ delivery_id: first.delivery_id, attempt: 2 });
      const [attempt] = (await deliveryLog(first.delivery_id)).attempts ?? [];
      expect(attempt).toMatchObject({ number: 1, status_code: null });
      expect(attempt?.error).toMatch(/reported no answer within/);
    });

    it('keeps a session to the token that opened it: another token of the account gets a 404, an admin may end it', async () => {
      const { service: s, call, open, stream } = await start();
      const session = await open();
      const sse = await stream(session);
      await sse.next('ready');
      const other = await s.tokenFor('acme', { scopes: ['read', 'write'] });
      const foreign = await stream(session, other.token);
      expect(foreign.status).toBe(404);
      const d = { delivery_id: 'dlv_x', attempt: 1, status_code: 200 };
      for (const [method, path, body] of [
        [
          'POST',
          `${SESSIONS}/${session.id}/answers`,
          { forwarded_to: 'http://localhost:3000/w', duration_ms: 1, ...d },
        ],
        ['POST', `${SESSIONS}/${session.id}/heartbeat`, undefined],
        ['DELETE', `${SESSIONS}/${session.id}`, undefined],
      ] as const) {
        expectError(await call(method, path, body, other.token), 404, 'not_found');
      }
      // Its own session is another one; the first one's stream never noticed a thing.
      expect((await open({}, other.token)).id).not.toBe(session.id);
      expect(sse.events.map((e) => e.event)).not.toContain('replaced');
      const admin = await s.tokenFor('acme');
      const ended = await call('DELETE', `${SESSIONS}/${session.id}`, undefined, admin.token);
      expect(ended.statusCode, ended.body).toBe(200);
      await sse.next('ended');
    });

    it('closes a stream once its token is revoked, telling it not to come back', async () => {
      const { service: s, open, stream } = await start({ listen: { tokenCheckMs: 50 } });
      const holder = await s.tokenFor('acme', { scopes: ['read', 'write'] });
      const session = await open({}, holder.token);
      const sse = await stream(session, holder.token);
      await sse.next('ready');
      await sse.next('ping', 300).catch(() => undefined);
      expect(sse.events.map((e) => e.event)).not.toContain('revoked');
      expect(await s.store.revokeToken(holder.id, Date.now())).toBe(true);
      expect(await sse.next('revoked')).toMatchObject({ message: expect.stringContaining('revoked') });
      await sse.closed();
      expect((await stream(session, holder.token)).status).toBe(401);
    });

    it('closes a stream once its token expires, and not before', async () => {
      const { service: s, open, stream } = await start({ listen: { tokenCheckMs: 50 } });
      const expiresAt = Date.now() + 1_500;
      const holder = await s.tokenFor('acme', { scopes: ['read', 'write'], expiresAt });
      const session = await open({}, holder.token);
      const sse = await stream(session, holder.token);
      expect(sse.status).toBe(200);
      await sse.next('ready');
      expect(await sse.next('revoked')).toMatchObject({ message: expect.stringContaining('expired') });
      // The server reads this process's clock, checking every 50 ms: told only once the expiry passed.
      expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
      await sse.closed();
      expect((await stream(session, holder.token)).status).toBe(401);
    });

    it('lets a newer stream take the session over, telling the older one', async () => {
      const { open, stream } = await start();
      const session = await open();
      const older = await stream(session);
      await older.next('ready');
      const newer = await stream(session);
      await newer.next('ready');
      expect(await older.next('replaced')).toMatchObject({ message: expect.stringContaining('another') });
      await older.closed();
      await newer.next('ping', 100).catch(() => undefined);
      expect(newer.events.some((e) => e.event === 'replaced')).toBe(false);
    });

    it('ends the session: its stream is told, its deliveries not yet made are cancelled, and it can be opened again', async () => {
      const { call, open, stream, publish, deliveryLog } = await start();
      const session = await open();
      const sse = await stream(session);
      await publish();
      const d = await sse.next<Delivery>('delivery');
      await publish();
      const ended = await call('DELETE', `${SESSIONS}/${session.id}`);
      expect(ended.statusCode, ended.body).toBe(200);
      expect(ended.json()).toEqual({ cancelled: 2 });
      expect(await sse.next('ended')).toMatchObject({ message: expect.any(String) });
      await sse.closed();
      expect((await deliveryLog(d.delivery_id)).status).toBe('cancelled');
      expect((await publish()).deliveries).toBe(0);
      expectError(await call('GET', `${SESSIONS}/${session.id}/stream`), 409, 'conflict');
      const reopened = await open();
      expect(reopened).toMatchObject({ id: session.id, signing_secret: session.signing_secret });
      expect((await publish()).deliveries).toBe(1);
    });

    it('closes its streams when the server stops, telling them to reconnect, and gives back what was unanswered', async () => {
      const { open, stream, publish, service: s } = await start();
      const session = await open();
      const sse = await stream(session);
      await publish();
      const d = await sse.next<Delivery>('delivery');
      await s.app.close();
      expect(await sse.next('closing')).toMatchObject({ message: expect.stringContaining('reconnect') });
      await sse.closed();
      const view = await s.store.getDelivery(s.accountId, d.delivery_id);
      expect(view).toMatchObject({ status: 'pending', lease_owner: null, listen: 1 });
    });
  });
});
