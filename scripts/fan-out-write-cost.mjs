// What a fan-out costs the SQLite store, with no HTTP in the way: `node scripts/fan-out-write-cost.mjs [REPO]`
// after `npm run build` in REPO (default: this checkout). Publishes 100 events, each to 1,000
// subscriptions, one event per transaction; then claims 256 at a time and records them delivered
// 32 at a time, in a shuffled order as answers arrive, until nothing is left. Prints the time each
// phase took and the bytes the process wrote (/proc/self/io: the WAL and its checkpoints).
//
// Run it against a worktree of an older commit to compare: `git worktree add /tmp/old <commit>`,
// `npm ci` there, then `node scripts/fan-out-write-cost.mjs /tmp/old`.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { subscriptionRow } from './lib/subscription-row.mjs';

const SUBSCRIPTIONS = 1_000;
const EVENTS = 100;
const CLAIM = 256;
const RECORD = 32;

const repo = resolve(process.argv[2] ?? '.');
const load = (path) => import(pathToFileURL(join(repo, path)).href);
const { openStore } = await load('dist/store/kysely-store.js');
const { openDialect, parseDatabaseUrl } = await load('dist/store/open.js');

const written = () => Number(/wchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
const phases = new Map();
async function measure(phase, fn) {
  const t0 = process.hrtime.bigint();
  const w0 = written();
  const value = await fn();
  const total = phases.get(phase) ?? { ms: 0, bytes: 0, calls: 0 };
  total.ms += Number(process.hrtime.bigint() - t0) / 1e6;
  total.bytes += written() - w0;
  total.calls++;
  phases.set(phase, total);
  return value;
}

const dir = mkdtempSync(join(tmpdir(), 'countersign-fan-out-cost-'));
const store = await openStore(openDialect(parseDatabaseUrl(join(dir, 'fan-out.db'))));
try {
  const now = Date.now();
  const account = await store.ensureAccount('fan-out', now);
  for (let i = 0; i < SUBSCRIPTIONS; i++) {
    await store.createSubscription(subscriptionRow(account.id, `sub_fanout${String(i).padStart(4, '0')}`, i, now));
  }
  const event = {
    accountId: account.id,
    type: 'document.signed',
    dataJson: '{"document_id":"doc","signer_email":"a@example.com","audit_url":"https://sign.example.com/a"}',
    occurredAt: now,
  };
  for (let i = 0; i < EVENTS; i++) await measure('publish', () => store.publishEvents([event], Date.now()));

  let delivered = 0;
  for (;;) {
    const claimed = await measure('claim', () => store.claimDueDeliveries('fan-out-cost', CLAIM, Date.now(), 60_000));
    if (claimed.length === 0) break;
    const answered = claimed
      .map((d) => ({ d, order: Math.random() }))
      .sort((a, b) => a.order - b.order)
      .map(({ d }) => d);
    for (let i = 0; i < answered.length; i += RECORD) {
      const at = Date.now();
      const results = answered.slice(i, i + RECORD).map((d) => ({
        deliveryId: d.id,
        accountId: d.accountId,
        subscriptionId: d.subscriptionId,
        attempt: d.attempt,
        trigger: d.trigger,
        startedAt: at,
        durationMs: 1,
        statusCode: 200,
        error: null,
        responseExcerpt: null,
        requestUrl: 'https://endpoint.example.com/hooks',
        requestHeaders: '{}',
        responseHeaders: '{}',
        outcome: 'delivered',
        verdict: 'success',
      }));
      await measure('record', () =>
        store.recordAttempts('fan-out-cost', results, at, { disableAfterFailingMs: 86_400_000 }),
      );
      delivered += results.length;
    }
  }
  if (delivered !== SUBSCRIPTIONS * EVENTS)
    throw new Error(`delivered ${delivered}, expected ${SUBSCRIPTIONS * EVENTS}`);
  process.stdout.write(
    `${repo}: ${EVENTS} events × ${SUBSCRIPTIONS} subscriptions, ${delivered.toLocaleString('en-US')} delivered\n`,
  );
  for (const [phase, { ms, bytes, calls }] of phases) {
    process.stdout.write(
      `  ${phase.padEnd(8)} ${ms.toFixed(0).padStart(6)} ms  ${(bytes / 1e6).toFixed(0).padStart(5)} MB written  (${calls} calls)\n`,
    );
  }
} finally {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
