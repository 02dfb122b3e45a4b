// Scenario 6, fan-out: one account with 1,000 subscriptions to one event type (each a distinct
// target_url on the receiver) and 100 events, so every publish becomes 1,000 deliveries.
import { closedLoop, EVENT_TYPE } from '../lib/load.mjs';
import { peakRssOf } from '../lib/countersign.mjs';
import { seconds } from '../lib/stats.mjs';
import { publishAndWait, withCountersign } from './countersign.mjs';

export async function fanOut(ctx) {
  const { plan, receiver } = ctx;
  const { subscriptions, events } = plan.fanOut;
  return ctx.repeat(plan.fanOut.runs, () =>
    withCountersign(ctx, { store: 'sqlite' }, async ({ client, children }) => {
      const created = await closedLoop({
        count: subscriptions,
        concurrency: 16,
        timeoutMs: 120_000,
        send: (i) =>
          client.post('/v1/webhooks/subscriptions', {
            target_url: `${receiver.origin}/fan-out/${i}?subscriber=${i}`,
            event_type: EVENT_TYPE,
          }),
      });
      if (created.errors > 0) throw new Error(`creating subscriptions failed: ${created.firstError}`);
      // Warm-up: one event, one full fan-out.
      await publishAndWait(ctx, client, 1, { expected: subscriptions });
      const expected = events * subscriptions;
      const { sent, got } = await publishAndWait(ctx, client, events, { expected, concurrency: 10 });
      const e2e = seconds(sent.startNs, got.lastNs);
      return {
        events,
        subscriptions,
        deliveries: expected,
        received: got.unique,
        e2eSeconds: e2e,
        deliveriesPerSec: got.unique / e2e,
        publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
        peakRssMiB: peakRssOf(children),
        errors: sent.errors + got.errors,
        duplicates: got.duplicates,
        timedOut: got.timedOut,
        firstError: sent.firstError,
      };
    }),
  );
}
