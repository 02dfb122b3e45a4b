import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { Dispatcher } from '../src/delivery/dispatcher.js';
import { Metrics } from '../src/metrics.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';
import { offlineResolver, startTestService, type TestService } from './helpers/service.js';

describe.each(DIALECTS)('delivery basics on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    let receiver: Receiver;
    beforeEach(async () => {
      service = await startTestService(dialect, { dispatcher: true });
      receiver = await startReceiver();
    });
    afterEach(async () => {
      await service.close();
      await receiver.close();
    });

    it('delivers the seed payload, signed so that the standardwebhooks package verifies it', async () => {
      const created = await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions',
        payload: {
          target_url: `${receiver.url}/hook`,
          event_type: 'document.signed',
          secret_token: 'shhh_its_a_secret',
        },
      });
      expect(created.statusCode).toBe(200);
      const secret = created.json().subscriptions[0].signing_secret as string;
      const published = await service.request({
        method: 'POST',
        url: '/v1/events',
        payload: {
          event: 'document.signed',
          timestamp: '2025-12-18T14:30:05Z',
          data: {
            document_id: 'doc_88291',
            signer_email: 'client@example.com',
            audit_url: 'https://congasign.com/audit/88291',
          },
        },
      });
      expect(published.statusCode).toBe(202);
      expect(published.json().deliveries).toBe(1);
      const [got] = await receiver.waitFor(1);
      if (!got) throw new Error('nothing received');
      expect(got.headers['content-type']).toBe('application/json');
      expect(got.headers['user-agent']).toMatch(/^countersign\//);
      const verified = new Webhook(secret).verify(got.body, {
        'webhook-id': got.headers['webhook-id'] as string,
        'webhook-timestamp': got.headers['webhook-timestamp'] as string,
        'webhook-signature': got.headers['webhook-signature'] as string,
      });
      expect(verified).toEqual({
        event: 'document.signed',
        timestamp: '2025-12-18T14:30:05Z',
        data: {
          document_id: 'doc_88291',
          signer_email: 'client@example.com',
          audit_url: 'https://congasign.com/audit/88291',
        },
        id: published.json().id,
        secret_token: 'shhh_its_a_secret',
      });
    });
  });
});

describe('metrics', () => {
  it('counts published events and attempts by outcome at GET /metrics', async () => {
    const metrics = new Metrics({ defaults: false });
    const service = await startTestService(DIALECTS[0] as (typeof DIALECTS)[number], { dispatcher: true, metrics });
    const receiver = await startReceiver((_r, i) => ({ status: i === 0 ? 500 : 200 }));
    try {
      await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions',
        payload: { target_url: `${receiver.url}/m`, event_type: 'document.sent' },
      });
      const data = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
      await service.request({ method: 'POST', url: '/v1/events', payload: { event: 'document.sent', data } });
      await receiver.waitFor(2);
      await expect
        .poll(async () => (await service.request({ method: 'GET', url: '/metrics', token: null })).body, {
          timeout: 15_000,
        })
        .toContain('countersign_delivery_attempts_total{outcome="delivered"} 1');
      const text = (await service.request({ method: 'GET', url: '/metrics', token: null })).body;
      expect(text).toContain('countersign_delivery_attempts_total{outcome="retry"} 1');
      expect(text).toContain('countersign_events_published_total 1');
      expect(text).toContain('countersign_delivery_attempt_duration_seconds_count 2');
    } finally {
      await service.close();
      await receiver.close();
    }
  });
});

