// `countersign listen` as a developer runs it: the built CLI as a child process, following a real
// `countersign serve` child and forwarding to a real receiver on loopback. Published events arrive
// signed as a subscription's and verify with @countersign/verify; the local answers are the
// attempts in the delivery log, a local 500 is retried; when the server restarts mid-run, listen
// says so, reconnects and receives what was published meanwhile (by a second server on the same
// database): none lost. A second listen with the same token takes over, with the same secret; ^C
// ends the session and cancels what it has not delivered.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyWebhook } from '@countersign/verify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeliveryView, eventually, headerOf } from './helpers/api-client.js';
import {
  CLI,
  freePort,
  killAllServe,
  lastLine,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  type Workspace,
} from './helpers/cli-process.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';

interface Listener {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once the output matches `pattern` (stdout and stderr together). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
}

const listeners: ChildProcess[] = [];

function startListen(args: string[], env: NodeJS.ProcessEnv): Listener {
  const child = spawn(process.execPath, [CLI, 'listen', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  listeners.push(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  child.stderr?.setEncoding('utf8').on('data', (c: string) => {
    err += c;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (pattern, timeoutMs = 30_000) =>
      eventually(
        `listen to print ${pattern}\nstdout:\n${out}\nstderr:\n${err}`,
        async () => `${out}\n${err}`.match(pattern) ?? undefined,
        timeoutMs,
      ),
    exited,
  };
}

describe('countersign listen against a running countersign', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  /** A second server on the same database, which publishes while the first is down. */
  let neighbour: ServeProcess;
  let receiver: Receiver;
  let token: string;
  let home: string;
  let env: NodeJS.ProcessEnv;
  let serverEnv: NodeJS.ProcessEnv;
  let port: number;

  const call = async <T>(base: string, method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.ok, `${method} ${path}: ${res.status} ${text}`).toBe(true);
    return (text ? JSON.parse(text) : undefined) as T;
  };
  const publish = (base: string, event: string, data: Record<string, unknown>) =>
    call<{ id: string; deliveries: number }>(base, 'POST', '/v1/events', {
      event,
      data: { document_id: 'doc_1', audit_url: 'https://sign.example.com/audit/doc_1', ...data },
    });
  const delivery = (id: string) => call<DeliveryView>(server.url, 'GET', `/v1/deliveries/${id}`);

  beforeAll(async () => {
    // A 500 the first time an event for fail-once@ arrives, 200 otherwise.
    const failed = new Set<string>();
    receiver = await startReceiver((request) => {
      const body = JSON.parse(request.body) as { data: { signer_email?: string } };
      const id = headerOf(request, 'webhook-id') as string;
      if (body.data.signer_email === 'fail-once@example.com' && !failed.has(id)) {
        failed.add(id);
        return { status: 500, body: 'not yet' };
      }
      return { status: 200, body: 'ok' };
    });
    workspace = makeWorkspace();
    // The secure default target policy: listen needs no outbound connection from the server.
    serverEnv = { ...workspace.env, COUNTERSIGN_RETRY_SCHEDULE: '0,1s,1h' };
    delete serverEnv.COUNTERSIGN_ALLOW_INSECURE_TARGETS;
    port = await freePort();
    server = await startServe(serverEnv, 60_000, port);
    token = server.printedTokens()[0] as string;
    neighbour = await startServe(serverEnv);
    home = mkdtempSync(join(tmpdir(), 'countersign-home-'));
    env = { ...process.env, XDG_CONFIG_HOME: home, COUNTERSIGN_TOKEN: token, COUNTERSIGN_API_URL: server.url };
    delete env.NODE_OPTIONS;
  }, 120_000);

  afterAll(async () => {
    for (const child of listeners) if (child.exitCode === null) child.kill('SIGKILL');
    await server?.stop();
    await neighbour?.stop();
    await killAllServe();
    await receiver?.close();
    workspace?.remove();
    rmSync(home, { recursive: true, force: true });
  });

  it('refuses a missing or bad --forward-to and unknown event types as usage errors', async () => {
    const missing = await runCli(['listen'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--forward-to/);
    const bad = await runCli(['listen', '--forward-to', 'ftp://localhost/x'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--forward-to must be an http\(s\) URL/);
    const types = await runCli(['listen', '--forward-to', receiver.url, '--events', 'document.opened'], env);
    expect(types.code).toBe(2);
    expect(types.stderr).toMatch(/unknown event type "document.opened"/);
    const unreachable = await runCli(
      ['listen', '--forward-to', receiver.url, '--api-url', `http://127.0.0.1:${await freePort()}`],
      env,
    );
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach/);
  });

  it('forwards, reconnects across a server restart losing nothing, hands over, and cancels on ^C', async () => {
    const first = startListen(
      ['--forward-to', `${receiver.url}/hooks`, '--events', 'document.signed,document.sent'],
      env,
    );
    const ready = await first.waitFor(/Ready! Your webhook signing secret is (whsec_\S+) \(\^C to quit\)/);
    const secret = ready[1] as string;

    // Published events of the chosen types arrive, signed; another type does not.
    const published = [];
    for (let i = 0; i < 4; i++)
      published.push(await publish(server.url, 'document.signed', { signer_email: `s${i}@example.com` }));
    published.push(await publish(server.url, 'document.sent', { signer_email: 'fail-once@example.com' }));
    expect(published.every((p) => p.deliveries === 1)).toBe(true);
    expect((await publish(server.url, 'document.declined', { signer_email: 'x@example.com' })).deliveries).toBe(0);
    // Five events, one of them twice (a local 500, then retried after 1 s).
    const requests = await receiver.waitFor(6, 30_000);
    for (const r of requests) {
      expect(r.url).toBe('/hooks');
      const event = await verifyWebhook({ payload: r.body, headers: r.headers, secret });
      expect(['document.signed', 'document.sent']).toContain((event as { event: string }).event);
    }
    expect(new Set(requests.map((r) => headerOf(r, 'webhook-id')))).toEqual(new Set(published.map((p) => p.id)));

    // One line per delivery: time, event type, event id, the local answer and how long it took.
    await eventually('five lines of 200s', async () =>
      (first.stdout().match(/-> 200 /g) ?? []).length >= 5 ? true : undefined,
    );
    for (const p of published) {
      expect(first.stdout()).toMatch(
        new RegExp(
          `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d  document\\.(signed|sent)  ${p.id}  -> 200 \\(\\d+ ms\\)`,
          'm',
        ),
      );
    }
    const failOnce = published[4]?.id as string;
    expect(first.stdout()).toMatch(new RegExp(`document\\.sent  ${failOnce}  -> 500 \\(\\d+ ms\\)\\n`));

    // The local answers are the attempts in the delivery log.
    const log = await call<{ deliveries: DeliveryView[] }>(server.url, 'GET', '/v1/deliveries?target=listen&limit=100');
    expect(log.deliveries).toHaveLength(5);
    for (const d of log.deliveries) {
      const full = await eventually('the delivery to be delivered', async () => {
        const view = await delivery(d.id);
        return view.status === 'delivered' ? view : undefined;
      });
      const statuses = full.attempts?.map((a) => a.status_code);
      expect(statuses).toEqual(d.event_id === failOnce ? [500, 200] : [200]);
      expect(full.attempts?.[0]?.request_url).toBe(`${receiver.url}/hooks`);
    }

    // The server restarts; meanwhile a second server on the same database takes ten publishes.
    await server.stop();
    await first.waitFor(/lost the connection to http:\/\/127\.0\.0\.1:\d+ \(.*\); reconnecting in \d+ s/);
    const meanwhile = [];
    for (let i = 0; i < 10; i++) {
      meanwhile.push(await publish(neighbour.url, 'document.signed', { signer_email: `later${i}@example.com` }));
    }
    server = await startServe(serverEnv, 60_000, port);
    await first.waitFor(/reconnected/, 60_000);
    const all = await receiver.waitFor(16, 30_000);
    const got = new Set(all.map((r) => headerOf(r, 'webhook-id')));
    const lost = meanwhile.filter((p) => !got.has(p.id));
    expect(lost).toEqual([]);
    for (const r of all.slice(6)) await verifyWebhook({ payload: r.body, headers: r.headers, secret });

    // A second listen with the same token takes the session over, with the same secret; the first stops.
    const dead = `http://127.0.0.1:${await freePort()}/gone`;
    const second = startListen(['--forward-to', dead], env);
    await second.waitFor(new RegExp(`Ready! Your webhook signing secret is ${secret.replace(/[+/=]/g, '\\$&')} `));
    expect(await first.exited).toBe(1);
    expect(first.stderr()).toMatch(/another countersign listen with this token took the session over/);

    // A refused local connection is a failed attempt, retried (then waiting an hour); ^C cancels it.
    const pending = await publish(server.url, 'document.declined', { signer_email: 'y@example.com' });
    expect(pending.deliveries).toBe(1);
    await second.waitFor(new RegExp(`${pending.id}  -> connection refused \\(\\d+ ms\\)  attempt 2`));
    const [waiting] = (
      await call<{ deliveries: DeliveryView[] }>(server.url, 'GET', `/v1/deliveries?event_id=${pending.id}`)
    ).deliveries;
    await eventually('the second refused attempt to be logged', async () => {
      const view = await delivery(waiting?.id as string);
      return view.attempts?.length === 2 && view.status === 'pending' ? view : undefined;
    });
    expect((await delivery(waiting?.id as string)).attempts?.map((a) => a.error)).toEqual([
      'connection refused',
      'connection refused',
    ]);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
    expect(second.stderr()).toMatch(/listen session ended; 1 delivery not yet made cancelled/);
    expect((await delivery(waiting?.id as string)).status).toBe('cancelled');
    expect((await publish(server.url, 'document.signed', { signer_email: 'z@example.com' })).deliveries).toBe(0);
  }, 180_000);

  it('stops, saying why, once its token is revoked', async () => {
    const me = await call<{ account: { name: string } }>(server.url, 'GET', '/v1/me');
    const created = await runCli(['token', 'create', '--account', me.account.name, '--scopes', 'write'], serverEnv);
    expect(created.code, created.stderr).toBe(0);
    const own = lastLine(created.stdout);
    const whoami = (await (
      await fetch(`${server.url}/v1/me`, { headers: { authorization: `Bearer ${own}` } })
    ).json()) as { token: { id: string } };
    const listener = startListen(['--forward-to', receiver.url], { ...env, COUNTERSIGN_TOKEN: own });
    await listener.waitFor(/Ready!/);
    const revoked = await runCli(['token', 'revoke', whoami.token.id], serverEnv);
    expect(revoked.code, revoked.stderr).toBe(0);
    // Revoked by another process (the CLI): the server's check of the stream's token (every 2 s)
    // tells it so, or its next heartbeat (every 10 s) is refused, whichever comes first; either way
    // listen ends rather than forwarding nothing.
    expect(await listener.exited).toBe(1);
    expect(listener.stderr()).toMatch(
      /countersign: (your API token is invalid or expired|your API token was revoked or has expired; stopping)/,
    );
  }, 60_000);
});
