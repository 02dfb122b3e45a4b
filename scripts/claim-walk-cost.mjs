// What walking the queue endpoint by endpoint costs: `node scripts/claim-walk-cost.mjs [postgres-url]`
// after `npm run build`. For 10 to 5,000 endpoints, each with one delivery due an hour from now
// (the worst case: the walk visits them all and none is due), beside one endpoint with a backlog of
// 100,000 due deliveries, it times `nextDueAt` (a walk of every endpoint) and a claim round of 500
// (a walk, the backlog's share, and leasing it), on a fresh SQLite file, or on a fresh PostgreSQL
// database next to the URL given. Prints the time per round and per endpoint walked.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { openStore } from '../dist/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../dist/store/open.js';
import { subscriptionRow } from './lib/subscription-row.mjs';

const adminUrl = process.argv[2];
const HOUR = 3_600_000;
const BACKLOG = 100_000;

async function freshDatabase() {
  if (!adminUrl) {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-walk-'));
    return { url: join(dir, 'walk.db'), drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `countersign_walk_${Date.now()}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
    },
  };
}

function subscription(accountId, i, now) {
  return subscriptionRow(accountId, `sub_walk${String(i).padStart(8, '0')}`, i, now);
}

const rows = [];
for (const endpoints of [10, 100, 1_000, 5_000]) {
  const database = await freshDatabase();
  const store = await openStore(openDialect(parseDatabaseUrl(database.url)));
  try {
    const now = Date.now();
    const account = await store.ensureAccount('walk', now);
    const backlogged = subscription(account.id, 0, now);
    await store.createSubscription(backlogged);
    for (let done = 0; done < BACKLOG; done += 1_000) {
      const batch = Array.from({ length: 1_000 }, () => ({
        accountId: account.id,
        type: 'document.signed',
        dataJson: '{"document_id":"doc"}',
        occurredAt: now,
        onlySubscriptionId: backlogged.id,
      }));
      await store.publishEvents(batch, now - HOUR);
    }
    for (let i = 1; i <= endpoints; i++) {
      const sub = subscription(account.id, i, now);
      await store.createSubscription(sub);
      await store.publishEvents(
        [
          {
            accountId: account.id,
            type: 'document.signed',
            dataJson: '{}',
            occurredAt: now,
            onlySubscriptionId: sub.id,
          },
        ],
        now + HOUR,
      );
    }
    const time = async (work, times) => {
      await work();
      const t0 = process.hrtime.bigint();
      for (let k = 0; k < times; k++) await work();
      return Number(process.hrtime.bigint() - t0) / 1e6 / times;
    };
    const walk = await time(() => store.nextDueAt(), 20);
    let owner = 0;
    const claim = await time(
      () => store.claimRound(`walk-${owner++}`, 500, now, 60_000, { probeTimeoutMs: 20_000 }),
      20,
    );
    rows.push({
      endpoints: endpoints + 1,
      walkMs: walk,
      claimMs: claim,
      usPerEndpoint: (walk * 1000) / (endpoints + 1),
    });
  } finally {
    await store.close();
    await database.drop();
  }
}
const dialect = adminUrl ? 'PostgreSQL' : 'SQLite';
process.stdout.write(`${dialect}: a walk of every endpoint (nextDueAt), and a claim round of 500 beside it\n`);
process.stdout.write('endpoints\twalk ms\tclaim round ms\tµs per endpoint walked\n');
for (const r of rows) {
  process.stdout.write(
    `${r.endpoints}\t${r.walkMs.toFixed(2)}\t${r.claimMs.toFixed(2)}\t${r.usPerEndpoint.toFixed(2)}\n`,
  );
}
