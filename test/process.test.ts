// Real `countersign` processes where the process is the subject: one that cannot start says why in
// one line, exits non-zero and leaves nothing running (a taken port, a bad host, a master key that
// does not fit the database); the first-start token comes only once the server is up;
// rotate-master-key refuses under a running server; a running server whose key stops fitting stops;
// a receiver slower than the lease gets exactly one request; and the log switches work.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SecretBox, settingSeal } from '../src/domain/secret-box.js';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { MASTER_KEY_CHECK } from '../src/store/reseal.js';
import { eventually, SIGNED_DATA } from './helpers/api-client.js';
import {
  CLI,
  freePort,
  killAllServe,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  type Workspace,
} from './helpers/cli-process.js';
import { DIALECTS, dialectLabel, sqliteDialect, type TestDatabase } from './helpers/databases.js';
import { gate, type Receiver, startReceiver } from './helpers/receiver.js';

/** Each test starts and stops real processes, several seconds each on a loaded machine. */
const PROCESS_TEST = { timeout: 120_000 };

const workspaces: Workspace[] = [];
const databases: TestDatabase[] = [];
const receivers: Receiver[] = [];
const blockers: Server[] = [];

afterEach(async () => {
  await killAllServe();
  await Promise.all(receivers.splice(0).map((r) => r.close()));
  for (const b of blockers.splice(0)) await new Promise<void>((resolve) => b.close(() => resolve()));
});
afterAll(async () => {
  for (const w of workspaces.splice(0)) w.remove();
  for (const d of databases.splice(0)) await d.drop();
});

async function workspaceOn(dialect: (typeof DIALECTS)[number], env: NodeJS.ProcessEnv = {}): Promise<Workspace> {
  let url: string | undefined;
  if (dialect.name === 'postgres') {
    const database = await dialect.create();
    databases.push(database);
    url = database.url;
  }
  const workspace = makeWorkspace(url);
  Object.assign(workspace.env, env);
  workspaces.push(workspace);
  return workspace;
}

/** `serve` run to its end: for processes expected to refuse to start. */
function serveToExit(env: NodeJS.ProcessEnv, port: number, extra: string[] = []) {
  return runCli(['serve', '--port', String(port), '--host', '127.0.0.1', ...extra], env, 30_000);
}

async function api(server: ServeProcess, method: string, path: string, body?: unknown) {
  const [token] = server.printedTokens();
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json().catch(() => undefined)) as Record<string, unknown> };
}

/** Holds a port on 127.0.0.1 the way another program would. */
async function takenPort(): Promise<number> {
  const port = await freePort();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
  blockers.push(blocker);
  return port;
}

/** The lines a refusing process wrote to stderr (it must be one). */
function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

