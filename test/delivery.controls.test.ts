// Delivery controls end to end, with real `countersign serve` and `countersign worker` processes
// and real receivers on loopback: a subscription's rate limit as its receiver sees it, with one
// process and with two workers sharing the database; per-document order through failures, three
// workers and a worker SIGKILLed mid-burst; and the operational events a 410 and spent retries
// make. Each runs on both dialects (the two-worker throttle on PostgreSQL, where workers scale out).
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CLI, call, childEnv, killAll, type ServeProcess, serve, waitUntil, worker } from './helpers/children.js';
import { freePort } from './helpers/cli-process.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import { type ReceivedRequest, type Receiver, startReceiver } from './helpers/receiver.js';

const data = (documentId: string) => ({
  document_id: documentId,
  signer_email: 'signer@example.com',
  audit_url: `https://example.com/audit/${documentId}`,
});

interface Payload {
  id: string;
  event: string;
  data: Record<string, unknown>;
}
const payload = (r: ReceivedRequest) => JSON.parse(r.body) as Payload;

/** The most requests any one-second window [t, t + 1 s) holds, over arrival times. */
function busiestSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let most = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[end] as number) - (sorted[start] as number) >= 1000) start++;
    most = Math.max(most, end - start + 1);
  }
  return most;
}

describe('delivery controls, end to end', () => {
  describe.each(DIALECTS)('on $name', (dialect) => {
    describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
      const children: ChildProcess[] = [];
      const receivers: Receiver[] = [];
      let database: TestDatabase | undefined;
      let dir: string | undefined;
      const agent = new Agent({ connections: 32 });
      afterAll(() => agent.close());

      async function setup(extra: Record<string, string> = {}) {
        if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
        database = await dialect.create();
        dir = mkdtempSync(join(tmpdir(), 'countersign-controls-'));
        return childEnv({
          PORT: String(await freePort()),
          HOST: '127.0.0.1',
          DATABASE_URL: database.url,
          COUNTERSIGN_MASTER_KEY_FILE: join(dir, 'master.key'),
          COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
          COUNTERSIGN_LEASE: '2s',
          COUNTERSIGN_POLL_INTERVAL: '200ms',
          COUNTERSIGN_RETRY_SCHEDULE: '0,100ms,200ms,300ms',
          COUNTERSIGN_RATE_LIMIT: 'off',
          LOG_LEVEL: 'info',
          ...extra,
        });
      }

      async function start(env: NodeJS.ProcessEnv): Promise<ServeProcess & { token: string }> {
        const running = await serve(env);
        children.push(running.child);
        if (!running.token) throw new Error(`no first-start token:\n${running.output.join('\n')}`);
        return { ...running, token: running.token };
      }

      async function startWorker(env: NodeJS.ProcessEnv) {
        const { PORT: _port, ...workerEnv } = env;
        const started = await worker(workerEnv);
        children.push(started.child);
        return started;
      }

      async function receiver(...args: Parameters<typeof startReceiver>): Promise<Receiver> {
        const r = await startReceiver(...args);
        receivers.push(r);
        return r;
      }

      async function subscribe(api: ServeProcess & { token: string }, body: Record<string, unknown>) {
        const res = await call(agent, api.url, api.token, 'POST', '/v1/webhooks/subscriptions', body);
        expect(res.status, JSON.stringify(res.json)).toBe(200);
        return (res.json.subscriptions as Record<string, unknown>[])[0] as Record<string, unknown>;
      }

      async function publish(api: ServeProcess & { token: string }, documentId: string): Promise<string> {
        const res = await call(agent, api.url, api.token, 'POST', '/v1/events', {
          event: 'document.signed',
          data: data(documentId),
        });
        expect(res.status).toBe(202);
        return res.json.id as string;
      }

      afterEach(async () => {
        await killAll(children);
        for (const r of receivers.splice(0)) await r.close();
        await database?.drop();
        database = undefined;
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = undefined;
      });

      /**
       * 200 events to a subscription limited to 20/s and to one without a limit: the limited
       * receiver never sees more than 20 in any second, and the other gets all 200 long before.
       */
      async function throttled(api: ServeProcess & { token: string }) {
        const slow = await receiver();
        const fast = await receiver();
        const limited = await subscribe(api, {
          target_url: `${slow.url}/hook`,
          event_type: 'document.signed',
          rate_limit_per_second: 20,
        });
        expect(limited.rate_limit_per_second).toBe(20);
        await subscribe(api, { target_url: `${fast.url}/hook`, event_type: 'document.signed' });
        const read = await call(agent, api.url, api.token, 'GET', `/v1/webhooks/subscriptions/${limited.id}`);
        expect((read.json.subscriptions as Record<string, unknown>[])[0]?.rate_limit_per_second).toBe(20);

        // One batch: this process then only receives, and its timestamps are not held up by publishing.
        const batch = await call(agent, api.url, api.token, 'POST', '/v1/events/batch', {
          events: Array.from({ length: 200 }, (_, i) => ({ event: 'document.signed', data: data(`doc_${i}`) })),
        });
        expect(batch.status).toBe(202);
        const ids = new Set((batch.json.events as { id: string }[]).map((e) => e.id));
        await fast.waitFor(200, 30_000);
        const fastDone = Math.max(...fast.requests.map((r) => r.at));
        await slow.waitFor(200, 60_000);
        // Every event once, none lost or sent twice.
        expect(new Set(slow.requests.map((r) => payload(r).id))).toEqual(ids);
        expect(slow.requests).toHaveLength(200);
        expect(busiestSecond(slow.requests.map((r) => r.at))).toBeLessThanOrEqual(20);
        // The unlimited subscription was not slowed: it had everything before the limited one had half.
        const slowHalf = [...slow.requests.map((r) => r.at)].sort((a, b) => a - b)[99] as number;
        expect(fastDone).toBeLessThan(slowHalf);
        // Throttled is not failed: one attempt per delivery.
        const deliveries = await call(
          agent,
          api.url,
          api.token,
          'GET',
          `/v1/deliveries?subscription_id=${limited.id}&limit=100`,
        );
        const listed = deliveries.json.deliveries as { attempt_count: number }[];
        expect(listed).toHaveLength(100);
        for (const d of listed) expect(d.attempt_count).toBe(1);
      }

      it('spreads a subscription limited to 20/s so that no second at its receiver holds more than 20, and slows no other', async () => {
        const env = await setup();
        await throttled(await start(env));
      }, 90_000);

      it.runIf(dialect.name === 'postgres')(
        'holds the limit across two workers sharing the database',
        async () => {
          const env = await setup();
          const api = await start({ ...env, COUNTERSIGN_NO_DISPATCHER: 'true' });
          await startWorker(env);
          await startWorker(env);
          await throttled(api);
        },
        90_000,
      );

      /**
       * Publishes `perDocument` events for each of `documents` documents (each document's events
       * one after another, the documents side by side) to an ordered subscription, whose receiver
       * fails the first attempt of about a third of them. Returns the publish order per document.
       */
      async function orderedBurst(
        api: ServeProcess & { token: string },
        target: Receiver,
        documents: number,
        perDocument: number,
        during?: (published: number) => void,
      ): Promise<Map<string, string[]>> {
        await subscribe(api, { target_url: `${target.url}/hook`, event_type: 'document.signed', ordering: 'document' });
        const order = new Map<string, string[]>();
        let published = 0;
        await Promise.all(
          Array.from({ length: documents }, async (_, d) => {
            const doc = `doc_${d}`;
            const ids: string[] = [];
            order.set(doc, ids);
            for (let i = 0; i < perDocument; i++) {
              ids.push(await publish(api, doc));
              during?.(++published);
            }
          }),
        );
        return order;
      }

      /** A receiver failing the first attempt of every event whose id ends in one of three characters. */
      function flaky(): Promise<Receiver> {
        const seen = new Set<string>();
        return receiver((request) => {
          const { id } = payload(request);
          const first = !seen.has(id);
          seen.add(id);
          return first && /[0-9A-C]$/.test(id) ? { status: 503 } : { status: 200, delayMs: 5 };
        });
      }

      /**
       * For every document: the events reached the receiver in publish order, each first tried
       * only after the one before it was accepted (a redelivery of an accepted one may repeat).
       */
      function expectInOrder(target: Receiver, order: Map<string, string[]>): void {
        const accepted = new Set<string>();
        const seenAccepted: string[] = [];
        const byDoc = new Map<string, string[]>();
        // Which attempts were accepted is known only by replaying the responder's rule.
        const tried = new Set<string>();
        for (const r of target.requests) {
          const p = payload(r);
          const doc = p.data.document_id as string;
          const ids = order.get(doc) as string[];
          const index = ids.indexOf(p.id);
          expect(index, `an event of ${doc} that was never published`).toBeGreaterThanOrEqual(0);
          // Everything before this event in its document had been accepted already.
          for (const earlier of ids.slice(0, index)) {
            expect(accepted.has(earlier), `${doc}: ${p.id} (#${index}) arrived before ${earlier} was accepted`).toBe(
              true,
            );
          }
          const wasAccepted = tried.has(p.id) || !/[0-9A-C]$/.test(p.id);
          tried.add(p.id);
          if (wasAccepted && !accepted.has(p.id)) {
            accepted.add(p.id);
            seenAccepted.push(p.id);
            byDoc.set(doc, [...(byDoc.get(doc) ?? []), p.id]);
          }
        }
        for (const [doc, ids] of order) expect(byDoc.get(doc), doc).toEqual(ids);
        expect(seenAccepted.length).toBe([...order.values()].reduce((n, ids) => n + ids.length, 0));
      }

      async function allAccepted(target: Receiver, order: Map<string, string[]>, timeoutMs: number) {
        const total = [...order.values()].reduce((n, ids) => n + ids.length, 0);
        await waitUntil(
          'every event accepted',
          () => {
            const ids = new Set(target.requests.map((r) => payload(r).id));
            return ids.size >= total && target.requests.length >= total;
          },
          timeoutMs,
        );
        // A last retry may still be on its way: wait until the log is settled.
        await waitUntil(
          'the last retries',
          () => {
            const counts = new Map<string, number>();
            for (const r of target.requests) counts.set(payload(r).id, (counts.get(payload(r).id) ?? 0) + 1);
            return [...counts].every(([id, n]) => n >= (/[0-9A-C]$/.test(id) ? 2 : 1));
          },
          timeoutMs,
        );
      }

      it('delivers each document in publish order while its receiver fails some first attempts, and lets other documents pass a held one', async () => {
        const env = await setup();
        const api = await start(env);
        const target = await flaky();
        const order = await orderedBurst(api, target, 6, 15);
        await allAccepted(target, order, 60_000);
        expectInOrder(target, order);
        // Other documents went on while one waited for its retry: some request for another
        // document arrived between a failed first attempt and its retry.
        const firstFailure = target.requests.findIndex((r) => /[0-9A-C]$/.test(payload(r).id));
        const failedId = payload(target.requests[firstFailure] as ReceivedRequest).id;
        const retry = target.requests.findIndex((r, i) => i > firstFailure && payload(r).id === failedId);
        const failedDoc = payload(target.requests[firstFailure] as ReceivedRequest).data.document_id;
        const between = target.requests.slice(firstFailure + 1, retry).map((r) => payload(r).data.document_id);
        expect(between.some((doc) => doc !== failedDoc)).toBe(true);
      }, 90_000);

      // Workers scale out on PostgreSQL; on SQLite they share one file, and the order must hold there too.
      it('keeps the order with three workers, one of them SIGKILLed mid-burst', async () => {
        const env = await setup();
        const api = await start({ ...env, COUNTERSIGN_NO_DISPATCHER: 'true' });
        const workers = [await startWorker(env), await startWorker(env), await startWorker(env)];
        const target = await flaky();
        let killed = false;
        const order = await orderedBurst(api, target, 8, 25, (published) => {
          if (!killed && published >= 80) {
            killed = true;
            workers[0]?.child.kill('SIGKILL');
          }
        });
        expect(killed).toBe(true);
        expect(await workers[0]?.exited).toEqual({ code: null, signal: 'SIGKILL' });
        await allAccepted(target, order, 60_000);
        expectInOrder(target, order);
      }, 120_000);

      it('sends delivery.failed and subscription.disabled to the subscriptions that take them, never to the callback', async () => {
        const env = await setup();
        const api = await start(env);
        const gone = await receiver(() => ({ status: 410 }));
        const broken = await receiver(() => ({ status: 500 }));
        const ops = await receiver();
        const callback = await receiver();
        const goneSub = await subscribe(api, { target_url: `${gone.url}/hook`, event_type: 'document.signed' });
        const brokenSub = await subscribe(api, { target_url: `${broken.url}/hook`, event_type: 'document.signed' });
        const opsSub = await subscribe(api, {
          target_url: `${ops.url}/hook`,
          event_types: ['subscription.disabled', 'delivery.failed'],
        });
        expect(opsSub.event_types).toEqual(['subscription.disabled', 'delivery.failed']);
        const registered = await call(agent, api.url, api.token, 'PUT', '/api/sign/v1/callback/register', {
          callbackUrl: `${callback.url}/cb`,
          authType: 'None',
        });
        expect(registered.status).toBe(200);

        const eventId = await publish(api, 'doc_ops');
        // 410: delivery.failed and subscription.disabled for the gone subscription. Retries run out
        // on the broken one (4 attempts): delivery.failed for it.
        await ops.waitFor(3, 30_000);
        await broken.waitFor(4, 30_000);
        const got = ops.requests.map(payload);
        const about = (type: string, sub: unknown) =>
          got.find((p) => p.event === type && p.data.subscription_id === sub)?.data;
        expect(about('subscription.disabled', goneSub.id)).toEqual({
          subscription_id: goneSub.id,
          target_url: `${gone.url}/hook`,
          reason: 'the receiver answered 410 Gone',
        });
        expect(about('delivery.failed', goneSub.id)).toMatchObject({
          target_url: `${gone.url}/hook`,
          event_id: eventId,
          event_type: 'document.signed',
          attempts: 1,
        });
        expect(about('delivery.failed', brokenSub.id)).toMatchObject({
          target_url: `${broken.url}/hook`,
          reason: 'its retries ran out; the last attempt got HTTP 500',
          event_id: eventId,
          attempts: 4,
        });
        // Signed like any delivery, with the ops subscription's id.
        for (const r of ops.requests) expect(r.headers['webhook-subscription-id']).toBe(opsSub.id);
        // The callback had the document event only.
        await callback.waitFor(1, 10_000);
        await waitUntil('the operational events to settle', () => ops.requests.length >= 3, 10_000);
        expect(callback.requests.map((r) => payload(r).event)).toEqual(['document.signed']);
        expect(ops.requests).toHaveLength(3);
      }, 60_000);
    });
  });
});
