// Retention from the command line and in `serve`, as real `node dist/cli/main.js` processes on
// SQLite and PostgreSQL: `purge --dry-run` changes nothing, `purge` prints what it removed, two
// purges at once remove each row once, a bad --older-than or COUNTERSIGN_RETENTION is a usage
// error, and `serve` purges in the background and says so in one log line.
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import type { PublishRequest, Store } from '../src/store/store.js';
import { killAllServe, makeWorkspace, runCli, startServe, type Workspace } from './helpers/cli-process.js';
import { DIALECTS, dialectLabel, type TestDatabase } from './helpers/databases.js';
import { callbackRow, LEASE_MS, result, SETTINGS } from './helpers/store-fixtures.js';

const DAY = 86_400_000;
const SIGNER = 'retention.signer@example.com';

interface Seeded {
  /** Old events whose deliveries all finished: what a purge removes (one delivery, one attempt each). */
  finished: number;
  /** Old events with a delivery still to be retried: kept. */
  unfinished: number;
  /** Recent events, delivered: kept. */
  recent: number;
}

/**
 * History in the workspace's database, as the server would have made it: events to the account
 * callback (no sealed secret anywhere, so a `serve` started on it makes its own key), delivered
 * by this test acting as the dispatcher.
 */
async function seed(url: string, counts: Seeded): Promise<void> {
  const store = await openStore(openDialect(parseDatabaseUrl(url)));
  try {
    const now = Date.now();
    const account = (await store.ensureAccount('acme', now - 30 * DAY)).id;
    await store.putCallback(callbackRow(account, { auth_type: 'None', bearer_token_sealed: null }));
    const old = now - 10 * DAY;
    await publishDelivered(store, account, counts.finished, old, 'delivered');
    await publishDelivered(store, account, counts.unfinished, old + 1000, 'retry');
    await publishDelivered(store, account, counts.recent, now, 'delivered');
  } finally {
    await store.close();
  }
}

async function publishDelivered(
  store: Store,
  accountId: string,
  count: number,
  at: number,
  outcome: 'delivered' | 'retry',
): Promise<void> {
  const request = (): PublishRequest => ({
    accountId,
    type: 'document.signed',
    dataJson: JSON.stringify({ document_id: 'doc_1', signer_email: SIGNER, audit_url: 'https://sign.example.com/a' }),
    occurredAt: at,
    documentId: 'doc_1',
  });
  for (let i = 0; i < count; i += 500) {
    await store.publishEvents(Array.from({ length: Math.min(500, count - i) }, request), at);
    for (;;) {
      const claimed = await store.claimDueDeliveries('seed', 500, at, LEASE_MS);
      if (claimed.length === 0) break;
      await store.recordAttempts(
        'seed',
        claimed.map((c) => result(c, outcome, at, outcome === 'retry' ? { nextAttemptAt: at + 1000 * DAY } : {})),
        at,
        SETTINGS,
      );
    }
  }
}

async function olderThan(url: string, ageMs: number): Promise<number> {
  const store = await openStore(openDialect(parseDatabaseUrl(url)));
  try {
    return await store.countEventsOlderThan(Date.now() - ageMs);
  } finally {
    await store.close();
  }
}

interface PurgeTotals {
  events: number;
  deliveries: number;
  attempts: number;
}

/** A purge running in a child process, paced by the test through its stdin. */
interface PurgeChild {
  /** Resolves once the child has written this word on stderr. */
  said(word: 'ready' | 'removed'): Promise<void>;
  /** Lets the child go on from where it waits. */
  go(): void;
  totals: Promise<PurgeTotals>;
}

/**
 * Runs purgeOlderThan (7 days, `limit` events a call) to the end in a separate Node process, on the
 * build. It says "ready" once its store is open and waits for a go; then purges until it has
 * removed something, says "removed" and waits for a go again; then purges the rest.
 */
