// Scenario 6, fan-out: one account with 1,000 subscriptions to one event type (each a distinct
// target_url on the receiver) and 100 events, so every publish becomes 1,000 deliveries.
import { peakRssOf } from '../lib/countersign.mjs';
import { closedLoop, EVENT_TYPE } from '../lib/load.mjs';
import { throughput } from '../lib/measure.mjs';
import { publishAndWait, withCountersign } from './countersign.mjs';

export async function fanOut(ctx) {
  const { plan, receiver } = ctx;
  const { subscriptions, events, runs, waitMs } = plan.fanOut;
  return ctx.repeat(runs, () =>
    withCountersign(ctx, { store: 'sqlite' }, async ({ client, children }) => {
      const created = await closedLoop({
        count: subscriptions,
        concurrency: 16,
        forMs: 120_000,
        send: (i) =>
          client.post('/v1/webhooks/subscriptions', {
            target_url: `${receiver.origin}/fan-out/${i}?subscriber=${i}`,
            event_type: EVENT_TYPE,
          }),
      });
      if (created.ok < subscriptions) throw new Error(`creating subscriptions failed: ${created.firstError}`);
      // Warm-up: one event, one full fan-out.
      await publishAndWait(ctx, client, 1, { perEvent: subscriptions, waitMs });
      const measured = await publishAndWait(ctx, client, events, { perEvent: subscriptions, concurrency: 10, waitMs });
      return throughput(measured, { subscriptions, peakRssMB: peakRssOf(children) });
    }),
  );
}
