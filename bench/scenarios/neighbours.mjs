// Scenario 8, neighbours: does a dead endpoint slow a healthy one? countersign on SQLite, one
// healthy subscription (the shared receiver, which answers 200 at once) and 60 bad ones: 50 to
// endpoints that accept the connection and never answer, 10 to endpoints that answer 503 after
// 2 s, all taking the same event type, each on an origin of its own (bad-endpoints.mjs). The bad
// subscriptions are in the healthy account (`same`) or in another account that publishes as much
// (`other`). Each is run beside a quiet run of the same publishing with the bad subscriptions
// paused, in the same round: the goal compares the healthy endpoint's deliveries per second and
// its p99 from publish to receipt with the quiet run's.
//
// A warm-up of events goes first (the bad endpoints already failing), then the measured events,
// each carrying its send time for the receiver's latency figures.
import { fileURLToPath } from 'node:url';
import { cpuMeter, createToken, peakRssOf } from '../lib/countersign.mjs';
import { apiClient, closedLoop, EVENT_TYPE } from '../lib/load.mjs';
import { forkScript, nextMessage } from '../lib/processes.mjs';
import { seconds } from '../lib/stats.mjs';
import { withCountersign } from './countersign.mjs';

const BAD = fileURLToPath(new URL('../bad-endpoints.mjs', import.meta.url));

/** The bad endpoints' process, started once for the whole benchmark. */
let bad;
async function badEndpoints() {
  if (bad) return bad;
  const child = forkScript(BAD, [], { name: 'bad endpoints' });
  const ready = await nextMessage(child, 'ready', 15_000);
  const ask = async (cmd, type) => {
    const reply = nextMessage(child, type, 10_000);
    child.send({ cmd });
    return reply;
  };
  bad = {
    silent: ready.silent.map((port) => `http://127.0.0.1:${port}/hooks`),
    slow: ready.slow.map((port) => `http://127.0.0.1:${port}/hooks`),
    stats: () => ask('stats', 'stats'),
    close() {
      if (child.exitCode === null && child.connected) child.send({ cmd: 'exit' });
    },
  };
  process.once('exit', () => bad?.close());
  return bad;
}

/** Stops the bad endpoints' process (the benchmark's end). */
export function closeBadEndpoints() {
  bad?.close();
  bad = undefined;
}

/**
 * One run. `where`: the bad subscriptions in the healthy account (`same`) or another (`other`);
 * `quiet`: they are paused, so the run publishes the same and sends to the healthy endpoint only.
 */
export async function neighbours(ctx, { where, quiet }) {
  const { plan, receiver } = ctx;
  const { events, warmup } = plan.neighbours;
  const endpoints = await badEndpoints();
  // Sends to dead endpoints still in flight at the end are given up after 1 s, not the default 10.
  const env = { COUNTERSIGN_SHUTDOWN_GRACE: '1s' };
  return ctx.repeat(plan.runs, () =>
    withCountersign(ctx, { store: 'sqlite', env }, async ({ client, children, origin, database }) => {
      await client.post('/v1/webhooks/subscriptions', {
        target_url: `${receiver.origin}/neighbours/healthy`,
        event_type: EVENT_TYPE,
      });
      const noisy = where === 'same' ? client : apiClient(origin, await createToken(database, 'noisy'), 16);
      try {
        for (const url of [...endpoints.silent, ...endpoints.slow]) {
          const { subscriptions } = await noisy.post('/v1/webhooks/subscriptions', {
            target_url: url,
            event_type: EVENT_TYPE,
          });
          if (quiet) await noisy.patch(`/v1/webhooks/subscriptions/${subscriptions[0].id}`, { status: 'paused' });
        }
        // Both accounts publish when the bad subscriptions are another account's: event k of the
        // healthy account, then event k of the other.
        const perEvent = where === 'same' ? 1 : 2;
        const send = (i) => (i % perEvent === 0 ? client.publish(i / perEvent) : noisy.publish(i));
        const warmed = await receiver.arm({ expected: warmup });
        const warm = await closedLoop({
          count: warmup * perEvent,
          concurrency: plan.publishConcurrency,
          forMs: 60_000,
          send,
        });
        if (warm.errors > 0) throw new Error(`warm-up publishes failed: ${warm.firstError}`);
        await warmed.wait({ timeoutMs: plan.waitMs });

        const before = await endpoints.stats();
        const armed = await receiver.arm({ expected: events, latency: true });
        const cpu = cpuMeter(children);
        const sent = await closedLoop({
          count: events * perEvent,
          concurrency: plan.publishConcurrency,
          forMs: 60_000,
          send,
        });
        const healthySent = Math.ceil(sent.ok / perEvent);
        if (sent.ok < events * perEvent) armed.expect(healthySent);
        const got = await armed.wait({ timeoutMs: plan.waitMs, progress: ctx.progress(healthySent) });
        const after = await endpoints.stats();
        const e2e = seconds(sent.startNs, got.lastNs);
        return {
          events: healthySent,
          received: got.unique,
          e2eSeconds: e2e,
          deliveriesPerSec: got.unique / e2e,
          publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
          p50Ms: got.latency?.p50,
          p95Ms: got.latency?.p95,
          p99Ms: got.latency?.p99,
          maxMs: got.latency?.max,
          // What the bad endpoints were sent meanwhile: bounded by isolation, cut by the breakers.
          badRequests: after.silentRequests - before.silentRequests + after.slowRequests - before.slowRequests,
          cpuUsPerDelivery: cpu(got.unique),
          peakRssMB: peakRssOf(children),
          errors: sent.errors + got.errors,
          duplicates: got.duplicates,
          timedOut: got.timedOut,
          firstError: sent.firstError,
        };
      } finally {
        if (noisy !== client) await noisy.close();
      }
    }),
  );
}
