// Endpoint isolation end to end, on every dialect: the real store, API and dispatcher against real
// receivers on loopback, some of which never answer. Everything is asserted by counts and by what
// the delivery log and the API say, never by how long something took: a dead endpoint's sends are
// given a timeout longer than any test, so the only way the healthy receiver gets its webhooks is
// that the dead ones cannot hold the slots or the claimed buffer.
import { createServer, type Server, type Socket } from 'node:net';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { sql } from 'kysely';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { type DispatcherConfig, loadConfig } from '../src/config.js';
import { Dispatcher } from '../src/delivery/dispatcher.js';
import { Metrics } from '../src/metrics.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { apiOf, eventually, headerOf, SIGNED_DATA } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { offlineResolver, startTestService, type TestService } from './helpers/service.js';

/** A receiver that accepts connections, reads what comes and never answers. */
async function startSilentReceiver(): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let requests = 0;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => {
      // One request per "POST " seen: enough to count what arrived.
      requests += chunk.toString('latin1').split('POST ').length - 1;
    });
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const LIMITS: Partial<DispatcherConfig> = {
  maxConcurrency: 16,
  perOriginConcurrency: 16,
  claimBatchSize: 10,
  // Longer than any test: a silent receiver's sends never end while the test runs.
  requestTimeoutMs: 10 * 60_000,
  retrySchedule: [0, 100, 200],
};

