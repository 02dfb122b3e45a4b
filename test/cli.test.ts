// The CLI as operators run it: real `node dist/cli/main.js` processes against a real database,
// with `serve` running as its own process next to the token commands that share its SQLite file.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from './helpers/children.js';
import {
  freePort,
  killAllServe,
  lastLine,
  makeWorkspace,
  runCli,
  type ServeProcess,
  startServe,
  TOKEN_SHAPE,
  type Workspace,
} from './helpers/cli-process.js';
import { dialectLabel, postgresDialect, type TestDatabase } from './helpers/databases.js';

const TOKEN_LINE = /^cst_[A-Za-z0-9_-]{43}$/;

/** Resolves once `check` holds, looking every 50 ms for up to 30 s. */
async function eventuallyTrue(check: () => boolean): Promise<void> {
  for (let waited = 0; !check(); waited += 50) {
    if (waited > 30_000) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function api(
  server: ServeProcess,
  token: string,
  method: 'GET' | 'POST' = 'GET',
  body?: unknown,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${server.url}/v1/webhooks/subscriptions`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** `created token tok_… for account "NAME" (acc_…), …` -> the token id. */
function createdTokenId(stdout: string): string {
  const match = /created token (tok_[0-9A-Z]{26})/.exec(stdout);
  if (!match) throw new Error(`no token id in:\n${stdout}`);
  return match[1] as string;
}

describe('token commands next to a running server', () => {
  let workspace: Workspace;
  let server: ServeProcess;

  beforeAll(async () => {
    workspace = makeWorkspace();
    server = await startServe(workspace.env);
  });

  afterAll(async () => {
    await server?.stop();
    await killAllServe();
    workspace?.remove();
  });

  it('prints the new token alone on the last stdout line, and the running server accepts it', async () => {
    const result = await runCli(['token', 'create', '--account', 'globex', '--create-account'], workspace.env);
    expect(result.code, result.stderr).toBe(0);
    const token = lastLine(result.stdout);
    expect(token).toMatch(TOKEN_LINE);
    expect(result.stdout.match(TOKEN_SHAPE)).toEqual([token]);
    expect(result.stdout).toContain('"globex"');

    const created = await api(server, token, 'POST', {
      target_url: 'https://your-app.com/webhooks/globex',
      event_type: 'document.sent',
    });
    expect(created.status).toBe(200);
    const listed = await api(server, token);
    expect(listed.status).toBe(200);
    expect((listed.body as { subscriptions: unknown[] }).subscriptions).toHaveLength(1);
  });

  it('keeps accounts apart: a token for another account does not see globex’s subscriptions', async () => {
    const result = await runCli(['token', 'create', '--account', 'initech', '--create-account'], workspace.env);
    expect(result.code, result.stderr).toBe(0);
    const listed = await api(server, lastLine(result.stdout));
    expect(listed.status).toBe(200);
    expect((listed.body as { subscriptions: unknown[] }).subscriptions).toEqual([]);
  });

  it('lists the tokens with their id, account, scopes and state', async () => {
    const created = await runCli(
      ['token', 'create', '--account', 'listed-co', '--create-account', '--scopes', 'read'],
      workspace.env,
    );
    expect(created.code, created.stderr).toBe(0);
    const id = createdTokenId(created.stdout);
    const result = await runCli(['token', 'list'], workspace.env);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(lines[0]).toBe('ID\tACCOUNT\tSCOPES\tCREATED\tEXPIRES\tSTATE\tKIND');
    const row = lines.find((line) => line.startsWith(`${id}\t`));
    expect(row).toBeDefined();
    expect(row?.split('\t')).toEqual([id, 'listed-co', 'read', expect.stringMatching(/Z$/), '-', 'active', 'api']);
    // The list never shows a token itself.
    expect(result.stdout.match(TOKEN_SHAPE)).toBeNull();
  });

  it('gives a --scopes read token 403 on writes and 200 on reads', async () => {
    const result = await runCli(['token', 'create', '--account', 'globex', '--scopes', 'read'], workspace.env);
    expect(result.code, result.stderr).toBe(0);
    const token = lastLine(result.stdout);
    const write = await api(server, token, 'POST', {
      target_url: 'https://your-app.com/webhooks/read-only',
      event_type: 'document.sent',
    });
    expect(write.status).toBe(403);
    expect((await api(server, token)).status).toBe(200);
  });

  it('admits a token made with --expires-in 3s until it expires, and refuses it once it has', async () => {
    const result = await runCli(['token', 'create', '--account', 'globex', '--expires-in', '3s'], workspace.env);
    expect(result.code, result.stderr).toBe(0);
    const token = lastLine(result.stdout);
    expect(token).toMatch(TOKEN_LINE);
    const id = createdTokenId(result.stdout);
    const expires = /expires (\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)/.exec(result.stdout)?.[1];
    expect(expires).toBeDefined();
    // The printed time is cut to the second; the real expiry is within the second after it.
    const expiredBy = Date.parse(expires as string) + 1000;
    expect(expiredBy - Date.now()).toBeLessThan(60_000);
    // Straight after the command (its 3 s run from inside it), the running server admits the token.
    const admitted = await api(server, token);
    expect(admitted.status, JSON.stringify(admitted.body)).toBe(200);

    const listed = await runCli(['token', 'list'], workspace.env);
    const row = listed.stdout.split('\n').find((line) => line.startsWith(`${id}\t`));
    expect(row?.split('\t')[4]).toBe(expires);

    // A wait for the clock to pass the expiry, not a race: a slower machine only waits less.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiredBy - Date.now()) + 100));
    const refused = await api(server, token);
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ error: { code: 'unauthorized' } });
    const after = await runCli(['token', 'list'], workspace.env);
    expect(
      after.stdout
        .split('\n')
        .find((line) => line.startsWith(`${id}\t`))
        ?.split('\t')[5],
    ).toBe('expired');
  });

  it('revokes a token so that the running server answers 401 at once', async () => {
    const created = await runCli(['token', 'create', '--account', 'globex'], workspace.env);
    expect(created.code, created.stderr).toBe(0);
    const token = lastLine(created.stdout);
    const id = createdTokenId(created.stdout);
    expect((await api(server, token)).status).toBe(200);

    const revoked = await runCli(['token', 'revoke', id], workspace.env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(id);
    const refused = await api(server, token);
    expect(refused.status).toBe(401);
    expect(refused.body).toMatchObject({ error: { code: 'unauthorized' } });

    const list = await runCli(['token', 'list'], workspace.env);
    expect(
      list.stdout
        .split('\n')
        .find((line) => line.startsWith(`${id}\t`))
        ?.split('\t')[5],
    ).toBe('revoked');
    const again = await runCli(['token', 'revoke', id], workspace.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(id);
  });

  it('exits non-zero with a message when token create has no --account or a bad --expires-in', async () => {
    const noAccount = await runCli(['token', 'create'], workspace.env);
    expect(noAccount.code).not.toBe(0);
    expect(noAccount.stderr).toContain('--account');
    expect(noAccount.stdout.match(TOKEN_SHAPE)).toBeNull();
    const badExpiry = await runCli(['token', 'create', '--account', 'x', '--expires-in', 'soon'], workspace.env);
    expect(badExpiry.code).not.toBe(0);
    expect(badExpiry.stderr).toContain('--expires-in');
  });
});

describe('first start', () => {
  let workspace: Workspace;
  afterEach(async () => {
    await killAllServe();
    workspace?.remove();
  });

  it('prints a token once on an empty database, and none on the next start', async () => {
    workspace = makeWorkspace();
    const first = await startServe(workspace.env);
    const printed = first.printedTokens();
    expect(printed).toHaveLength(1);
    const token = printed[0] as string;
    expect((await api(first, token)).status).toBe(200);
    expect(await first.stop()).toBe(0);

    const second = await startServe(workspace.env);
    expect(second.printedTokens()).toEqual([]);
    expect(second.stdout()).not.toContain('First start');
    // The token from the first start still works.
    expect((await api(second, token)).status).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  it('writes the token to a file only its owner reads, never to an output that is not a terminal', async () => {
    workspace = makeWorkspace();
    const first = await startServe(workspace.env);
    const file = join(workspace.dir, 'first-start-token');
    const [token] = first.printedTokens();
    expect(token).toMatch(/^cst_/);
    expect(first.stdout()).not.toContain(token);
    expect(first.stdout()).toContain(`it is in ${file} (readable by this user only)`);
    expect(readFileSync(file, 'utf8')).toBe(`${token}\n`);
    expect((statSync(file).mode & 0o777).toString(8)).toBe('600');
    expect((await api(first, token as string)).status).toBe(200);
  });

  it('prints the token once on a terminal, and writes no file', async () => {
    workspace = makeWorkspace();
    const port = await freePort();
    // A real pseudo-terminal (util-linux script): countersign's standard output is a TTY there.
    const child = spawn('script', ['-qfec', `"${process.execPath}" "${CLI}" serve --port ${port}`, '/dev/null'], {
      env: workspace.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    try {
      await eventuallyTrue(() => /cst_[A-Za-z0-9_-]{43}/.test(out) && out.includes('Sign in with it'));
      const token = /cst_[A-Za-z0-9_-]{43}/.exec(out)?.[0] as string;
      expect(out).toContain('It is shown only this once');
      expect(existsSync(join(workspace.dir, 'first-start-token'))).toBe(false);
      const res = await fetch(`http://127.0.0.1:${port}/v1/me`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
    } finally {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    }
  }, 60_000);

  it('says where to open the portal, at COUNTERSIGN_PUBLIC_URL when it is set', async () => {
    workspace = makeWorkspace();
    const first = await startServe({ ...workspace.env, COUNTERSIGN_PUBLIC_URL: 'https://webhooks.example.com' });
    expect(first.stdout()).toContain('Sign in with it at https://webhooks.example.com/ui/,');
    expect(await first.stop()).toBe(0);
  });

  it('prints no token when token create made an account before the first start', async () => {
    workspace = makeWorkspace();
    // token create needs the database to exist: migrate makes it, without an account.
    const migrated = await runCli(['migrate'], workspace.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const created = await runCli(['token', 'create', '--account', 'ops', '--create-account'], workspace.env);
    expect(created.code, created.stderr).toBe(0);
    const server = await startServe(workspace.env);
    expect(server.printedTokens()).toEqual([]);
    expect((await api(server, lastLine(created.stdout))).status).toBe(200);
  });
});

