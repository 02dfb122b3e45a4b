// Scenario 1, the ceiling: undici POSTs the same payload straight to the receiver, keep-alive,
// with as many connections as countersign's per-origin limit. No storage, no queue: the most
// this machine can deliver to this receiver.
import { Pool } from 'undici';
import { deliveryPayload, EVENT_TYPE, eventData } from '../lib/load.mjs';
import { sendAndWait, throughput } from '../lib/measure.mjs';

export async function ceiling(ctx) {
  const { receiver, plan } = ctx;
  const pool = new Pool(receiver.origin, {
    connections: plan.deliveryConnections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
  });
  let round = 0;
  const measure = (count) => {
    const tag = `ceiling${++round}`;
    return sendAndWait(ctx, {
      count,
      concurrency: plan.deliveryConnections,
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
  };
  try {
    await measure(plan.warmup);
    return await ctx.repeat(plan.runs, async () => {
      const result = throughput(await measure(plan.events));
      // Here sending is delivering: "publish/s" would repeat the same figure.
      result.publishPerSec = undefined;
      return result;
    });
  } finally {
    await pool.close();
  }
}
