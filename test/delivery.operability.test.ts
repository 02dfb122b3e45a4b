// The engine's operability, end to end on every dialect, against real receivers on loopback:
// deliveries that never hide (a key that does not open a secret, an answer the database cannot
// store, a send slower than the lease), the headers a receiver needs to pick its secret, callback
// signing, and what an operator sees: log lines for failures, disablements and takeovers, the
// access log, and the queue in /metrics.
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { type DispatcherConfig, loadConfig } from '../src/config.js';
import { Dispatcher } from '../src/delivery/dispatcher.js';
import type { LeaseKeeper } from '../src/delivery/lease-keeper.js';
import { SecretBox, subscriptionSeal } from '../src/domain/secret-box.js';
import { Metrics } from '../src/metrics.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { apiOf, eventually, headerOf, payloadOf, sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { captureLogs, LEVEL, type LogCapture } from './helpers/log-capture.js';
import { gate, type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService, type TestServiceOptions } from './helpers/service.js';

/**
 * The dispatcher's lease keeper, whose renew(now) is there for tests: the dispatcher gives no
 * handle to it, and a lease is only played without the clock by calling it with a `now`.
 */
function leaseKeeperOf(dispatcher: Dispatcher): LeaseKeeper {
  return (dispatcher as unknown as { leases: LeaseKeeper }).leases;
}