describe('a process that cannot start', PROCESS_TEST, () => {
  it('exits 1 with one line when its port is taken, prints no token, and leaves the database without an account', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    const port = await takenPort();
    const refused = await serveToExit(workspace.env, port);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([
      `countersign: cannot listen on 127.0.0.1:${port}: the port is already in use (is countersign already running? stop it, or choose another port with --port / PORT)`,
    ]);
    expect(refused.stdout).not.toMatch(/cst_/);
    const listed = await runCli(['token', 'list'], workspace.env);
    expect(listed.stdout.trim().split('\n')).toHaveLength(1);
    // Once the port is free, the first start prints its token.
    const server = await startServe(workspace.env);
    expect(server.printedTokens()).toHaveLength(1);
  });

  it('exits 1 with one line for a host that is not on this machine, or does not resolve', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    const port = await freePort();
    const foreign = await serveToExit(workspace.env, port, ['--host', '203.0.113.7']);
    expect(foreign.code).toBe(1);
    expect(lines(foreign.stderr)).toEqual([
      `countersign: cannot listen on 203.0.113.7:${port}: 203.0.113.7 is not an address of this machine (--host / HOST)`,
    ]);
    const unknown = await serveToExit(workspace.env, port, ['--host', 'no-such-host.invalid']);
    expect(unknown.code).toBe(1);
    expect(lines(unknown.stderr)).toEqual([
      `countersign: cannot listen on no-such-host.invalid:${port}: the host name no-such-host.invalid does not resolve (--host / HOST)`,
    ]);
  });

  it('exits 1 with one line when a worker cannot have its operations port', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    expect((await runCli(['migrate'], workspace.env)).code).toBe(0);
    const port = await takenPort();
    const refused = await runCli(['worker', '--metrics-port', String(port)], workspace.env, 30_000);
    expect(refused.code).toBe(1);
    expect(lines(refused.stderr)).toEqual([
      `countersign: cannot listen on 127.0.0.1:${port}: the port is already in use (is countersign already running? stop it, or choose another port with --metrics-port / COUNTERSIGN_METRICS_PORT)`,
    ]);
  });

  for (const dialect of DIALECTS) {
    describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
      it('a second serve on a taken port exits 1 and never sends what the running one holds', async () => {
        const receiver = await startReceiver();
        receivers.push(receiver);
        // The running server answers the API only; the second would bring a dispatcher.
        const workspace = await workspaceOn(dialect, { COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true' });
        const first = await startServe(workspace.env);
        const sub = await api(first, 'POST', '/v1/webhooks/subscriptions', {
          target_url: `${receiver.url}/hook`,
          event_type: 'document.signed',
        });
        expect(sub.status).toBe(200);
        const published = await api(first, 'POST', '/v1/events', { event: 'document.signed', data: SIGNED_DATA });
        expect(published.status).toBe(202);

        const second = await serveToExit(
          { ...workspace.env, COUNTERSIGN_NO_DISPATCHER: 'false' },
          Number(new URL(first.url).port),
        );
        expect(second.code).toBe(1);
        expect(lines(second.stderr)).toHaveLength(1);
        expect(second.stderr).toContain('the port is already in use');
        // The second has exited; to send, it would have had to claim the delivery first.
        const queued = await api(first, 'GET', `/v1/deliveries?event_id=${published.json.id}`);
        expect(queued.json.deliveries).toMatchObject([{ status: 'pending', attempt_count: 0 }]);
        expect(receiver.requests).toHaveLength(0);
        expect((await api(first, 'GET', '/healthz')).status).toBe(200);
      });

      it('refuses to start with a master key that does not open the database, and never makes a new key file for it', async () => {
        const workspace = await workspaceOn(dialect);
        const first = await startServe(workspace.env);
        const sub = await api(first, 'POST', '/v1/webhooks/subscriptions', {
          target_url: 'https://your-app.com/webhooks/conga',
          event_type: 'document.signed',
          secret_token: 'shhh',
        });
        expect(sub.status).toBe(200);
        expect(await first.stop()).toBe(0);
        const port = await freePort();

        const wrongKey = randomBytes(32).toString('base64');
        const wrong = await serveToExit({ ...workspace.env, COUNTERSIGN_MASTER_KEY: wrongKey }, port);
        expect(wrong.code).toBe(1);
        expect(lines(wrong.stderr)).toHaveLength(1);
        expect(wrong.stderr).toMatch(
          /^countersign: the master key from COUNTERSIGN_MASTER_KEY \(key \S+\) does not open the secrets in this database, which were sealed under key \S+/,
        );

        // A second node that lost (or never had) the key file: refused, and no new key is made.
        const keyFile = workspace.env.COUNTERSIGN_MASTER_KEY_FILE as string;
        const elsewhere = join(workspace.dir, 'other-node', 'master.key');
        const missing = await serveToExit({ ...workspace.env, COUNTERSIGN_MASTER_KEY_FILE: elsewhere }, port);
        expect(missing.code).toBe(1);
        expect(missing.stderr).toContain(
          `the master key file ${elsewhere} does not exist, but this database holds secrets`,
        );
        expect(existsSync(elsewhere)).toBe(false);
        expect(existsSync(keyFile)).toBe(true);

        // The right key still starts.
        const again = await startServe(workspace.env);
        expect(again.printedTokens()).toEqual([]);
      });

      it('rotate-master-key refuses while a server uses the database, and rotates once it has stopped', async () => {
        const workspace = await workspaceOn(dialect);
        const server = await startServe(workspace.env);
        expect(
          (
            await api(server, 'POST', '/v1/webhooks/subscriptions', {
              target_url: 'https://your-app.com/webhooks/conga',
              event_type: 'document.signed',
            })
          ).status,
        ).toBe(200);
        const refused = await runCli(['rotate-master-key'], workspace.env);
        expect(refused.code).toBe(1);
        expect(lines(refused.stderr)).toHaveLength(1);
        expect(refused.stderr).toMatch(
          new RegExp(
            `refusing to rotate while countersign is using this database: countersign serve \\(pid ${server.child.pid} on `,
          ),
        );
        expect(existsSync(`${workspace.env.COUNTERSIGN_MASTER_KEY_FILE}.next`)).toBe(false);
        expect(await server.stop()).toBe(0);

        const rotated = await runCli(['rotate-master-key'], workspace.env);
        expect(rotated.code, rotated.stderr).toBe(0);
        expect(rotated.stdout).toMatch(/^re-sealed 1 secret;/);
        const restarted = await startServe(workspace.env);
        expect(restarted.stdout()).toContain('countersign is listening');
      });
    });
  }
});

describe('a running server whose master key stops fitting the database', PROCESS_TEST, () => {
  it('says so and exits 1 within a heartbeat', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    const server = await startServe(workspace.env);
    // What a rotate-master-key forced past the server would leave: a check sealed under another key.
    const direct = openDialect(parseDatabaseUrl(workspace.env.DATABASE_URL as string));
    try {
      const sealed = new SecretBox(randomBytes(32)).seal(
        'countersign master key check v1',
        settingSeal(MASTER_KEY_CHECK),
      );
      await sql`update countersign_settings set value = ${sealed} where key = ${MASTER_KEY_CHECK}`.execute(direct.db);
    } finally {
      await direct.close();
    }
    const exit = await eventually(
      'the server to exit',
      async () => (server.child.exitCode === null ? undefined : server.child.exitCode),
      60_000,
    );
    expect(exit).toBe(1);
    expect(server.stderr()).toContain('countersign: the master key was changed while this process ran');
  });
});

