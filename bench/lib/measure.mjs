// One throughput measurement, the same for every pipeline: arm the receiver, send from concurrent
// clients (N, or as many as fit in the time box), wait (bounded) for every delivery, and turn the
// stamps into figures.
import { cpuMeter, peakRssOf } from './countersign.mjs';
import { closedLoop } from './load.mjs';
import { harnessMeter } from './processes.mjs';
import { seconds } from './stats.mjs';

/** Sends `count` (each worth `perEvent` deliveries) and waits for their deliveries. */
export async function sendAndWait(ctx, { count, perEvent = 1, concurrency, send, waitMs }) {
  const { plan, receiver } = ctx;
  const armed = await receiver.arm({ expected: count * perEvent });
  const harness = harnessMeter(receiver.pid);
  const sent = await closedLoop({
    count,
    concurrency: concurrency ?? plan.publishConcurrency,
    forMs: plan.publishForMs,
    send,
  });
  if (sent.ok === 0) throw new Error(`nothing was accepted: ${sent.firstError}`);
  const expected = sent.ok * perEvent;
  if (sent.ok < count) armed.expect(expected);
  const got = await armed.wait({ timeoutMs: waitMs ?? plan.waitMs, progress: ctx.progress(expected) });
  return { sent, got, expected, harness: harness(got.unique) };
}

/** The figures of one end-to-end run: first send to last delivery received. */
export function throughput({ sent, got, expected, harness }, extra = {}) {
  const e2e = seconds(sent.startNs, got.lastNs);
  return {
    events: sent.ok,
    deliveries: expected,
    received: got.unique,
    e2eSeconds: e2e,
    deliveriesPerSec: got.unique / e2e,
    publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
    ...harnessFigures(harness),
    ...extra,
    errors: sent.errors + got.errors,
    duplicates: got.duplicates,
    timedOut: got.timedOut,
    firstError: sent.firstError,
  };
}

/** The harness meter's figures under the names the report uses (µs per delivery or event). */
export function harnessFigures(harness = {}) {
  return {
    loadCpuUs: harness.loadUsPerUnit,
    receiverCpuUs: harness.receiverUsPerUnit,
    machineCpuUs: harness.machineUsPerUnit,
    stealCpuUs: harness.stealUsPerUnit,
  };
}

/**
 * The publish rate alone: a warm-up, then N publishes from concurrent clients (time-boxed), with
 * the CPU per event of the `servers` processes and of the harness, and the servers' peak RSS.
 */
export async function publishRate(ctx, client, servers, batch) {
  const { plan } = ctx;
  // One event a request, or (batch) `batch.size` events a request over `batch.connections`.
  const perSend = batch?.size ?? 1;
  const publish = (events) =>
    closedLoop({
      count: Math.max(1, Math.round(events / perSend)),
      concurrency: batch?.connections ?? plan.publishConcurrency,
      forMs: plan.publishForMs,
      send: batch ? (i) => client.publishBatch(i * perSend, perSend) : (i) => client.publish(i),
    });
  const warm = await publish(plan.warmup);
  if (warm.errors > 0) throw new Error(`warm-up publishes failed: ${warm.firstError}`);
  const cpu = cpuMeter(servers);
  const harness = harnessMeter(ctx.receiver.pid);
  const sent = await publish(plan.events);
  const events = sent.ok * perSend;
  return {
    events,
    publishPerSec: events / seconds(sent.startNs, sent.endNs),
    cpuUsPerEvent: cpu(events),
    ...harnessFigures(harness(events)),
    peakRssMB: peakRssOf(servers),
    errors: sent.errors,
    firstError: sent.firstError,
  };
}