describe.each(DIALECTS)('delivery operability on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    const services: TestService[] = [];
    const receivers: Receiver[] = [];
    let logs: LogCapture;

    async function start(dispatcher: Partial<DispatcherConfig> = {}, options: TestServiceOptions = {}) {
      logs = captureLogs();
      const service = await startTestService(dialect, {
        logger: logs.logger,
        dispatcher: { retrySchedule: [0, 100, 200], ...dispatcher },
        ...options,
      });
      services.push(service);
      return { service, api: apiOf(service) };
    }

    async function receiver(responder?: Responder): Promise<Receiver> {
      const r = await startReceiver(responder);
      receivers.push(r);
      return r;
    }

    /** Runs SQL over a connection of its own, as a hand-written statement by an operator would. */
    async function rawSql(service: TestService, statement: ReturnType<typeof sql>): Promise<void> {
      const direct = openDialect(parseDatabaseUrl(service.database.url));
      try {
        await statement.execute(direct.db);
      } finally {
        await direct.close();
      }
    }

    afterEach(async () => {
      for (const service of services.splice(0)) await service.close();
      await Promise.all(receivers.splice(0).map((r) => r.close()));
    });

    describe('one endpoint for many event types', () => {
      it('sends every type to one subscription with one secret, naming the subscription in a header', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const res = await service.request({
          method: 'POST',
          url: '/v1/webhooks/subscriptions',
          payload: {
            target_url: `${rx.url}/all`,
            event_types: ['document.sent', 'document.signed', 'document.declined'],
            secret_token: 'shhh',
          },
        });
        expect(res.statusCode, res.body).toBe(200);
        const sub = res.json().subscriptions[0];
        expect(sub).toMatchObject({ event_types: ['document.sent', 'document.signed', 'document.declined'] });
        expect(sub).not.toHaveProperty('event_type');

        for (const type of ['document.sent', 'document.signed', 'document.declined']) await api.published(type);
        const got = await rx.waitFor(3);
        const verifier = new Webhook(sub.signing_secret);
        for (const request of got) {
          expect(headerOf(request, 'webhook-subscription-id')).toBe(sub.id);
          verifier.verify(request.body, request.headers as Record<string, string>);
        }
        expect(got.map((r) => payloadOf(r).event).sort()).toEqual([
          'document.declined',
          'document.sent',
          'document.signed',
        ]);
      });
    });

    describe('callback signing', () => {
      it('signs callback deliveries the Standard Webhooks way once the account has a secret, even with authType None', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const register = { callbackUrl: `${rx.url}/cb`, authType: 'None' };
        const put = await service.request({ method: 'PUT', url: '/api/sign/v1/callback/register', payload: register });
        expect(put.json()).toEqual(register);
        await api.published();
        const [unsigned] = await rx.waitFor(1);
        expect(headerOf(unsigned as never, 'webhook-signature')).toBeUndefined();
        expect(headerOf(unsigned as never, 'webhook-subscription-id')).toBeUndefined();

        const rotated = await service.request({ method: 'POST', url: '/api/sign/v1/callback/rotate-secret' });
        expect(rotated.statusCode, rotated.body).toBe(200);
        const { signing_secret: secret } = rotated.json();
        expect(secret).toMatch(/^whsec_/);
        // The seed's echo is unchanged by the secret.
        const again = await service.request({
          method: 'PUT',
          url: '/api/sign/v1/callback/register',
          payload: register,
        });
        expect(again.json()).toEqual(register);
        const event = await api.published();
        const [, signed] = await rx.waitFor(2);
        const verified = new Webhook(secret).verify(signed?.body ?? '', signed?.headers as Record<string, string>);
        expect(verified).toMatchObject({ id: event.id, event: 'document.signed' });
      });
    });

    describe('deliveries never hide', () => {
      it('logs a send whose secret will not open (a wrong master key) as failed attempts, retried, then failed', async () => {
        const wrongKey = new SecretBox(randomBytes(32));
        const { service, api } = await start({}, { secrets: wrongKey });
        const rx = await receiver();
        const sub = await api.subscribe(`${rx.url}/hook`);
        // The subscription's secrets were sealed under another key than the dispatcher holds now.
        const other = new SecretBox(randomBytes(32));
        await rawSql(
          service,
          sql`update subscriptions set signing_secret_sealed = ${other.seal('whsec_c2VjcmV0', subscriptionSeal('signing_secret', { id: sub.id, account_id: service.accountId }))} where id = ${sub.id}`,
        );
        const event = await api.published();
        const delivery = await api.settled(event.id, 'failed', 3);
        expect(delivery.attempts?.map((a) => a.error)).toEqual([
          expect.stringContaining('the request could not be prepared: secret was sealed under another master key'),
          expect.stringContaining('could not be prepared'),
          expect.stringContaining('could not be prepared'),
        ]);
        expect(delivery.attempts?.every((a) => a.status_code === null)).toBe(true);
        expect(rx.requests).toHaveLength(0);
        expect(logs.matching('delivery failed').map((l) => l.level)).toEqual([LEVEL.error]);
      });

      it('never signs with a signing secret copied in from another account’s subscription, and logs why', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const mine = await api.subscribe(`${rx.url}/mine`);
        const globex = await service.tokenFor('globex');
        const created = await service.request({
          method: 'POST',
          url: '/v1/webhooks/subscriptions',
          token: globex.token,
          payload: { target_url: `${rx.url}/theirs`, event_type: 'document.signed' },
        });
        expect(created.statusCode, created.body).toBe(200);
        const theirs = created.json().subscriptions[0] as { id: string };
        // As someone with write access to the database but no master key would: the other
        // account's sealed secret, copied whole into this account's row.
        await rawSql(
          service,
          sql`update subscriptions set signing_secret_sealed = (select s.signing_secret_sealed from subscriptions as s where s.id = ${theirs.id}) where id = ${mine.id}`,
        );
        const event = await api.published();
        const delivery = await api.settled(event.id, 'failed', 3);
        expect(delivery.attempts?.map((a) => a.error)).toEqual([
          expect.stringContaining('the request could not be prepared: secret does not open here'),
          expect.stringContaining('could not be prepared'),
          expect.stringContaining('could not be prepared'),
        ]);
        expect(rx.requests.filter((r) => r.url === '/mine')).toHaveLength(0);
      });

      it('delivers and logs an answer holding NUL characters, which PostgreSQL text cannot store', async () => {
        const { api } = await start();
        const rx = await receiver(() => ({ status: 200, body: 'ok\u0000done' }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        const delivery = await api.settled(event.id, 'delivered', 1);
        expect(delivery.attempts?.[0]?.response_excerpt).toBe('ok\uFFFDdone');
      });

      it('logs an attempt the database refuses to store in full without its answer, and moves its delivery on', async () => {
        const { service, api } = await start();
        // A constraint refusing attempts with an excerpt for status 599: a row that cannot be written.
        await rawSql(
          service,
          dialect.name === 'sqlite'
            ? sql`create trigger refuse_599 before insert on attempts when new.status_code = 599 and new.response_excerpt is not null
                begin select raise(abort, 'refused by the test'); end`
            : sql`create function refuse_599() returns trigger language plpgsql as $$
                begin if new.status_code = 599 and new.response_excerpt is not null then
                  raise exception 'refused by the test'; end if; return new; end $$;
                create trigger refuse_599 before insert on attempts for each row execute function refuse_599();`,
        );
        const bad = await receiver(() => ({ status: 599, body: 'odd' }));
        const good = await receiver();
        await api.subscribe(`${bad.url}/hook`);
        await api.subscribe(`${good.url}/hook`);
        const event = await api.published();
        const deliveries = await eventually('both deliveries to settle', async () => {
          const list = await api.deliveriesOf(`event_id=${event.id}`);
          return list.every((d) => d.status === 'delivered' || d.status === 'failed') ? list : undefined;
        });
        const toBad = deliveries.find((d) => d.status === 'failed');
        const toGood = deliveries.find((d) => d.status === 'delivered');
        expect(toGood).toBeDefined();
        const logged = await api.delivery(toBad?.id ?? '');
        expect(logged.attempts).toHaveLength(3);
        for (const attempt of logged.attempts ?? []) {
          expect(attempt).toMatchObject({ status_code: 599, response_excerpt: null });
          expect(attempt.error).toContain('the attempt could not be logged in full');
          expect(attempt.error).toContain('refused by the test');
        }
      });

      it('sends a delivery slower than the lease once: the lease is renewed while the send is in flight', async () => {
        // Time is not left to the clock: the lease is long, the send is held open, and the lease's
        // passing is played with explicit times, through the dispatcher's lease keeper and a claim
        // as another process would make it.
        const leaseMs = 60_000;
        const { service, api } = await start({ leaseMs });
        const held = gate();
        const rx = await receiver(() => ({ status: 200, body: 'slow but fine', until: held.promise }));
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await rx.waitFor(1);
        // Claimed before now: its lease ends before now + leaseMs.
        const now = Date.now();
        // Past half the lease, the keeper renews what it holds, to that time + leaseMs.
        await leaseKeeperOf(service.dispatcher as Dispatcher).renew(now + 0.6 * leaseMs);
        // Past the first lease, within the renewed one: another process's claim takes nothing.
        expect(await service.store.claimDueDeliveries('another-host:1:abc', 10, now + 1.5 * leaseMs, leaseMs)).toEqual(
          [],
        );
        held.release();
        const delivery = await api.settled(event.id, 'delivered', 1);
        await api.drained();
        expect(rx.requests).toHaveLength(1);
        expect(delivery).toMatchObject({ attempt_count: 1, attempts: [{ number: 1, status_code: 200 }] });
        expect(logs.matching('took over')).toEqual([]);
      });
    });

    describe('what an operator sees in the logs', () => {
      it('logs each failed attempt at warn, the delivery out of attempts at error, with where and why', async () => {
        const { api } = await start();
        const rx = await receiver(() => ({ status: 503, body: 'down' }));
        const sub = await api.subscribe(`${rx.url}/hook?token=do-not-log-me`);
        const event = await api.published();
        await api.settled(event.id, 'failed', 3);
        const failed = logs.matching('delivery attempt failed');
        expect(failed.map((l) => l.level)).toEqual([LEVEL.warn, LEVEL.warn]);
        expect(failed[0]).toMatchObject({
          subscription: sub.id,
          event: event.id,
          target_host: new URL(rx.url).host,
          status: 503,
          attempt: 1,
          next_attempt_at: expect.stringMatching(/Z$/),
        });
        expect(failed[0]?.msg).toContain('HTTP 503');
        const out = logs.matching('delivery failed');
        expect(out).toHaveLength(1);
        expect(out[0]).toMatchObject({ level: LEVEL.error, attempt: 3, subscription: sub.id, status: 503 });
        expect(JSON.stringify(logs.lines())).not.toContain('do-not-log-me');
      });

      it('logs a subscription disabled by a 410, and why', async () => {
        const { api } = await start();
        const rx = await receiver(() => ({ status: 410, body: 'gone' }));
        const sub = await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await api.settled(event.id, 'failed', 1);
        await eventually('the disabled line', async () =>
          logs.matching('subscription disabled')[0] ? true : undefined,
        );
        expect(logs.matching('subscription disabled')[0]).toMatchObject({
          level: LEVEL.warn,
          subscription: sub.id,
          reason: 'the receiver answered 410 Gone',
          target_host: new URL(rx.url).host,
        });
      });

      it('logs a lease taken over from a process that stopped', async () => {
        const { service, api } = await start({}, { dispatcher: false });
        const rx = await receiver();
        await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        // A process that claimed it and died: its lease runs out in 200 ms.
        const [claimed] = await service.store.claimDueDeliveries('dead-host:1234:abc', 10, Date.now(), 200);
        expect(claimed?.eventId).toBe(event.id);
        const dispatcher = new Dispatcher(
          service.store,
          service.secrets,
          { ...loadConfig({}, {}).dispatcher, pollIntervalMs: 100 },
          logs.logger,
          { targetPolicy: { allowInsecure: true } },
        );
        await dispatcher.start();
        try {
          await api.settled(event.id, 'delivered');
        } finally {
          await dispatcher.stop();
        }
        const line = logs.matching('took over')[0];
        expect(line).toMatchObject({
          level: LEVEL.warn,
          count: 1,
          from: ['dead-host:1234:abc'],
          deliveries: [claimed?.id],
        });
      });

      it('writes one access-log line per request, with the route, status, time and account', async () => {
        const { service, api } = await start();
        await api.published();
        await service.request({ method: 'GET', url: '/v1/deliveries?limit=1' });
        await service.request({ method: 'GET', url: '/v1/nothing-here' });
        await service.request({ method: 'GET', url: '/healthz' });
        const lines = logs.lines().filter((l) => typeof l.route === 'string' || typeof l.path === 'string');
        expect(lines.map((l) => [l.level, l.method, l.route ?? l.path, l.status])).toEqual([
          [LEVEL.info, 'POST', '/v1/events', 202],
          [LEVEL.info, 'GET', '/v1/deliveries', 200],
          [LEVEL.info, 'GET', '/v1/nothing-here', 404],
          [LEVEL.debug, 'GET', '/healthz', 200],
        ]);
        expect(lines[0]).toMatchObject({ account: service.accountId, ms: expect.any(Number) });
        expect(lines[0]?.msg).toMatch(/^POST \/v1\/events 202 [\d.]+ ms$/);
      });
    });

    describe('the queue in /metrics', () => {
      it('shows what is due, how long the oldest has waited, and deliveries by status', async () => {
        const metrics = new Metrics({ defaults: false });
        const { service, api } = await start({}, { metrics });
        metrics.queue(service.store);
        const rx = await receiver();
        const paused = await api.subscribe(`${rx.url}/paused`);
        await api.patch(paused.id, { status: 'paused' });
        await api.subscribe(`${rx.url}/waiting`);
        // No dispatcher running: what is published stays due.
        await service.dispatcher?.stop();
        await api.published();
        await api.published();
        // A wait for the clock, not a race: the oldest due delivery's age must pass a second.
        await sleep(1100);
        const text = (await service.request({ method: 'GET', url: '/metrics', token: null })).body;
        expect(text).toMatch(/^countersign_deliveries\{status="held"\} 2$/m);
        expect(text).toMatch(/^countersign_deliveries\{status="pending"\} 2$/m);
        expect(text).toMatch(/^countersign_deliveries\{status="failed"\} 0$/m);
        expect(text).toMatch(/^countersign_deliveries_due 2$/m);
        const age = Number(/^countersign_oldest_due_delivery_age_seconds ([\d.]+)$/m.exec(text)?.[1]);
        expect(age).toBeGreaterThanOrEqual(1);
        expect(age).toBeLessThan(60);
        expect(text).not.toContain(paused.id);
      });
    });
  });
});
