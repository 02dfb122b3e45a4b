// Scenarios 3 and 4: countersign end to end. A fresh database and fresh processes per run; one
// subscription to the receiver; N events published through POST /v1/events by concurrent
// clients. Measured from the first publish to the last delivery the receiver gets.
import {
  cpuMeter,
  peakRssOf,
  postgresDatabase,
  sqliteDatabase,
  startServe,
  startWorker,
  stopAll,
} from '../lib/countersign.mjs';
import { apiClient, EVENT_TYPE } from '../lib/load.mjs';
import { publishRate, sendAndWait, throughput } from '../lib/measure.mjs';
import { seconds } from '../lib/stats.mjs';

/**
 * Runs `work` against countersign on a fresh database: one `serve` process, or with `workers` > 0
 * one `serve --no-dispatcher` API process plus that many `worker` processes. Everything is
 * stopped and the database dropped afterwards, whatever happens.
 */
export async function withCountersign(ctx, { store, workers = 0, dispatcher = true, env = {}, connections }, work) {
  const database = store === 'postgres' ? await postgresDatabase(ctx.pgUrl) : sqliteDatabase();
  const children = [];
  let client;
  try {
    const api = await startServe(database, { dispatcher: dispatcher && workers === 0, nodeArgs: ctx.nodeArgs, env });
    children.push(api.child);
    for (let k = 0; k < workers; k++) children.push((await startWorker(database, { nodeArgs: ctx.nodeArgs })).child);
    client = apiClient(api.origin, api.token, connections ?? ctx.plan.publishConcurrency);
    return await work({ client, children, origin: api.origin, database });
  } finally {
    await client?.close();
    await stopAll(children);
    await database.drop();
  }
}

/** Publishes `count` events (each fanning out to `perEvent` deliveries) and waits for them. */
export function publishAndWait(ctx, client, count, options = {}) {
  return sendAndWait(ctx, { count, send: (i) => client.publish(i), ...options });
}

/** Batched publishing: 500 events a request over 4 connections (POST /v1/events/batch). */
export const BATCH = { size: 500, connections: 4 };

/** The same N events end to end, published in batches; measured as endToEnd is. */
export async function endToEndBatch(ctx) {
  const { plan, receiver } = ctx;
  const { size, connections } = BATCH;
  const inBatches = (events) =>
    sendAndWait(ctx, {
      count: Math.max(1, Math.round(events / size)),
      perEvent: size,
      concurrency: connections,
      send: (b) => client.publishBatch(b * size, size),
    });
  let client;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store: 'sqlite', connections }, async (running) => {
      client = running.client;
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${receiver.origin}/countersign/sqlite-batch`,
        event_type: EVENT_TYPE,
      });
      await inBatches(plan.warmup);
      const cpu = cpuMeter(running.children);
      const measured = await inBatches(plan.events);
      const events = measured.sent.ok * size;
      return throughput(measured, {
        events,
        publishPerSec: events / seconds(measured.sent.startNs, measured.sent.endNs),
        peakRssMB: peakRssOf(running.children),
        cpuUsPerDelivery: cpu(measured.got.unique),
        processes: running.children.length,
      });
    }),
  );
}

export async function endToEnd(ctx, { store, workers = 0 }) {
  const { plan, receiver } = ctx;
  const path = `/countersign/${store}${workers ? `-${workers}-workers` : ''}`;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store, workers }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${receiver.origin}${path}`,
        event_type: EVENT_TYPE,
      });
      await publishAndWait(ctx, client, plan.warmup);
      const cpu = cpuMeter(children);
      const measured = await publishAndWait(ctx, client, plan.events);
      return throughput(measured, {
        peakRssMB: peakRssOf(children),
        cpuUsPerDelivery: cpu(measured.got.unique),
        processes: children.length,
      });
    }),
  );
}

/**
 * The publish rate alone: the same events into a server whose dispatcher is off. With
 * `accessLog: false`, the same with COUNTERSIGN_ACCESS_LOG=off, to price the access log.
 */
export async function publishOnly(ctx, { store, accessLog = true, batch = false }) {
  const env = accessLog ? {} : { COUNTERSIGN_ACCESS_LOG: 'off' };
  const connections = batch ? BATCH.connections : undefined;
  return ctx.repeat(ctx.plan.runs, () =>
    withCountersign(ctx, { store, dispatcher: false, env, connections }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${ctx.receiver.origin}/publish-only`,
        event_type: EVENT_TYPE,
      });
      return publishRate(ctx, client, children, batch ? BATCH : undefined);
    }),
  );
}
