// Scenarios 3 and 4: countersign end to end. A fresh database and fresh processes per run; one
// subscription to the receiver; N events published through POST /v1/events by concurrent
// clients. Measured from the first publish to the last delivery the receiver gets.
import { apiClient, closedLoop, EVENT_TYPE } from '../lib/load.mjs';
import {
  peakRssOf,
  postgresDatabase,
  sqliteDatabase,
  startServe,
  startWorker,
  stopAll,
} from '../lib/countersign.mjs';
import { seconds } from '../lib/stats.mjs';

/** A fresh database of the kind asked for. */
export function freshDatabase(ctx, store) {
  return store === 'postgres' ? postgresDatabase(ctx.pgUrl) : sqliteDatabase();
}

/**
 * Runs `work` against countersign on a fresh database: one `serve` process, or with `workers` > 0
 * one `serve --no-dispatcher` API process plus that many `worker` processes. Everything is
 * stopped and the database dropped afterwards, whatever happens.
 */
export async function withCountersign(ctx, { store, workers = 0, dispatcher = true }, work) {
  const database = await freshDatabase(ctx, store);
  const children = [];
  let client;
  try {
    const api = await startServe(database, { dispatcher: dispatcher && workers === 0, nodeArgs: ctx.nodeArgs });
    children.push(api.child);
    for (let k = 0; k < workers; k++) children.push((await startWorker(database, { nodeArgs: ctx.nodeArgs })).child);
    client = apiClient(api.origin, api.token, ctx.plan.publishConcurrency);
    return await work({ client, children, origin: api.origin });
  } finally {
    await client?.close();
    await stopAll(children);
    await database.drop();
  }
}

/** Publishes `count` events from concurrent clients and waits (bounded) for `expected` deliveries. */
export async function publishAndWait(ctx, client, count, { expected = count, concurrency } = {}) {
  const armed = await ctx.receiver.arm({ expected });
  const sent = await closedLoop({
    count,
    concurrency: concurrency ?? ctx.plan.publishConcurrency,
    timeoutMs: ctx.plan.timeoutMs(expected),
    send: (i) => client.publish(i),
  });
  const got = await armed.wait({ timeoutMs: ctx.plan.timeoutMs(expected), progress: ctx.progress(expected) });
  return { sent, got };
}

export async function endToEnd(ctx, { store, workers = 0 }) {
  const { plan, receiver } = ctx;
  const path = `/countersign/${store}${workers ? `-${workers}w` : ''}`;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store, workers }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', { target_url: `${receiver.origin}${path}`, event_type: EVENT_TYPE });
      await publishAndWait(ctx, client, plan.warmup);
      const { sent, got } = await publishAndWait(ctx, client, plan.events);
      const e2e = seconds(sent.startNs, got.lastNs);
      return {
        events: plan.events,
        deliveries: plan.events,
        received: got.unique,
        e2eSeconds: e2e,
        deliveriesPerSec: got.unique / e2e,
        publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
        peakRssMiB: peakRssOf(children),
        processes: children.length,
        errors: sent.errors + got.errors,
        duplicates: got.duplicates,
        timedOut: got.timedOut,
        firstError: sent.firstError,
      };
    }),
  );
}

/** The publish rate alone: the same N events into a server whose dispatcher is off. */
export async function publishOnly(ctx, { store }) {
  const { plan } = ctx;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store, dispatcher: false }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${ctx.receiver.origin}/publish-only`,
        event_type: EVENT_TYPE,
      });
      const warm = await closedLoop({
        count: plan.warmup,
        concurrency: plan.publishConcurrency,
        timeoutMs: plan.timeoutMs(plan.warmup),
        send: (i) => client.publish(i),
      });
      if (warm.errors > 0) throw new Error(`warm-up publishes failed: ${warm.firstError}`);
      const sent = await closedLoop({
        count: plan.events,
        concurrency: plan.publishConcurrency,
        timeoutMs: plan.timeoutMs(plan.events),
        send: (i) => client.publish(i),
      });
      return {
        events: plan.events,
        published: sent.ok,
        publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
        peakRssMiB: peakRssOf(children),
        errors: sent.errors,
        timedOut: sent.attempted < plan.events,
        firstError: sent.firstError,
      };
    }),
  );
}
