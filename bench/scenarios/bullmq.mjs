// Scenario 2, the peer: a BullMQ queue on Redis and a worker process that signs and POSTs with
// undici. Events are enqueued one `queue.add` at a time by concurrent producers, as an
// application would; jobs carry attempts and exponential backoff as a webhook queue sets them.
// Measured from the first enqueue to the last delivery the receiver gets.
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { requireLoopback } from '../lib/countersign.mjs';
import { closedLoop, EVENT_TYPE, eventData } from '../lib/load.mjs';
import { forkScript, nextMessage, onInterrupt, peakRssMiB, stopChild } from '../lib/processes.mjs';
import { seconds } from '../lib/stats.mjs';

const WORKER = fileURLToPath(new URL('../bullmq-worker.mjs', import.meta.url));

export const JOB_OPTIONS = {
  attempts: 8,
  backoff: { type: 'exponential', delay: 1_000 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 10_000 },
};

/** ioredis options from a redis:// URL (BullMQ makes its own connections from them). */
export function redisConnection(redisUrl) {
  requireLoopback('REDIS_URL', redisUrl);
  const url = new URL(redisUrl);
  const db = Number(url.pathname.replace(/^\//, '') || '0');
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: Number(url.port || '6379'),
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    db,
  };
}

export async function bullmq(ctx) {
  const { receiver, plan } = ctx;
  const connection = { ...redisConnection(ctx.redisUrl), maxRetriesPerRequest: null };
  const prefix = 'countersign-bench';
  let round = 0;

  const measure = async (count) => {
    const name = `bench-${process.pid}-${Date.now()}-${++round}`;
    const queue = new Queue(name, { connection, prefix });
    const obliterate = () => queue.obliterate({ force: true }).catch(() => {});
    const forget = onInterrupt(obliterate);
    const worker = forkScript(WORKER, [], {
      name: 'bullmq worker',
      nodeArgs: ctx.nodeArgs,
      env: {
        ...process.env,
        BENCH_REDIS: JSON.stringify(connection),
        BENCH_QUEUE: name,
        BENCH_PREFIX: prefix,
        BENCH_CONCURRENCY: String(plan.deliveryConnections),
        BENCH_SECRET: randomBytes(32).toString('base64'),
      },
    });
    try {
      await nextMessage(worker, 'ready', 30_000);
      const url = `${receiver.origin}/bullmq`;
      const armed = await receiver.arm({ expected: count });
      const sent = await closedLoop({
        count,
        concurrency: plan.publishConcurrency,
        timeoutMs: plan.timeoutMs(count),
        send: async (i) => {
          const id = `${name}_${i}`;
          await queue.add('deliver', { id, type: EVENT_TYPE, occurredAt: Date.now(), data: eventData(i), url }, JOB_OPTIONS);
        },
      });
      const got = await armed.wait({ timeoutMs: plan.timeoutMs(count), progress: ctx.progress(count) });
      return { sent, got, rss: peakRssMiB(worker.pid) };
    } finally {
      await stopChild(worker);
      await obliterate();
      await queue.close();
      forget();
    }
  };

  await measure(plan.warmup);
  return ctx.repeat(plan.runs, async () => {
    const { sent, got, rss } = await measure(plan.events);
    const e2e = seconds(sent.startNs, got.lastNs);
    return {
      events: plan.events,
      deliveries: plan.events,
      received: got.unique,
      e2eSeconds: e2e,
      deliveriesPerSec: got.unique / e2e,
      publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
      peakRssMiB: rss,
      errors: sent.errors + got.errors,
      duplicates: got.duplicates,
      timedOut: got.timedOut,
      firstError: sent.firstError,
    };
  });
}
