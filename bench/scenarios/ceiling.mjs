// Scenario 1, the ceiling: undici POSTs the same payload straight to the receiver, keep-alive,
// with as many connections as countersign's per-origin limit. No storage, no queue: the most
// this machine can deliver to this receiver.
import { Pool } from 'undici';
import { closedLoop, deliveryPayload, EVENT_TYPE, eventData } from '../lib/load.mjs';
import { seconds } from '../lib/stats.mjs';

export async function ceiling(ctx) {
  const { receiver, plan } = ctx;
  const pool = new Pool(receiver.origin, {
    connections: plan.deliveryConnections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
  });
  let round = 0;
  const measure = async (count) => {
    const tag = `ceil${++round}`;
    const armed = await receiver.arm({ expected: count });
    const sent = await closedLoop({
      count,
      concurrency: plan.deliveryConnections,
      timeoutMs: plan.timeoutMs(count),
      send: async (i) => {
        const id = `${tag}_${i}`;
        const res = await pool.request({
          method: 'POST',
          path: '/ceiling',
          headers: { 'content-type': 'application/json', 'webhook-id': id },
          body: deliveryPayload(id, EVENT_TYPE, Date.now(), eventData(i)),
        });
        await res.body.dump();
        if (res.statusCode !== 200) throw new Error(`receiver answered ${res.statusCode}`);
      },
    });
    const got = await armed.wait({ timeoutMs: 10_000 });
    return { sent, got };
  };
  try {
    await measure(plan.warmup);
    return await ctx.repeat(plan.runs, async () => {
      const { sent, got } = await measure(plan.events);
      const e2e = seconds(sent.startNs, got.lastNs);
      return {
        events: plan.events,
        deliveries: plan.events,
        received: got.unique,
        e2eSeconds: e2e,
        deliveriesPerSec: got.unique / e2e,
        errors: sent.errors + got.errors,
        duplicates: got.duplicates,
        timedOut: got.timedOut,
        firstError: sent.firstError,
      };
    });
  } finally {
    await pool.close();
  }
}
