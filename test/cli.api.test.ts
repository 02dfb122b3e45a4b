// The API commands as an operator runs them: the built CLI as child processes against a real
// `countersign serve` (and its dispatcher) delivering to a real receiver on loopback. login saves
// the token from standard input with mode 0600; every command goes through the HTTP API, prints a
// table or --json, and exits 0, 1 with the API's message, or 2 for a usage error.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  type CliResult,
  freePort,
  killAllServe,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  type Workspace,
} from './helpers/cli-process.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';

/** Runs the CLI with `input` on its standard input (not a terminal). */
function runWithInput(args: string[], env: NodeJS.ProcessEnv, input: string): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('the API commands against a running countersign', () => {
  let workspace: Workspace;
  let server: ServeProcess;
  let receiver: Receiver;
  let token: string;
  let home: string;
  let status = 200;
  /** The CLI's environment: the server's address, a config folder of its own, no token. */
  let env: NodeJS.ProcessEnv;
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => runCli(args, { ...env, ...extra });
  const json = async <T>(args: string[]) => {
    const result = await cli([...args, '--json']);
    expect(result.code, result.stderr).toBe(0);
    return JSON.parse(result.stdout) as T;
  };

  beforeAll(async () => {
    receiver = await startReceiver(() => ({ status, body: status === 200 ? 'ok' : 'boom' }));
    workspace = makeWorkspace();
    server = await startServe({
      ...workspace.env,
      COUNTERSIGN_NO_DISPATCHER: '',
      COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
      COUNTERSIGN_RETRY_SCHEDULE: '0',
    });
    token = server.printedTokens()[0] as string;
    home = mkdtempSync(join(tmpdir(), 'countersign-home-'));
    env = { ...process.env, XDG_CONFIG_HOME: home, COUNTERSIGN_API_URL: server.url };
    delete env.COUNTERSIGN_TOKEN;
    delete env.NODE_OPTIONS;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    await receiver?.close();
    workspace?.remove();
    rmSync(home, { recursive: true, force: true });
  });

  it('refuses to run without a token, and never takes one as a flag', async () => {
    const none = await cli(['events', 'list']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no API token: run "countersign login", or set COUNTERSIGN_TOKEN');
    const flag = await cli(['events', 'list', '--token', token]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown option --token');
  });

  it('login checks the token from standard input and saves it where only this user can read it', async () => {
    const refused = await runWithInput(['login'], env, 'cst_not_a_real_token_at_all_0000000000000000000\n');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('your API token is invalid or expired');

    const login = await runWithInput(['login', '--api-url', `${server.url}/`], env, `${token}\n`);
    expect(login.code, login.stderr).toBe(0);
    const path = join(home, 'countersign', 'config.json');
    expect(login.stdout).toContain(`logged in to ${server.url} as account "default"`);
    expect(login.stdout).toContain(path);
    expect(login.stdout).not.toContain(token);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'countersign')).mode & 0o777).toBe(0o700);
    expect(JSON.parse(readFileSync(path, 'utf8'))).toEqual({ api_url: server.url, token });

    // The saved login is enough, even with no address in the environment; COUNTERSIGN_TOKEN wins over it.
    const { COUNTERSIGN_API_URL: _, ...withoutUrl } = env;
    const listed = await runCli(['events', 'list'], withoutUrl);
    expect(listed.code, listed.stderr).toBe(0);
    const overridden = await cli(['events', 'list'], {
      COUNTERSIGN_TOKEN: 'cst_not_a_real_token_at_all_0000000000000000000',
    });
    expect(overridden.code).toBe(1);
  });

  let subscriptionId = '';

  it('creates, lists, shows, pauses, resumes and rotates a subscription, as tables and as JSON', async () => {
    const created = await runWithInput(
      [
        'subscriptions',
        'create',
        '--target-url',
        `${receiver.url}/hooks`,
        '--event-type',
        'document.signed',
        '--secret-token-stdin',
      ],
      env,
      'tok_from_stdin\n',
    );
    expect(created.code, created.stderr).toBe(0);
    subscriptionId = /^id:\s+(sub_\S+)/m.exec(created.stdout)?.[1] as string;
    expect(subscriptionId).toMatch(/^sub_/);
    expect(created.stdout).toMatch(/^signing_secret: whsec_\S+ \(shown only this once\)$/m);
    expect(created.stdout).toMatch(/^secret_token:\s+set$/m);

    const again = await cli([
      'subscriptions',
      'create',
      '--target-url',
      `${receiver.url}/hooks`,
      '--event-type',
      'document.signed',
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^countersign: .*target_url/m);

    const table = await cli(['subscriptions', 'list']);
    expect(table.code).toBe(0);
    const [header, row] = table.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+STATUS\s+EVENT TYPES\s+LAST DELIVERY\s+TARGET URL$/);
    expect(row).toMatch(new RegExp(`^${subscriptionId}\\s+active\\s+document.signed\\s+-\\s+${receiver.url}/hooks$`));
    const listed = await json<{ subscriptions: { id: string }[] }>(['subscriptions', 'list']);
    expect(listed.subscriptions.map((s) => s.id)).toEqual([subscriptionId]);

    expect((await cli(['subscriptions', 'pause', subscriptionId])).stdout).toBe(`${subscriptionId} is paused\n`);
    const shown = await json<{ subscriptions: { status: string }[] }>(['subscriptions', 'get', subscriptionId]);
    expect(shown.subscriptions[0]?.status).toBe('paused');
    expect((await cli(['subscriptions', 'resume', subscriptionId])).stdout).toBe(`${subscriptionId} is active\n`);

    const rotated = await cli(['subscriptions', 'rotate-secret', subscriptionId, '--grace-period', '1h']);
    expect(rotated.code, rotated.stderr).toBe(0);
    expect(rotated.stdout).toMatch(
      /^signing_secret: whsec_\S+ \(shown only this once\)\nprevious secret signs until: \d{4}-/,
    );
  });

  it('trigger publishes realistic sample events, with fields set, and reports what it queued', async () => {
    const before = receiver.requests.length;
    const one = await cli([
      'trigger',
      'document.signed',
      '--document-id',
      'doc_cli',
      '--data',
      'signer_email=ops@example.com',
      '--data',
      'pages=3',
    ]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^evt_\S+ document\.signed doc_cli -> 1 delivery queued\n$/);
    const [got] = (await receiver.waitFor(before + 1)).slice(before);
    const body = JSON.parse(got?.body ?? '{}');
    expect(body.data).toEqual({
      document_id: 'doc_cli',
      signer_email: 'ops@example.com',
      audit_url: 'https://sign.example.com/audit/doc_cli',
      pages: 3,
    });
    expect(body.secret_token).toBe('tok_from_stdin');

    const many = await cli(['trigger', 'document.signed', '--count', '5']);
    expect(many.code, many.stderr).toBe(0);
    const lines = many.stdout.trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(lines[5]).toBe('published 5 events; 5 deliveries queued');
    // Not a terminal: the progress bar stays quiet.
    expect(many.stderr).toBe('');
    await receiver.waitFor(before + 6);
    const documents = new Set(lines.slice(0, 5).map((l) => l.split(' ')[2]));
    expect(documents.size).toBe(5);
    // More than one batch request (100 events each), every event printed once.
    const burst = await cli(['trigger', 'document.signed', '--count', '250']);
    expect(burst.code, burst.stderr).toBe(0);
    const burstLines = burst.stdout.trim().split('\n');
    expect(burstLines).toHaveLength(251);
    expect(burstLines[250]).toBe('published 250 events; 250 deliveries queued');
    expect(new Set(burstLines.slice(0, 250).map((l) => l.split(' ')[0])).size).toBe(250);
    await receiver.waitFor(before + 256, 60_000);

    const declined = await json<{ id: string; event: string; deliveries: number }[]>(['trigger', 'document.declined']);
    expect(declined).toEqual([
      { id: expect.stringMatching(/^evt_/), event: 'document.declined', timestamp: expect.any(String), deliveries: 0 },
    ]);
    const bad = await cli(['trigger', 'document.signed', '--count', '0']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--count must be an integer from 1 to 10000');
  });

  it('lists and shows events and deliveries, and redelivers one', async () => {
    const events = await json<{ events: { id: string; event: string }[] }>([
      'events',
      'list',
      '--document-id',
      'doc_cli',
    ]);
    expect(events.events).toHaveLength(1);
    const eventId = events.events[0]?.id as string;
    const shown = await cli(['events', 'get', eventId]);
    expect(shown.stdout).toContain(`id:         ${eventId}`);
    expect(shown.stdout).toContain('"document_id": "doc_cli"');

    const deliveries = await json<{ deliveries: { id: string; status: string }[] }>([
      'deliveries',
      'list',
      '--event',
      eventId,
    ]);
    expect(deliveries.deliveries).toEqual([expect.objectContaining({ status: 'delivered' })]);
    const deliveryId = deliveries.deliveries[0]?.id as string;
    const table = await cli(['deliveries', 'list', '--status', 'delivered', '--limit', '2']);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+ATTEMPTS\s+LAST\s+CREATED\s+EVENT\s+TARGET$/);
    expect(table.stdout.trim().split('\n')).toHaveLength(3);

    const redelivered = await cli(['deliveries', 'redeliver', deliveryId]);
    expect(redelivered.stdout).toBe(`${deliveryId} queued for one more attempt now\n`);
    await expect
      .poll(async () => (await cli(['deliveries', 'get', deliveryId])).stdout, { timeout: 10_000 })
      .toMatch(/^2 \(manual\)\s+\S+\s+\d+\s+200\s+-\s+ok$/m);

    const missing = await cli(['deliveries', 'get', 'dlv_01JZZZZZZZZZZZZZZZZZZZZZZZ']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe('countersign: delivery not found\n');
    const badStatus = await cli(['deliveries', 'list', '--status', 'lost']);
    expect(badStatus.code).toBe(2);
  });

  it('tail prints each new attempt as it happens', async () => {
    const child: ChildProcess = spawn(process.execPath, [CLI, 'deliveries', 'tail', '--interval', '200ms'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr?.setEncoding('utf8').on('data', (c: string) => {
      err += c;
    });
    try {
      await expect.poll(() => err, { timeout: 10_000 }).toContain('following deliveries');
      const published = await cli(['trigger', 'document.signed', '--document-id', 'doc_tail']);
      const eventId = published.stdout.split(' ')[0] as string;
      await expect
        .poll(() => out, { timeout: 10_000 })
        .toMatch(new RegExp(`dlv_\\S+  ${eventId}  #1 delivered -> 200 \\(\\d+ ms\\)  ${receiver.url}/hooks`));
    } finally {
      child.kill();
    }
  });

  it('replay re-queues a subscription’s failed deliveries of a window', async () => {
    status = 500;
    const published = await cli(['trigger', 'document.signed', '--document-id', 'doc_replay']);
    const eventId = published.stdout.split(' ')[0] as string;
    await expect
      .poll(
        async () =>
          (await json<{ deliveries: { status: string }[] }>(['deliveries', 'list', '--event', eventId])).deliveries[0]
            ?.status,
        {
          timeout: 10_000,
        },
      )
      .toBe('failed');
    status = 200;
    const replayed = await cli(['replay', '--subscription', subscriptionId, '--since', '1h']);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(replayed.stdout).toBe('1 failed delivery re-queued\n');
    await expect
      .poll(
        async () =>
          (await json<{ deliveries: { status: string }[] }>(['deliveries', 'list', '--event', eventId])).deliveries[0]
            ?.status,
        {
          timeout: 10_000,
        },
      )
      .toBe('delivered');
    const backwards = await cli(['replay', '--subscription', subscriptionId, '--since', '1h', '--until', '2h']);
    expect(backwards.code).toBe(2);
    expect(backwards.stderr).toContain('--since must be before --until');
  });

  it('deletes only when told to, and sends a test event', async () => {
    const test = await cli(['subscriptions', 'test', subscriptionId]);
    expect(test.stdout).toMatch(/^evt_\S+ document\.signed \(test\) -> 1 delivery queued\n$/);
    const unasked = await cli(['subscriptions', 'delete', subscriptionId]);
    expect(unasked.code).toBe(2);
    expect(unasked.stderr).toContain('needs --yes');
    expect((await cli(['subscriptions', 'delete', subscriptionId, '--yes'])).stdout).toBe(
      `deleted ${subscriptionId}\n`,
    );
    const gone = await cli(['subscriptions', 'get', subscriptionId]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('countersign: subscription not found\n');
  });

  it('sets and changes a subscription’s rate limit and ordering, and subscribes to operational events', async () => {
    const created = await cli([
      'subscriptions',
      'create',
      '--target-url',
      `${receiver.url}/controlled`,
      '--event-type',
      'document.signed,delivery.failed',
      '--rate-limit',
      '20',
      '--ordering',
      'document',
    ]);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^event_types:\s+document\.signed, delivery\.failed$/m);
    expect(created.stdout).toMatch(/^rate_limit:\s+20\/s$/m);
    expect(created.stdout).toMatch(/^ordering:\s+document$/m);
    const id = /^id:\s+(sub_\S+)/m.exec(created.stdout)?.[1] as string;

    const updated = await cli(['subscriptions', 'update', id, '--rate-limit', 'none', '--ordering', 'none']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(updated.stdout).toMatch(/^rate_limit:\s+none$/m);
    expect(updated.stdout).toMatch(/^ordering:\s+none$/m);
    const shown = await json<{ subscriptions: { rate_limit_per_second: number | null; ordering: string }[] }>([
      'subscriptions',
      'get',
      id,
    ]);
    expect(shown.subscriptions[0]).toMatchObject({ rate_limit_per_second: null, ordering: 'none' });

    for (const [args, message] of [
      [['--rate-limit', '0'], '--rate-limit must be an integer from 1 to 10000, got "0"'],
      [['--rate-limit', '10001'], '--rate-limit must be an integer from 1 to 10000, got "10001"'],
      [['--ordering', 'fifo'], '--ordering takes none or document, got "fifo"'],
      [[], 'subscriptions update needs --rate-limit or --ordering'],
    ] as const) {
      const refused = await cli(['subscriptions', 'update', id, ...args]);
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(message);
    }
    const unknown = await cli([
      'subscriptions',
      'create',
      '--target-url',
      `${receiver.url}/x`,
      '--event-type',
      'delivery.lost',
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown event type "delivery.lost"');
    expect((await cli(['subscriptions', 'delete', id, '--yes'])).code).toBe(0);
  });

  it('says so when nothing answers at the address', async () => {
    const port = await freePort();
    const result = await cli(['events', 'list'], {
      COUNTERSIGN_API_URL: `http://127.0.0.1:${port}`,
      COUNTERSIGN_TOKEN: token,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot reach http://127.0.0.1:${port}: ECONNREFUSED`);
    const malformed = await cli(['events', 'list', '--api-url', 'localhost:8080'], { COUNTERSIGN_TOKEN: token });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('--api-url must be an http(s) URL');
  });

  it('has a help of its own for every API command', async () => {
    const commands = [
      ['login'],
      ['trigger'],
      ['replay'],
      ...['list', 'get', 'create', 'update', 'pause', 'resume', 'delete', 'rotate-secret', 'test'].map((c) => [
        'subscriptions',
        c,
      ]),
      ...['list', 'get'].map((c) => ['events', c]),
      ...['list', 'get', 'redeliver', 'tail'].map((c) => ['deliveries', c]),
      ...['create', 'list', 'get', 'send', 'sign', 'decline'].map((c) => ['documents', c]),
      ['audit', 'verify'],
    ];
    for (const command of commands) {
      const help = await cli([...command, '--help']);
      expect(help.code, command.join(' ')).toBe(0);
      expect(help.stdout).toContain(`Usage: countersign ${command.join(' ')}`);
      if (command[0] !== 'login') expect(help.stdout).toContain('--json');
      expect(help.stdout).toContain('--api-url');
    }
  });
});