function purgeInChild(env: NodeJS.ProcessEnv, limit: number): PurgeChild {
  const built = (file: string) => JSON.stringify(resolve(import.meta.dirname, '../dist/store', file));
  const script = [
    `import { openStore } from ${built('kysely-store.js')};`,
    `import { openDialect, parseDatabaseUrl } from ${built('open.js')};`,
    'const store = await openStore(openDialect(parseDatabaseUrl(process.env.DATABASE_URL)));',
    "const go = () => new Promise((r) => process.stdin.once('data', r));",
    'const totals = { events: 0, deliveries: 0, attempts: 0 };',
    'const cutoff = Date.now() - 7 * 86_400_000;',
    'let after;',
    'let said = false;',
    "process.stderr.write('ready\\n');",
    'await go();',
    'try {',
    // Pausing between transactions as the background purge does.
    `  do { const b = await store.purgeOlderThan(cutoff, ${limit}, after); totals.events += b.events; totals.deliveries += b.deliveries; totals.attempts += b.attempts; after = b.next;`,
    "    if (!said && totals.events > 0) { said = true; process.stderr.write('removed\\n'); await go(); process.stdin.destroy(); }",
    '    await new Promise((r) => setTimeout(r, 2)); } while (after);',
    '} finally { await store.close(); }',
    'process.stdout.write(JSON.stringify(totals));',
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const listeners = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
    for (const listener of listeners) listener();
  });
  const exited = new Promise<number | null>((resolveExit) => child.once('close', resolveExit));
  return {
    said: (word) =>
      new Promise((resolveSaid, reject) => {
        const check = () => {
          if (err.split('\n').includes(word)) {
            listeners.delete(check);
            resolveSaid();
          }
        };
        listeners.add(check);
        check();
        exited.then(() => reject(new Error(`the purge child exited before saying ${word}:\n${err}`)));
      }),
    go: () => child.stdin.write('go\n'),
    totals: exited.then((code) => {
      if (code !== 0) throw new Error(`the purge child exited with ${code}:\n${err}`);
      return JSON.parse(out) as PurgeTotals;
    }),
  };
}

