// Scenario 7, backlog: a store holding 1,000,000 due deliveries (as after a long receiver
// outage), then a fresh countersign process with its dispatcher on. Reports the drain rate and
// the process's peak RSS while it drains.
//
// The backlog is built once per benchmark, straight into a SQLite file with better-sqlite3 in
// bulk transactions (far faster than publishing it), on a schema and subscription made by
// countersign itself; each run drains its own copy of that file.
import { copyFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { monotonicFactory } from 'ulidx';
import { queueKeyOf } from '../../dist/store/queue-key.js';
import { peakRssOf, sqliteDatabase, startServe } from '../lib/countersign.mjs';
import { apiClient, EVENT_TYPE, eventData } from '../lib/load.mjs';
import { cpuSeconds, stopChild } from '../lib/processes.mjs';
import { seconds } from '../lib/stats.mjs';

const ROWS_PER_TRANSACTION = 50_000;

/** Builds the backlog template: countersign's schema, one subscription, `deliveries` due. */
async function buildBacklog(ctx, deliveries) {
  const template = sqliteDatabase();
  try {
    const api = await startServe(template, { dispatcher: false, nodeArgs: ctx.nodeArgs });
    const client = apiClient(api.origin, api.token, 1);
    try {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${ctx.receiver.origin}/backlog`,
        event_type: EVENT_TYPE,
      });
    } finally {
      await client.close();
      await stopChild(api.child);
    }

    const db = new Database(template.url);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = OFF');
      const sub = db.prepare('select id, account_id from subscriptions').get();
      const insertEvent = db.prepare(
        `insert into events (id, account_id, type, data, occurred_at, created_at, idempotency_key, request_hash, delivery_count)
         values (?, ?, ?, ?, ?, ?, null, null, 1)`,
      );
      const insertDelivery = db.prepare(
        `insert into deliveries (id, event_id, account_id, subscription_id, status, attempt_count, round_start, manual,
           next_attempt_at, lease_owner, created_at, updated_at, delivered_at, queue_key)
         values (?, ?, ?, ?, 'pending', 0, 0, 0, ?, null, ?, ?, null, ?)`,
      );
      const nextUlid = monotonicFactory();
      // What countersign stores with each delivery for the queue index (src/store/queue-key.ts).
      const queueKey = queueKeyOf(sub.id);
      const insertBatch = db.transaction((from, to, now) => {
        for (let i = from; i < to; i++) {
          const eventId = `evt_${nextUlid()}`;
          const data = eventData(i);
          delete data.sent_at_ns;
          insertEvent.run(eventId, sub.account_id, EVENT_TYPE, JSON.stringify(data), now, now);
          insertDelivery.run(`dlv_${nextUlid()}`, eventId, sub.account_id, sub.id, now, now, now, queueKey);
        }
      });
      const started = Date.now();
      for (let from = 0; from < deliveries; from += ROWS_PER_TRANSACTION) {
        insertBatch(from, Math.min(deliveries, from + ROWS_PER_TRANSACTION), Date.now() - 60_000);
        if (Date.now() - started > 5_000 && (from / ROWS_PER_TRANSACTION) % 4 === 3) {
          ctx.log(
            `  backlog: ${(from + ROWS_PER_TRANSACTION).toLocaleString('en-US')} of ${deliveries.toLocaleString('en-US')} rows`,
          );
        }
      }
      db.pragma('wal_checkpoint(TRUNCATE)');
      ctx.log(
        `  backlog: ${deliveries.toLocaleString('en-US')} due deliveries written in ${((Date.now() - started) / 1000).toFixed(1)} s`,
      );
    } finally {
      db.close();
    }
    return template;
  } catch (err) {
    await template.drop();
    throw err;
  }
}

function cpuUsedPer(child, count) {
  const used = cpuSeconds(child.pid);
  return used === undefined || count === 0 ? undefined : (used * 1e6) / count;
}

export async function backlog(ctx) {
  const { plan, receiver } = ctx;
  const { deliveries, runs, capMs } = plan.backlog;
  // The drain stops at the cap: the rate and the peak RSS are then those of the part drained.
  const template = await buildBacklog(ctx, deliveries);
  try {
    return await ctx.repeat(runs, async () => {
      const database = sqliteDatabase();
      let child;
      try {
        copyFileSync(template.url, database.url);
        const armed = await receiver.arm({ expected: deliveries });
        const startNs = process.hrtime.bigint();
        ({ child } = await startServe(database, { expectToken: false, nodeArgs: ctx.nodeArgs }));
        const got = await armed.wait({ timeoutMs: capMs, progress: ctx.progress(deliveries) });
        const drain = seconds(got.firstNs, got.lastNs);
        return {
          deliveries,
          received: got.count,
          drainSeconds: drain,
          drainPerSec: got.count / drain,
          fromStartSeconds: seconds(startNs, got.lastNs),
          peakRssMB: peakRssOf([child]),
          // Counted from process start: the drain begins as soon as the dispatcher does.
          cpuUsPerDelivery: cpuUsedPer(child, got.count),
          errors: got.errors,
          partial: got.timedOut,
        };
      } finally {
        if (child) await stopChild(child);
        await database.drop();
      }
    });
  } finally {
    await template.drop();
  }
}