describe.each(DIALECTS)('send concurrency on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    it('delivers a burst larger than its room exactly once: handed off at publish, the rest claimed', async () => {
      const receiver = await startReceiver(() => ({ status: 200, delayMs: 20 }));
      // Room for 2 in flight plus 3 claimed: most of 40 simultaneous publishes cannot be handed off.
      const service = await startTestService(dialect, { dispatcher: { maxConcurrency: 2, claimBatchSize: 3 } });
      try {
        const res = await service.request({
          method: 'POST',
          url: '/v1/webhooks/subscriptions',
          payload: { target_url: `${receiver.url}/hook`, event_type: 'document.signed' },
        });
        expect(res.statusCode).toBe(200);
        const data = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
        const published = await Promise.all(
          Array.from({ length: 40 }, () =>
            service.request({ method: 'POST', url: '/v1/events', payload: { event: 'document.signed', data } }),
          ),
        );
        expect(published.map((r) => r.statusCode)).toEqual(new Array(40).fill(202));
        await receiver.waitFor(40);
        const dispatcher = service.dispatcher as NonNullable<typeof service.dispatcher>;
        await dispatcher.idle();
        const ids = receiver.requests.map((r) => String(r.headers['webhook-id']));
        expect(ids).toHaveLength(40);
        expect(new Set(ids).size).toBe(40);
        const delivered = await service.request({ method: 'GET', url: '/v1/deliveries?status=delivered&limit=100' });
        expect(delivered.json().deliveries).toHaveLength(40);
        // Every reservation was given back: the full room is on offer again.
        const claim = dispatcher.reserveForPublish();
        expect(claim?.limit).toBe(3);
        if (claim) dispatcher.acceptPublished(claim, [], Date.now());
      } finally {
        await service.close();
        await receiver.close();
      }
    });

    it('keeps at most perOriginConcurrency sends in flight per origin and maxConcurrency overall', async () => {
      let inFlight = 0;
      let peakOverall = 0;
      const peaks = new Map<string, number>();
      const active = new Map<string, number>();
      // Every request is held until three are in flight at once and the dispatcher has started no
      // more than arrived, so the limits are reached however slowly the machine runs and a send
      // past them would be seen; then all are answered, and every later one at once.
      const metrics = new Metrics({ defaults: false });
      const sending = async () =>
        Number(/^countersign_dispatcher_sending (\d+)$/m.exec(await metrics.registry.metrics())?.[1]);
      let held: (() => void)[] | undefined = [];
      const releaseOnceAllArrived = async () => {
        if (!held || (await sending()) !== inFlight) return;
        for (const release of held.splice(0)) release();
        held = undefined;
      };
      const servers: Server[] = [];
      const origins: string[] = [];
      for (const name of ['a', 'b']) {
        const server = createServer((req, res) => {
          req.resume();
          req.on('end', () => {
            inFlight++;
            active.set(name, (active.get(name) ?? 0) + 1);
            peakOverall = Math.max(peakOverall, inFlight);
            peaks.set(name, Math.max(peaks.get(name) ?? 0, active.get(name) ?? 0));
            const answer = () => {
              inFlight--;
              active.set(name, (active.get(name) ?? 0) - 1);
              res.end('ok');
            };
            if (!held) return answer();
            held.push(answer);
            if (inFlight >= 3) void releaseOnceAllArrived();
          });
        });
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        servers.push(server);
        origins.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      }
      // Published with no dispatcher running, then one started: all 16 are due at its first claim,
      // and its first sends go together, not each as its publish comes.
      const service = await startTestService(dialect);
      const config = { ...loadConfig({}, {}).dispatcher, perOriginConcurrency: 2, maxConcurrency: 3 };
      const dispatcher = new Dispatcher(service.store, service.secrets, config, pino({ level: 'silent' }), {
        targetPolicy: { allowInsecure: true },
        resolve: offlineResolver,
        metrics,
      });
      try {
        for (const origin of origins) {
          const res = await service.request({
            method: 'POST',
            url: '/v1/webhooks/subscriptions',
            payload: { target_url: `${origin}/hook`, event_type: 'document.signed' },
          });
          expect(res.statusCode).toBe(200);
        }
        const data = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
        for (let i = 0; i < 8; i++) {
          await service.request({ method: 'POST', url: '/v1/events', payload: { event: 'document.signed', data } });
        }
        await dispatcher.start();
        await expect
          .poll(
            async () =>
              (await service.request({ method: 'GET', url: '/v1/deliveries?status=delivered&limit=100' })).json()
                .deliveries.length,
            {
              timeout: 15_000,
            },
          )
          .toBe(16);
        expect(Math.max(...peaks.values())).toBe(2);
        expect(peakOverall).toBe(3);
      } finally {
        await dispatcher.stop();
        await service.close();
        for (const server of servers) {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      }
    });

    it('sends to a fast origin while a slow one holds its only slot: per-origin limit 1, global 2, by order of arrival', async () => {
      // Two subscriptions on one slow origin that answers nothing until the test says so, one on a
      // fast origin. The per-origin limit, not the connection pool behind it, must keep the slow
      // origin's second send from taking the other global slot: undici's pool (one connection per
      // origin here) would hold that send back from the receiver anyway, but in our count it would
      // still be a send in flight, and the fast origin would wait until the slow sends were swept
      // out of the global limit.
      const arrivals: string[] = [];
      const held: ServerResponse[] = [];
      const slow = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          arrivals.push(`slow${req.url}`);
          held.push(res);
        });
      });
      const fast = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          arrivals.push('fast');
          res.end('ok');
        });
      });
      const origins: string[] = [];
      for (const server of [slow, fast]) {
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        origins.push(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
      }
      const metrics = new Metrics();
      const service = await startTestService(dialect, {
        // No send times out while the test holds it.
        dispatcher: { perOriginConcurrency: 1, maxConcurrency: 2, requestTimeoutMs: 60_000 },
        metrics,
      });
      const sending = async () => {
        const text = await metrics.registry.metrics();
        return Number(/^countersign_dispatcher_sending (\d+)$/m.exec(text)?.[1]);
      };
      try {
        const subscribe = async (target_url: string) => {
          const res = await service.request({
            method: 'POST',
            url: '/v1/webhooks/subscriptions',
            payload: { target_url, event_type: 'document.sent' },
          });
          expect(res.statusCode).toBe(200);
          return res.json().subscriptions[0].id as string;
        };
        await subscribe(`${origins[0]}/a`);
        await subscribe(`${origins[0]}/b`);
        const fastId = await subscribe(`${origins[1]}/hook`);
        const data = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
        for (let i = 0; i < 5; i++) {
          const res = await service.request({
            method: 'POST',
            url: '/v1/events',
            payload: { event: 'document.sent', data },
          });
          expect(res.statusCode).toBe(202);
        }
        // The positive signal first: all five of the fast origin's deliveries are delivered.
        await expect
          .poll(
            async () =>
              (
                await service.request({
                  method: 'GET',
                  url: `/v1/deliveries?status=delivered&subscription_id=${fastId}&limit=100`,
                })
              ).json().deliveries.length,
            { timeout: 10_000 },
          )
          .toBe(5);
        // Meanwhile the slow origin got one request, sent with the first publish's fast one (which
        // of the two reaches its server first is the scheduler's to say), and one send of it is
        // all that is in flight.
        expect([...arrivals].sort()).toEqual([
          'fast',
          'fast',
          'fast',
          'fast',
          'fast',
          expect.stringMatching(/^slow\/[ab]$/),
        ]);
        expect(arrivals.findIndex((a) => a.startsWith('slow/'))).toBeLessThanOrEqual(1);
        await expect.poll(sending, { timeout: 10_000 }).toBe(1);

        // Let the slow origin answer from now on: its other nine sends follow, one at a time.
        const answer = (res: ServerResponse) => res.end('ok');
        slow.removeAllListeners('request');
        slow.on('request', (req, res) => {
          req.resume();
          req.on('end', () => {
            arrivals.push(`slow${req.url}`);
            answer(res);
          });
        });
        for (const res of held.splice(0)) answer(res);
        await expect
          .poll(
            async () =>
              (await service.request({ method: 'GET', url: '/v1/deliveries?status=delivered&limit=100' })).json()
                .deliveries.length,
            { timeout: 10_000 },
          )
          .toBe(15);
        const count = (what: string) => arrivals.filter((a) => a === what).length;
        expect([arrivals.length, count('slow/a'), count('slow/b'), count('fast')]).toEqual([15, 5, 5, 5]);
      } finally {
        await service.close();
        for (const server of [slow, fast]) {
          server.closeAllConnections();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
      }
    });
  });
});