describe('a receiver slower than the lease', PROCESS_TEST, () => {
  it('gets exactly one request per attempt', async () => {
    // Held open until the serving process has renewed the lease: the request outlasts the first
    // lease by as long as the test likes, not by a delay that must beat a clock.
    const held = gate();
    const receiver = await startReceiver(() => ({ status: 200, body: 'took a while', until: held.promise }));
    receivers.push(receiver);
    const leaseMs = 6000;
    const workspace = await workspaceOn(sqliteDialect, {
      COUNTERSIGN_NO_DISPATCHER: 'false',
      COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
      COUNTERSIGN_LEASE: `${leaseMs}ms`,
      COUNTERSIGN_REQUEST_TIMEOUT: '60s',
    });
    const server = await startServe(workspace.env);
    await api(server, 'POST', '/v1/webhooks/subscriptions', {
      target_url: `${receiver.url}/slow`,
      event_type: 'document.signed',
    });
    const published = await api(server, 'POST', '/v1/events', { event: 'document.signed', data: SIGNED_DATA });
    await receiver.waitFor(1);

    // Another process on the same database, as a second worker would be.
    const location = parseDatabaseUrl(workspace.env.DATABASE_URL as string);
    const direct = openDialect(location);
    const other = await openStore(openDialect(location));
    try {
      const leaseEnd = async () => {
        const { rows } = await sql<{ next_attempt_at: number; status: string }>`
          select next_attempt_at, status from deliveries`.execute(direct.db);
        expect(rows).toMatchObject([{ status: 'sending' }]);
        return Number(rows[0]?.next_attempt_at);
      };
      // The serving process renews the lease of its send in flight once half of it has gone.
      const first = await leaseEnd();
      await eventually('the lease to be renewed', async () => ((await leaseEnd()) > first ? true : undefined), 30_000);
      // So a claim made once the first lease has run out takes nothing.
      expect(await other.claimDueDeliveries('another-host:1:abc', 10, first + 1, leaseMs)).toEqual([]);
    } finally {
      await other.close();
      await direct.close();
    }

    held.release();
    const delivery = await eventually(
      'the slow delivery',
      async () => {
        const list = await api(server, 'GET', `/v1/deliveries?event_id=${published.json.id}`);
        const [first] = list.json.deliveries as { id: string; status: string }[];
        return first?.status === 'delivered' ? first : undefined;
      },
      20_000,
    );
    // One claim, one attempt: a lease taken over would have counted a second.
    const detail = await api(server, 'GET', `/v1/deliveries/${delivery.id}`);
    expect(detail.json).toMatchObject({ attempt_count: 1, attempts: [{ number: 1, status_code: 200 }] });
    expect(receiver.requests).toHaveLength(1);
  });
});

describe('the logs of a running server', PROCESS_TEST, () => {
  it('writes an access line per request by default, and none with COUNTERSIGN_ACCESS_LOG=off', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    const on = await startServe(workspace.env);
    await api(on, 'GET', '/v1/webhooks/subscriptions');
    await eventually('the access line', async () =>
      on.stdout().includes('"route":"/v1/webhooks/subscriptions"') ? true : undefined,
    );
    const line = on
      .stdout()
      .split('\n')
      .find((l) => l.includes('"route":"/v1/webhooks/subscriptions"'));
    expect(JSON.parse(line ?? '{}')).toMatchObject({
      method: 'GET',
      status: 200,
      level: 30,
      account: expect.any(String),
    });
    expect(await on.stop()).toBe(0);

    const off = await startServe({ ...workspace.env, COUNTERSIGN_ACCESS_LOG: 'off' });
    await fetch(`${off.url}/v1/webhooks/subscriptions`);
    // Stopped, and its last line read: an access line for the request would have come before it.
    expect(await off.stop()).toBe(0);
    await eventually('the stopped line', async () => (off.stdout().includes('"stopped"') ? true : undefined));
    expect(off.stdout()).not.toContain('"route":');
  });

  it('writes readable lines with LOG_FORMAT=pretty', async () => {
    const workspace = await workspaceOn(sqliteDialect);
    const port = await freePort();
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--host', '127.0.0.1'], {
      env: { ...workspace.env, LOG_FORMAT: 'pretty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    try {
      await eventually('the listening line', async () => (out.includes('countersign is listening') ? true : undefined));
      const logLines = lines(out).filter((line) => /INFO|WARN/.test(line));
      expect(logLines.length).toBeGreaterThan(1);
      for (const line of logLines) expect(() => JSON.parse(line)).toThrow();
      expect(out).toMatch(/INFO.*store ready/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
