// What keying the queue index by endpoint costs a fanned-out publish: `node scripts/queue-index-cost.mjs`
// after `npm run build`. Publishes 60 batches of 64 events, each fanned out to 61 subscriptions, on
// a fresh SQLite file three ways, twice each, alternating: the queue index as it is (endpoint, then
// due time), keyed by due time alone (as before migration 008), and with every subscription paused
// (held deliveries enter no queue index). Prints the time each took.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { openStore } from '../dist/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../dist/store/open.js';
import { subscriptionRow } from './lib/subscription-row.mjs';

const BATCHES = 60;
const PER_BATCH = 64;
const FAN_OUT = 61;

async function run(index, status) {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-queue-index-'));
  const dialect = openDialect(parseDatabaseUrl(join(dir, 'queue.db')));
  const store = await openStore(dialect);
  try {
    if (index === 'due time') {
      await sql`drop index deliveries_due`.execute(dialect.db);
      await sql`create index deliveries_due on deliveries (next_attempt_at) where status in ('pending', 'sending') and listen = 0`.execute(
        dialect.db,
      );
    }
    const now = Date.now();
    const account = await store.ensureAccount('fan-out', now);
    for (let i = 0; i < FAN_OUT; i++) {
      await store.createSubscription(
        subscriptionRow(account.id, `sub_fanout${String(i).padStart(4, '0')}`, i, now, status),
      );
    }
    const request = () => ({
      accountId: account.id,
      type: 'document.signed',
      dataJson: '{"document_id":"doc","signer_email":"a@example.com","audit_url":"https://sign.example.com/a"}',
      occurredAt: now,
    });
    const t0 = process.hrtime.bigint();
    for (let b = 0; b < BATCHES; b++) await store.publishEvents(Array.from({ length: PER_BATCH }, request), Date.now());
    return Number(process.hrtime.bigint() - t0) / 1e6;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

process.stdout.write(`${BATCHES * PER_BATCH} events, each to ${FAN_OUT} subscriptions:\n`);
for (let round = 1; round <= 2; round++) {
  for (const [index, status, what] of [
    ['endpoint', 'active', 'queue index by endpoint, then due time'],
    ['due time', 'active', 'queue index by due time alone'],
    ['endpoint', 'paused', 'subscriptions paused (no queue index entries)'],
  ]) {
    process.stdout.write(`round ${round}: ${what}: ${(await run(index, status)).toFixed(0)} ms\n`);
  }
}