describe.each(DIALECTS)('endpoint isolation end to end on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const receivers: Receiver[] = [];
    const silent: Awaited<ReturnType<typeof startSilentReceiver>>[] = [];
    const extra: { dispatcher: Dispatcher; store: Store }[] = [];

    async function start(dispatcher: Partial<DispatcherConfig>, metrics?: Metrics) {
      service = await startTestService(dialect, { dispatcher, ...(metrics ? { metrics } : {}) });
      return { service, api: apiOf(service) };
    }

    async function receiver(responder?: Responder): Promise<Receiver> {
      const r = await startReceiver(responder);
      receivers.push(r);
      return r;
    }

    async function silentReceiver() {
      const r = await startSilentReceiver();
      silent.push(r);
      return r;
    }

    afterEach(async () => {
      // The silent receivers first: their sends then end at once, and no stop waits out its grace for them.
      await Promise.all(silent.splice(0).map((r) => r.close()));
      for (const { dispatcher, store } of extra.splice(0)) {
        await dispatcher.stop();
        await store.close();
      }
      await service?.close();
      service = undefined;
      await Promise.all(receivers.splice(0).map((r) => r.close()));
    });

    /** Every distinct webhook-id a receiver got. */
    const idsAt = (r: Receiver) => new Set(r.requests.map((q) => headerOf(q, 'webhook-id')));

    for (const where of ['in the same account', 'in another account'] as const) {
      it(`delivers every event to a healthy endpoint while twelve endpoints ${where} never answer`, async () => {
        const { service, api } = await start({ ...LIMITS, circuit: { ...offBreaker() } });
        const healthy = await receiver();
        await api.subscribe(`${healthy.url}/hooks`);
        const neighbour = where === 'in the same account' ? service.token : (await service.tokenFor('noisy')).token;
        const dead: Awaited<ReturnType<typeof startSilentReceiver>>[] = [];
        for (let i = 0; i < 12; i++) {
          const r = await silentReceiver();
          dead.push(r);
          const res = await service.request({
            method: 'POST',
            url: '/v1/webhooks/subscriptions',
            token: neighbour,
            payload: { target_url: `${r.url}/hooks`, event_type: 'document.signed' },
          });
          expect(res.statusCode, res.body).toBe(200);
        }

        const events = 40;
        for (let i = 0; i < events; i++) {
          if (where === 'in another account') {
            const res = await service.request({
              method: 'POST',
              url: '/v1/events',
              token: neighbour,
              payload: { event: 'document.signed', data: { ...SIGNED_DATA, document_id: `noise_${i}` } },
            });
            expect(res.statusCode).toBe(202);
          }
          await api.published('document.signed', { ...SIGNED_DATA, document_id: `doc_${i}` });
        }

        // Every event reaches the healthy endpoint, each once, however many dead sends are pending.
        await eventually('every event at the healthy receiver', async () =>
          idsAt(healthy).size >= events ? true : undefined,
        );
        expect(healthy.requests).toHaveLength(events);
        // Its results are written in batches: the log catches up with the receiver.
        await eventually('every delivery logged as delivered', async () => {
          const delivered = await api.deliveriesOf('status=delivered&limit=100');
          return delivered.length === events ? true : undefined;
        });

        // The dead endpoints hold a bounded number of sockets: never more than the limit, plus twice as
        // many once their sends have gone unanswered a while (the slow sends' own pool).
        const held = () => dead.reduce((sum, r) => sum + r.requests(), 0);
        await eventually('the dead endpoints to have some sends', async () => (held() > 0 ? true : undefined));
        expect(held()).toBeLessThanOrEqual(3 * (LIMITS.maxConcurrency as number));
      });
    }

    it('opens the circuit after a run of 5xx, postpones the rest without attempts, probes and closes', async () => {
      const metrics = new Metrics({ defaults: false });
      // An hour's window: the circuit stays open while the test looks at it, and the window's end
      // is played through the database below, not waited for.
      const { service, api } = await start(
        {
          retrySchedule: [0, 50, 50, 50, 50, 50],
          circuit: { failureThreshold: 3, openMs: 60 * 60_000, maxOpenMs: 60 * 60_000, probeTimeoutMs: 5_000 },
        },
        metrics,
      );
      // As serve wires it: the queue's gauges read from the store at scrape time.
      metrics.queue(service.store);
      let healthy = false;
      const flaky = await receiver(() => (healthy ? { status: 200 } : { status: 503, body: 'down for maintenance' }));
      const watcher = await receiver();
      const sub = await api.subscribe(`${flaky.url}/hooks`);
      const res = await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions',
        payload: {
          target_url: `${watcher.url}/ops`,
          event_types: ['endpoint.circuit_opened', 'endpoint.circuit_closed'],
        },
      });
      expect(res.statusCode, res.body).toBe(200);

      const events = [];
      for (let i = 0; i < 8; i++) {
        events.push((await api.published('document.signed', { ...SIGNED_DATA, document_id: `doc_${i}` })).id);
      }
      const circuitOf = async () =>
        (await service.request({ method: 'GET', url: `/v1/webhooks/subscriptions/${sub.id}` })).json().subscriptions[0]
          .circuit;
      const opened = await eventually('the circuit to open', async () => {
        const c = await circuitOf();
        return c.state === 'open' ? c : undefined;
      });
      expect(opened).toMatchObject({ state: 'open', reason: 'HTTP 503', opened_at: expect.any(String) });
      // The metrics count it, and what it postponed.
      const scraped = await metrics.registry.metrics();
      expect(scraped).toMatch(/countersign_circuits\{state="open"\} 1/);
      expect(scraped).toMatch(/countersign_deliveries\{status="postponed"\} [1-9]/);
      expect(opened.consecutive_failures).toBeGreaterThanOrEqual(3);
      expect(Date.parse(opened.next_probe_at)).toBeGreaterThan(Date.parse(opened.opened_at));

      // While it is open, no delivery fails for good and none used its whole retry budget.
      const statuses = (await api.deliveriesOf(`subscription_id=${sub.id}&limit=50`)).map((d) => d.status);
      expect(statuses).not.toContain('failed');
      expect(statuses).toContain('postponed');

      healthy = true;
      // The window ends now: the dispatcher's poll finds it over and sends one delivery as the probe.
      const direct = openDialect(parseDatabaseUrl(service.database.url));
      try {
        await sql`update endpoint_circuits set retry_at = ${Date.now()} where endpoint = ${sub.id}`.execute(direct.db);
      } finally {
        await direct.close();
      }
      await eventually('the circuit to close', async () => ((await circuitOf()).state === 'closed' ? true : undefined));
      await eventually('every delivery delivered', async () => {
        const list = await api.deliveriesOf(`subscription_id=${sub.id}&limit=50`);
        return list.length === 8 && list.every((d) => d.status === 'delivered') ? true : undefined;
      });
      // Each event got through once; the faults were few, not each delivery's whole schedule.
      const ok = flaky.requests.filter((_, i) => i >= flaky.requests.length - 8);
      expect(new Set(ok.map((q) => headerOf(q, 'webhook-id')))).toEqual(new Set(events));
      const faults = flaky.requests.length - 8;
      expect(faults).toBeLessThan(8 * 6);

      // The account heard it open and close, and the metrics counted both.
      const heard = await watcher.waitFor(2);
      const types = heard.map((q) => JSON.parse(q.body).event).sort();
      expect(types).toEqual(['endpoint.circuit_closed', 'endpoint.circuit_opened']);
      const openedEvent = JSON.parse(heard.find((q) => q.body.includes('circuit_opened'))?.body ?? '{}');
      expect(openedEvent.data).toMatchObject({
        subscription_id: sub.id,
        target_url: `${flaky.url}/hooks`,
        state: 'open',
        reason: 'HTTP 503',
      });
      // Each matches the schema /openapi.json gives it, and not the other's.
      const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
      const ajv = addFormats.default(new Ajv2020({ strict: false }));
      const schemaOf = (type: string) => doc.webhooks[type].post.requestBody.content['application/json'].schema;
      for (const q of heard) {
        const payload = JSON.parse(q.body);
        const other =
          payload.event === 'endpoint.circuit_opened' ? 'endpoint.circuit_closed' : 'endpoint.circuit_opened';
        expect(ajv.validate(schemaOf(payload.event), payload), JSON.stringify(ajv.errors)).toBe(true);
        expect(ajv.validate(schemaOf(other), payload)).toBe(false);
      }
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/countersign_circuit_transitions_total\{transition="opened"\} 1/);
      expect(text).toMatch(/countersign_circuit_transitions_total\{transition="closed"\} 1/);
    });

    it('probes at once when asked, and refuses to when the circuit is closed', async () => {
      const { service, api } = await start({
        retrySchedule: [0, 50, 50, 50],
        circuit: { failureThreshold: 2, openMs: 60 * 60_000, maxOpenMs: 60 * 60_000, probeTimeoutMs: 5_000 },
      });
      let healthy = false;
      const flaky = await receiver(() => ({ status: healthy ? 200 : 500 }));
      const sub = await api.subscribe(`${flaky.url}/hooks`);
      const probe = () =>
        service.request({ method: 'POST', url: `/v1/webhooks/subscriptions/${sub.id}/circuit/probe` });
      const refused = await probe();
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error.message).toMatch(/closed/);

      for (let i = 0; i < 4; i++) await api.published('document.signed', { ...SIGNED_DATA, document_id: `doc_${i}` });
      // Open, and every first attempt's fault counted: none is in flight to land after the probe is
      // asked for (on PostgreSQL such a late fault can still put back the window the probe ended).
      await eventually('the circuit to open with all four postponed', async () => {
        const list = await api.deliveriesOf(`subscription_id=${sub.id}&status=postponed`);
        return list.length === 4 ? true : undefined;
      });
      healthy = true;
      const asked = await probe();
      expect(asked.statusCode, asked.body).toBe(200);
      expect(asked.json()).toMatchObject({ circuit: { state: 'open' }, probing: true });
      await eventually('every delivery delivered', async () => {
        const list = await api.deliveriesOf(`subscription_id=${sub.id}`);
        return list.length === 4 && list.every((d) => d.status === 'delivered') ? true : undefined;
      });
      const missing = await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions/sub_nope/circuit/probe',
      });
      expect(missing.statusCode).toBe(404);
    });

    it.skipIf(dialect.name !== 'postgres')(
      'stops every worker sending to an endpoint once its circuit is open (PostgreSQL, two dispatchers)',
      async () => {
        const circuit = { failureThreshold: 3, openMs: 60 * 60_000, maxOpenMs: 60 * 60_000, probeTimeoutMs: 5_000 };
        const { service, api } = await start({ retrySchedule: [0, 50, 50, 50, 50], circuit });
        const store = await openStore(openDialect(parseDatabaseUrl(service.database.url)));
        const config = { ...loadConfig({}, {}).dispatcher, retrySchedule: [0, 50, 50, 50, 50], circuit };
        const worker = new Dispatcher(store, service.secrets, config, pino({ level: 'silent' }), {
          targetPolicy: { allowInsecure: true },
          resolve: offlineResolver,
        });
        await worker.start();
        extra.push({ dispatcher: worker, store });

        const down = await receiver(() => ({ status: 502 }));
        const sub = await api.subscribe(`${down.url}/hooks`);
        for (let i = 0; i < 20; i++) await api.published('document.signed', { ...SIGNED_DATA, document_id: `a_${i}` });
        await eventually('the circuit to open and the queue to settle', async () => {
          const list = await api.deliveriesOf(`subscription_id=${sub.id}&limit=100`);
          return list.length === 20 && list.every((d) => d.status === 'postponed') ? true : undefined;
        });
        const before = down.requests.length;
        for (let i = 0; i < 20; i++) await api.published('document.signed', { ...SIGNED_DATA, document_id: `b_${i}` });
        await eventually('the new deliveries postponed', async () => {
          const list = await api.deliveriesOf(`subscription_id=${sub.id}&status=postponed&limit=100`);
          return list.length === 40 ? true : undefined;
        });
        // Neither process sent anything more to it: the circuit is in the database they share.
        expect(down.requests.length).toBe(before);
      },
    );
  });
});

/** A breaker that never opens: the isolation cases test the slots and the buffer alone. */
function offBreaker() {
  return { failureThreshold: 0, openMs: 1_000, maxOpenMs: 1_000, probeTimeoutMs: 1_000 };
}
