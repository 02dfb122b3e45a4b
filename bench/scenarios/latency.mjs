// Scenario 5, latency: countersign on SQLite offered a steady 1,000 events/s (an open loop, so a
// slow answer never slows the offered load) for 10 s. Every event carries its send time
// (data.sent_at_ns); the receiver computes publish-to-receive percentiles.
import { peakRssOf } from '../lib/countersign.mjs';
import { EVENT_TYPE, openLoop } from '../lib/load.mjs';
import { percentile } from '../lib/stats.mjs';
import { publishAndWait, withCountersign } from './countersign.mjs';

export async function latency(ctx) {
  const { plan, receiver } = ctx;
  const { rate, seconds } = plan.latency;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store: 'sqlite' }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${receiver.origin}/latency`,
        event_type: EVENT_TYPE,
      });
      await publishAndWait(ctx, client, plan.warmup);

      const total = Math.round(rate * seconds);
      const armed = await receiver.arm({ expected: total, latency: true });
      const sent = await openLoop({ rate, seconds, send: (i) => client.publish(i) });
      if (sent.ok < total) armed.expect(sent.ok);
      const got = await armed.wait({ timeoutMs: plan.waitMs, progress: ctx.progress(total) });
      return {
        events: total,
        received: got.unique,
        offeredPerSec: sent.started / (sent.sentForMs / 1000),
        p50Ms: got.latency?.p50,
        p95Ms: got.latency?.p95,
        p99Ms: got.latency?.p99,
        maxMs: got.latency?.max,
        ackP50Ms: percentile(sent.ackMs, 50),
        ackP99Ms: percentile(sent.ackMs, 99),
        peakRssMB: peakRssOf(children),
        errors: sent.errors + got.errors,
        duplicates: got.duplicates,
        timedOut: got.timedOut,
        firstError: sent.firstError,
      };
    }),
  );
}