/** `removed 3 events, 3 deliveries and 3 attempts created before …` -> the three numbers. */
function countsIn(line: string): [number, number, number] {
  const match =
    /(?:removed|would remove) (\d+) events?, (\d+) deliver(?:y|ies) and (\d+) attempts? created before/.exec(line);
  if (!match) throw new Error(`no counts in: ${line}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

describe.each(DIALECTS)('countersign purge on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let database: TestDatabase | undefined;
    let workspace: Workspace | undefined;
    const setUp = async () => {
      database = await dialect.create();
      workspace = makeWorkspace(dialect.name === 'sqlite' ? undefined : database.url);
      return { url: workspace.env.DATABASE_URL as string, env: workspace.env };
    };
    afterEach(async () => {
      await killAllServe();
      workspace?.remove();
      await database?.drop();
      workspace = undefined;
      database = undefined;
    });

    it('with --dry-run prints what it would remove and changes nothing; then removes it and says so', async () => {
      const { url, env } = await setUp();
      await seed(url, { finished: 30, unfinished: 2, recent: 3 });
      expect(await olderThan(url, 7 * DAY)).toBe(32);

      const dry = await runCli(['purge', '--older-than', '7d', '--dry-run'], env);
      expect(dry.code, dry.stderr).toBe(0);
      expect(countsIn(dry.stdout)).toEqual([30, 30, 30]);
      expect(dry.stdout).toMatch(/\(older than 7d\); nothing was changed\n/);
      expect(dry.stdout).toContain('kept 2 older events with deliveries not yet made');
      // Not a terminal: no progress bar, nothing on stderr.
      expect(dry.stderr).toBe('');
      expect(await olderThan(url, 7 * DAY)).toBe(32);

      const real = await runCli(['purge', '--older-than', '7d'], env);
      expect(real.code, real.stderr).toBe(0);
      expect(real.stdout.split('\n')[0]).toMatch(
        /^removed 30 events, 30 deliveries and 30 attempts created before \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(older than 7d\)$/,
      );
      expect(real.stdout).toContain('kept 2 older events');
      expect(real.stderr).toBe('');
      expect(await olderThan(url, 7 * DAY)).toBe(2);
      expect(await olderThan(url, -DAY)).toBe(5);

      const again = await runCli(['purge', '--older-than', '7d'], env);
      expect(again.code, again.stderr).toBe(0);
      expect(countsIn(again.stdout)).toEqual([0, 0, 0]);
    });

    it('lets two processes purge at once: together they remove each row exactly once, and neither fails', async () => {
      const { url, env } = await setUp();
      await seed(url, { finished: 3000, unfinished: 0, recent: 0 });
      // Store-level loops of 20 events a transaction (the built store, as `serve` runs it), so the
      // two processes' transactions interleave; `purge` itself, at 500 a transaction, is done
      // before a second process has started. Paced by what the children say, not by the clock:
      // both begin once both are ready, and neither finishes before both have removed something.
      const children = [purgeInChild(env, 20), purgeInChild(env, 20)];
      for (const phase of ['ready', 'removed'] as const) {
        await Promise.all(children.map((child) => child.said(phase)));
        for (const child of children) child.go();
      }
      const [a, b] = await Promise.all(children.map((child) => child.totals));
      if (!a || !b) throw new Error('two purges expected');
      const split = `split ${JSON.stringify([a, b])}`;
      expect(a.events + b.events, split).toBe(3000);
      expect(a.deliveries + b.deliveries, split).toBe(3000);
      expect(a.attempts + b.attempts, split).toBe(3000);
      // They did run side by side: each removed some.
      expect(Math.min(a.events, b.events), split).toBeGreaterThan(0);
      expect(await olderThan(url, 7 * DAY)).toBe(0);
    });

    it('refuses a missing or bad --older-than as a usage error, before touching the database', async () => {
      const { env } = await setUp();
      for (const [args, message] of [
        [['purge'], 'countersign: purge needs --older-than, e.g. --older-than 30d; see "countersign purge --help"\n'],
        [
          ['purge', '--older-than', 'soon'],
          'countersign: --older-than must be a duration from 1m to 3650d (a number and ms, s, m, h or d; a bare number is seconds), got "soon"\n',
        ],
        [
          ['purge', '--older-than', '10s'],
          'countersign: --older-than must be a duration from 1m to 3650d, got "10s"\n',
        ],
      ] as const) {
        const run = await runCli([...args], env);
        expect(run.code, args.join(' ')).toBe(2);
        expect(run.stderr).toBe(message);
        expect(run.stdout).toBe('');
      }
    });

    it('makes serve refuse to start on a bad COUNTERSIGN_RETENTION', async () => {
      const { env } = await setUp();
      const run = await runCli(['serve', '--port', '0'], { ...env, COUNTERSIGN_RETENTION: 'forever' });
      expect(run.code).toBe(2);
      expect(run.stderr).toBe(
        'countersign: COUNTERSIGN_RETENTION must be a duration from 1m to 3650d (such as 30d or 12h), or off, got "forever"\n',
      );
    });

    it('purges in the background of serve, logs one line of counts, and stops cleanly', async () => {
      const { url, env } = await setUp();
      await seed(url, { finished: 5, unfinished: 1, recent: 2 });
      const server = await startServe({ ...env, COUNTERSIGN_RETENTION: '7d' });
      await expect.poll(() => server.stdout().includes('retention purge removed'), { timeout: 20_000 }).toBe(true);
      const lines = server
        .stdout()
        .split('\n')
        .filter((line) => line.includes('retention purge'));
      expect(lines).toHaveLength(1);
      const logged = JSON.parse(lines[0] as string) as Record<string, unknown>;
      expect(logged).toMatchObject({ level: 30, events: 5, deliveries: 5, attempts: 5 });
      expect(logged.msg).toBe('retention purge removed 5 events, 5 deliveries and 5 attempts');
      expect(lines[0]).not.toContain(SIGNER);
      expect(await olderThan(url, 7 * DAY)).toBe(1);
      expect(await server.stop()).toBe(0);
      expect(server.stdout()).toContain('"stopped"');
    }, 60_000);
  });
});
