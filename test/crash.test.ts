// Crash safety with a real `countersign serve` child process (the built dist/, so `npm test` builds
// first): SIGKILL in the middle of a burst of publishes loses nothing that was answered 202, and
// SIGTERM finishes what is in flight, hands back the rest and exits 0.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import {
  CLI,
  call,
  childEnv,
  killAll,
  receivedIds,
  type ServeProcess,
  serve,
  sleep,
  waitUntil,
  worker,
} from './helpers/children.js';
import { freePort } from './helpers/cli-process.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';

const EVENT_DATA = {
  document_id: 'doc_crash',
  signer_email: 'signer@example.com',
  audit_url: 'https://example.com/audit/doc_crash',
};

/** What a request cut off by the kill of its server throws: the connection reset, closed or refused. */
function cutOff(err: unknown): boolean {
  const { code, cause } = err as { code?: string; cause?: { code?: string } };
  return [code, cause?.code].some((c) => c !== undefined && CUT_OFF.has(c));
}
const CUT_OFF = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

describe('crash safety of countersign serve', () => {
  describe.each(DIALECTS)('on $name', (dialect) => {
    describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
      const children: ChildProcess[] = [];
      let database: TestDatabase | undefined;
      let receiver: Receiver | undefined;
      let dir: string | undefined;
      const agent = new Agent({ connections: 64 });
      afterAll(() => agent.close());

      /** A fresh database and settings for a child; every child of a case shares them. */
      async function setup() {
        if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
        database = await dialect.create();
        dir = mkdtempSync(join(tmpdir(), 'countersign-crash-'));
        const env = childEnv({
          PORT: String(await freePort()),
          HOST: '127.0.0.1',
          DATABASE_URL: database.url,
          COUNTERSIGN_MASTER_KEY_FILE: join(dir, 'master.key'),
          COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
          COUNTERSIGN_LEASE: '2s',
          COUNTERSIGN_POLL_INTERVAL: '200ms',
          COUNTERSIGN_RETRY_SCHEDULE: '0,200ms,500ms,1s,2s',
          COUNTERSIGN_RATE_LIMIT: 'off',
          // The test waits for the "listening" line, logged at info; requests themselves are not logged.
          LOG_LEVEL: 'info',
        });
        return env;
      }

      async function start(env: NodeJS.ProcessEnv): Promise<ServeProcess> {
        const running = await serve(env);
        children.push(running.child);
        return running;
      }

      async function subscribe(running: ServeProcess, token: string, target: string): Promise<void> {
        const res = await call(agent, running.url, token, 'POST', '/v1/webhooks/subscriptions', {
          target_url: target,
          event_type: 'document.signed',
        });
        expect(res.status).toBe(200);
      }

      afterEach(async () => {
        await killAll(children);
        await receiver?.close();
        receiver = undefined;
        await database?.drop();
        database = undefined;
        if (dir) rmSync(dir, { recursive: true, force: true });
        dir = undefined;
      });

      it('delivers every event answered 202 at least once after a SIGKILL in the middle of a burst', async () => {
        const TOTAL = 3000;
        const KILL_AFTER = 1000;
        const CLIENTS = 32;
        const env = await setup();
        // A receiver that takes a moment, and few sends at a time, so that at the kill many deliveries
        // are in flight and many more are committed but not yet sent (the restart has work to do).
        receiver = await startReceiver(() => ({ status: 200, delayMs: 100 }));
        const first = await start({ ...env, COUNTERSIGN_ORIGIN_CONCURRENCY: '8' });
        const token = first.token;
        if (!token) throw new Error(`no first-start token in the output:\n${first.output.join('\n')}`);
        await subscribe(first, token, `${receiver.url}/hook`);

        const accepted = new Set<string>();
        let next = 0;
        let killed = false;
        const client = async () => {
          while (!killed && next < TOTAL) {
            next++;
            let res: Awaited<ReturnType<typeof call>>;
            try {
              res = await call(agent, first.url, token, 'POST', '/v1/events', {
                event: 'document.signed',
                data: EVENT_DATA,
              });
            } catch (err) {
              // The process died under this request: its fate is unknown, and either outcome is fine.
              // Before the kill, no request may fail, and nothing but a broken connection may after.
              if (killed && cutOff(err)) continue;
              throw err;
            }
            // A killed process answers nothing more: every answer was made before the kill, so each
            // one is the 202 of a publish, never an error passed over.
            expect(res.status, JSON.stringify(res.json)).toBe(202);
            accepted.add(res.json.id as string);
            if (!killed && accepted.size >= KILL_AFTER) {
              killed = true;
              first.child.kill('SIGKILL');
            }
          }
        };
        await Promise.all(Array.from({ length: CLIENTS }, client));
        expect(killed).toBe(true);
        expect(await first.exited).toEqual({ code: null, signal: 'SIGKILL' });
        // The kill landed mid-burst: publishes were still coming and some went unanswered.
        expect(accepted.size).toBeGreaterThanOrEqual(KILL_AFTER);
        expect(accepted.size).toBeLessThan(TOTAL);
        const beforeRestart = receivedIds(receiver);

        const second = await start(env);
        expect(second.token).toBeUndefined();
        await waitUntil(
          'every accepted event at the receiver',
          () => [...accepted].every((id) => receivedIds(receiver as Receiver).has(id)),
          45_000,
        ).catch((err: Error) => {
          const missing = [...accepted].filter((id) => !receivedIds(receiver as Receiver).has(id));
          throw new Error(`${err.message}: ${missing.length} of ${accepted.size} missing, e.g. ${missing.slice(0, 3)}`);
        });
        // Some deliveries had to come from the restarted process, or the kill proved nothing.
        expect([...accepted].some((id) => !beforeRestart.has(id))).toBe(true);
        // And the log settles: nothing left pending or claimed, nothing given up on.
        const withStatus = async (status: string) =>
          (await call(agent, second.url, token, 'GET', `/v1/deliveries?status=${status}&limit=1`)).json
            .deliveries as unknown[];
        await waitUntil(
          'no delivery pending or sending',
          async () => (await withStatus('pending')).length === 0 && (await withStatus('sending')).length === 0,
          15_000,
        );
        expect(await withStatus('failed')).toEqual([]);
      }, 90_000);

      it('runs a separate `countersign worker` beside an API-only serve: it stays up, delivers, shows its metrics, and exits 0 on SIGTERM', async () => {
        const env = await setup();
        receiver = await startReceiver(() => ({ status: 200 }));
        const api = await start({ ...env, COUNTERSIGN_NO_DISPATCHER: 'true' });
        const token = api.token;
        if (!token) throw new Error(`no first-start token in the output:\n${api.output.join('\n')}`);
        await subscribe(api, token, `${receiver.url}/hook`);
        const { PORT: _port, ...workerEnv } = env;
        const opsPort = await freePort();
        const dispatching = await worker({ ...workerEnv, COUNTERSIGN_METRICS_PORT: String(opsPort) });
        children.push(dispatching.child);
        // Longer than a poll interval or two: the worker must still be there to see later events.
        await sleep(1_000);
        expect(dispatching.child.exitCode).toBeNull();

        const ids: string[] = [];
        for (let i = 0; i < 20; i++) {
          const res = await call(agent, api.url, token, 'POST', '/v1/events', {
            event: 'document.signed',
            data: EVENT_DATA,
          });
          expect(res.status).toBe(202);
          ids.push(res.json.id as string);
        }
        await waitUntil(
          'every event at the receiver',
          () => ids.every((id) => receivedIds(receiver as Receiver).has(id)),
          20_000,
        );
        // Its operations endpoint: ready, and counting the attempts it made (the API process made none).
        const ops = `http://127.0.0.1:${opsPort}`;
        const ready = await request(`${ops}/readyz`, { dispatcher: agent });
        expect([ready.statusCode, await ready.body.json()]).toEqual([200, { status: 'ready' }]);
        const scraped = await request(`${ops}/metrics`, { dispatcher: agent });
        expect(scraped.statusCode).toBe(200);
        expect(await scraped.body.text()).toMatch(/^countersign_delivery_attempts_total\{outcome="delivered"\} 20$/m);
        const noApi = await request(`${ops}/v1/webhooks/subscriptions`, { dispatcher: agent });
        expect(noApi.statusCode).toBe(404);
        await noApi.body.dump();

        dispatching.child.kill('SIGTERM');
        expect(await dispatching.exited).toEqual({ code: 0, signal: null });
      }, 60_000);

      it('on SIGTERM finishes sends in flight, hands back the rest, exits 0, and loses nothing', async () => {
        const TOTAL = 300;
        const env = await setup();
        let slow = true;
        receiver = await startReceiver(() => (slow ? { status: 200, delayMs: 300 } : { status: 200 }));
        const first = await start(env);
        const token = first.token;
        if (!token) throw new Error(`no first-start token in the output:\n${first.output.join('\n')}`);
        await subscribe(first, token, `${receiver.url}/hook`);

        const accepted: string[] = [];
        let next = 0;
        await Promise.all(
          Array.from({ length: 16 }, async () => {
            while (next < TOTAL) {
              next++;
              const res = await call(agent, first.url, token, 'POST', '/v1/events', {
                event: 'document.signed',
                data: EVENT_DATA,
              });
              expect(res.status).toBe(202);
              accepted.push(res.json.id as string);
            }
          }),
        );
        await receiver.waitFor(10);
        first.child.kill('SIGTERM');
        expect(await first.exited).toEqual({ code: 0, signal: null });
        const answered = receiver.requests.length;

        // Straight from the database, with no process running: nothing is left claimed, and every
        // request the receiver answered while the process shut down is recorded as delivered.
        const db = openDialect(parseDatabaseUrl(env.DATABASE_URL as string));
        try {
          const rows = await db.db.selectFrom('deliveries').select(['status', 'lease_owner']).execute();
          expect(rows).toHaveLength(TOTAL);
          expect(rows.filter((r) => r.status === 'sending')).toEqual([]);
          expect(rows.filter((r) => r.lease_owner !== null)).toEqual([]);
          expect(new Set(rows.map((r) => r.status))).toEqual(
            new Set(rows.length === answered ? ['delivered'] : ['delivered', 'pending']),
          );
          expect(rows.filter((r) => r.status === 'delivered')).toHaveLength(answered);
        } finally {
          await db.close();
        }

        slow = false;
        await start(env);
        await waitUntil(
          'every accepted event at the receiver',
          () => accepted.every((id) => receivedIds(receiver as Receiver).has(id)),
          30_000,
        );
      }, 90_000);
    });
  });
});
