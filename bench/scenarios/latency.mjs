// Scenario 5, latency: countersign on SQLite offered a steady 1,000 events/s (an open loop, so a
// slow answer never slows the offered load). Every event carries its send time (data.sent_at_ns);
// the receiver computes publish-to-receive percentiles.
//
// The load runs `seconds` + `settleSeconds`. The reported percentiles are those of the events sent
// in the first `seconds`, right after the short warm-up: what the goal is checked against. The
// same runs also give the events sent from `settleSeconds` on, once the process has run at this
// rate for a while (its code optimised for this load, its heap grown to it), as a second figure.
import { cpuMeter, peakRssOf } from '../lib/countersign.mjs';
import { EVENT_TYPE, openLoop } from '../lib/load.mjs';
import { percentile } from '../lib/stats.mjs';
import { publishAndWait, withCountersign } from './countersign.mjs';

export async function latency(ctx) {
  const { plan, receiver } = ctx;
  const { rate, seconds, settleSeconds } = plan.latency;
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store: 'sqlite' }, async ({ client, children }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${receiver.origin}/latency`,
        event_type: EVENT_TYPE,
      });
      await publishAndWait(ctx, client, plan.warmup);

      const total = Math.round(rate * (seconds + settleSeconds));
      const armed = await receiver.arm({
        expected: total,
        latency: true,
        windowsMs: [
          [0, seconds * 1000],
          [settleSeconds * 1000, (settleSeconds + seconds) * 1000],
        ],
      });
      const cpu = cpuMeter(children);
      const sent = await openLoop({ rate, seconds: seconds + settleSeconds, send: (i) => client.publish(i) });
      if (sent.ok < total) armed.expect(sent.ok);
      const got = await armed.wait({ timeoutMs: plan.waitMs, progress: ctx.progress(total) });
      const [first, steady] = got.windows ?? [];
      return {
        events: total,
        received: got.unique,
        offeredPerSec: sent.started / (sent.sentForMs / 1000),
        p50Ms: first?.p50,
        p95Ms: first?.p95,
        p99Ms: first?.p99,
        maxMs: first?.max,
        steadyFromS: settleSeconds,
        steadyToS: settleSeconds + seconds,
        p50SteadyMs: steady?.p50,
        p95SteadyMs: steady?.p95,
        p99SteadyMs: steady?.p99,
        maxSteadyMs: steady?.max,
        ackP50Ms: percentile(sent.ackMs, 50),
        ackP99Ms: percentile(sent.ackMs, 99),
        // At a fixed rate little is batched the way it is at saturation: what one delivery costs here.
        cpuUsPerDelivery: cpu(got.unique),
        peakRssMB: peakRssOf(children),
        errors: sent.errors + got.errors,
        duplicates: got.duplicates,
        timedOut: got.timedOut,
        firstError: sent.firstError,
      };
    }),
  );
}