describe('token create for an account that does not exist', () => {
  let workspace: Workspace;
  beforeAll(async () => {
    workspace = makeWorkspace();
    const migrated = await runCli(['migrate'], workspace.env);
    expect(migrated.code, migrated.stderr).toBe(0);
  });
  afterAll(() => workspace?.remove());

  it('refuses it, says how to create it, and makes no token', async () => {
    const refused = await runCli(['token', 'create', '--account', 'acme'], workspace.env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('countersign: no account "acme"; pass --create-account to create it\n');
    expect(refused.stdout).toBe('');
    const listed = await runCli(['token', 'list'], workspace.env);
    expect(listed.stdout).toBe('ID\tACCOUNT\tSCOPES\tCREATED\tEXPIRES\tSTATE\tKIND\n');
  });

  it('creates it with --create-account; later tokens for it need no flag', async () => {
    const created = await runCli(['token', 'create', '--account', 'acme', '--create-account'], workspace.env);
    expect(created.code, created.stderr).toBe(0);
    expect(lastLine(created.stdout)).toMatch(TOKEN_LINE);
    const accountId = /\((acc_[0-9A-Z]{26})\)/.exec(created.stdout)?.[1];
    expect(accountId).toBeDefined();

    const again = await runCli(['token', 'create', '--account', 'acme'], workspace.env);
    expect(again.code, again.stderr).toBe(0);
    expect(lastLine(again.stdout)).toMatch(TOKEN_LINE);
    expect(again.stdout).toContain(`"acme" (${accountId})`);
    // --create-account on an account that exists takes that account.
    const existing = await runCli(['token', 'create', '--account', 'acme', '--create-account'], workspace.env);
    expect(existing.stdout).toContain(`"acme" (${accountId})`);
  });
});

describe('commands that need an existing database', () => {
  let workspace: Workspace;
  let database: TestDatabase | undefined;
  beforeAll(() => {
    workspace = makeWorkspace();
  });
  afterAll(async () => {
    workspace?.remove();
    await database?.drop();
  });

  const missing = (path: string) =>
    `countersign: no database at ${path}; run "countersign migrate" (or start "countersign serve") to create it\n`;

  it.each([
    [['token', 'list']],
    [['token', 'create', '--account', 'acme', '--create-account']],
    [['token', 'revoke', 'tok_01M8VKM3ESNZS3VGA8T9V1SD2W']],
    [['worker']],
    [['rotate-master-key']],
  ])('%j refuses a SQLite file that is not there, and makes none', async (args) => {
    const path = workspace.env.DATABASE_URL as string;
    // Short: on a database it created, a worker would run until the timeout.
    const result = await runCli(args, workspace.env, 20_000);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(missing(path));
    expect(existsSync(path)).toBe(false);
  });

  it('refuses the file named by --database too, and lets :memory: through', async () => {
    const path = join(workspace.dir, 'typo.db');
    const result = await runCli(['token', 'list', '--database', path], workspace.env);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(missing(path));
    const memory = await runCli(['token', 'list', '--database', ':memory:'], workspace.env);
    expect(memory.code, memory.stderr).toBe(0);
  });

  it('is created by migrate, after which token list answers', async () => {
    const path = workspace.env.DATABASE_URL as string;
    const migrated = await runCli(['migrate'], workspace.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(existsSync(path)).toBe(true);
    const listed = await runCli(['token', 'list'], workspace.env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toBe('ID\tACCOUNT\tSCOPES\tCREATED\tEXPIRES\tSTATE\tKIND\n');
  });

  it.skipIf(!postgresDialect.available)('does not apply to PostgreSQL', async () => {
    database = await postgresDialect.create();
    const result = await runCli(['token', 'list', '--database', database.url], workspace.env);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('migrate', () => {
  let workspace: Workspace | undefined;
  let database: TestDatabase | undefined;
  afterEach(async () => {
    workspace?.remove();
    workspace = undefined;
    await database?.drop();
    database = undefined;
  });

  it('applies the migrations to a fresh SQLite file, then reports it is up to date', async () => {
    workspace = makeWorkspace();
    const first = await runCli(['migrate'], workspace.env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^applied 001_initial/);
    const second = await runCli(['migrate'], workspace.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toMatch(/is up to date\n$/);
  });

  describe.skipIf(!postgresDialect.available)(`on ${dialectLabel(postgresDialect)}`, () => {
    it('lets two migrate processes start at once on a fresh database: both succeed, the schema exists once', async () => {
      database = await postgresDialect.create();
      workspace = makeWorkspace(database.url);
      const env = workspace.env;
      const [a, b] = await Promise.all([runCli(['migrate'], env), runCli(['migrate'], env)]);
      expect(a.code, a.stderr).toBe(0);
      expect(b.code, b.stderr).toBe(0);
      // Exactly one of them applied the migration; the other found it done.
      const outputs = [a.stdout, b.stdout].sort();
      expect(outputs[0]).toMatch(/^applied 001_initial/);
      expect(outputs[1]).toMatch(/is up to date\n$/);

      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      try {
        const applied = await client.query('SELECT name FROM countersign_migrations');
        // Every migration in src/store/migrations, each once.
        const migrations = readdirSync(join(import.meta.dirname, '../src/store/migrations'))
          .filter((file) => file.endsWith('.ts'))
          .map((file) => file.replace(/\.ts$/, ''))
          .sort();
        expect(migrations[0]).toBe('001_initial');
        expect(applied.rows.map((r: { name: string }) => r.name)).toEqual(migrations);
        const tables = await client.query(
          `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'subscriptions'`,
        );
        expect(tables.rowCount).toBe(1);
      } finally {
        await client.end();
      }
      const third = await runCli(['migrate'], env);
      expect(third.code, third.stderr).toBe(0);
      expect(third.stdout).toMatch(/is up to date\n$/);
    });
  });
});
