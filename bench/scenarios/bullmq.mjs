// Scenario 2, the peer: a BullMQ queue on Redis and a worker process that signs and POSTs with
// undici. Events are enqueued one `queue.add` at a time by concurrent producers, as an
// application would; jobs carry attempts and exponential backoff as a webhook queue sets them.
// Measured from the first enqueue to the last delivery the receiver gets.
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { cpuMeter, requireLoopback } from '../lib/countersign.mjs';
import { apiClient, EVENT_TYPE, eventData } from '../lib/load.mjs';
import { sendAndWait, throughput } from '../lib/measure.mjs';
import { forkScript, nextMessage, onInterrupt, peakRssMB, stopChild } from '../lib/processes.mjs';

const WORKER = fileURLToPath(new URL('../bullmq-worker.mjs', import.meta.url));
const HTTP_SERVER = fileURLToPath(new URL('../bullmq-http-server.mjs', import.meta.url));

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

/** Fails fast, with a clear message, when nothing listens where Redis should be. */
function reachable(host, port, what) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, timeout: 3_000 });
    const fail = (reason) => {
      socket.destroy();
      reject(new Error(`${what} is not reachable at ${host}:${port}: ${reason}`));
    };
    socket.once('connect', () => {
      socket.end();
      resolve();
    });
    socket.once('timeout', () => fail('timed out'));
    socket.once('error', (err) => fail(err.message));
  });
}

/**
 * Runs a BullMQ pipeline's warm-up and measured runs, each on a fresh queue (removed afterwards,
 * and on ^C). `measure({ queue, env, count })` sends `count` events and resolves
 * `{ measured, extra }`; `env` names the queue for the processes it starts.
 */
async function bullmqRuns(ctx, label, measure) {
  const { plan } = ctx;
  const connection = { ...redisConnection(ctx.redisUrl), maxRetriesPerRequest: null };
  await reachable(connection.host, connection.port, 'Redis (REDIS_URL)');
  const prefix = 'countersign-bench';
  let round = 0;
  const once = async (count) => {
    const name = `bench-${label}-${process.pid}-${Date.now()}-${++round}`;
    const queue = new Queue(name, { connection, prefix });
    queue.on('error', (err) => ctx.log(`  bullmq queue: ${err.message}`));
    const obliterate = () => queue.obliterate({ force: true }).catch(() => {});
    const forget = onInterrupt(obliterate);
    const env = { ...process.env, BENCH_REDIS: JSON.stringify(connection), BENCH_QUEUE: name, BENCH_PREFIX: prefix };
    try {
      return await measure({ queue, name, env, count });
    } finally {
      await obliterate();
      await queue.close();
      forget();
    }
  };
  await once(plan.warmup);
  return ctx.repeat(plan.runs, async () => {
    const { measured, extra } = await once(plan.events);
    return throughput(measured, extra);
  });
}

/** The worker process of both BullMQ pipelines, ready to take jobs. */
async function startWorker(ctx, env) {
  const worker = forkScript(WORKER, [], {
    name: 'bullmq worker',
    nodeArgs: ctx.nodeArgs,
    env: {
      ...env,
      BENCH_CONCURRENCY: String(ctx.plan.deliveryConnections),
      BENCH_SECRET: randomBytes(32).toString('base64'),
    },
  });
  await nextMessage(worker, 'ready', 30_000);
  return worker;
}

export function bullmq(ctx) {
  return bullmqRuns(ctx, 'add', async ({ queue, name, env, count }) => {
    const worker = await startWorker(ctx, env);
    try {
      const url = `${ctx.receiver.origin}/bullmq`;
      const measured = await sendAndWait(ctx, {
        count,
        send: async (i) => {
          const id = `${name}_${i}`;
          await queue.add(
            'deliver',
            { id, type: EVENT_TYPE, occurredAt: Date.now(), data: eventData(i), url },
            JOB_OPTIONS,
          );
        },
      });
      return { measured, extra: { peakRssMB: peakRssMB(worker.pid) } };
    } finally {
      await stopChild(worker);
    }
  });
}

/**
 * Scenario bullmq-http: the same single-event publish requests countersign takes, to a bare HTTP
 * server in front of BullMQ (bullmq-http-server.mjs: parse, `queue.add`, answer 202), with the
 * same worker as scenario 2 behind it. Like for like with countersign's single publishes.
 */
export function bullmqHttp(ctx) {
  return bullmqRuns(ctx, 'http', async ({ env, count }) => {
    const worker = await startWorker(ctx, env);
    const server = forkScript(HTTP_SERVER, [], {
      name: 'bullmq-http server',
      nodeArgs: ctx.nodeArgs,
      env: {
        ...env,
        BENCH_TARGET: `${ctx.receiver.origin}/bullmq-http`,
        BENCH_JOB_OPTIONS: JSON.stringify(JOB_OPTIONS),
      },
    });
    let client;
    try {
      const { port } = await nextMessage(server, 'ready', 30_000);
      client = apiClient(`http://127.0.0.1:${port}`, 'no-token', ctx.plan.publishConcurrency);
      const cpu = cpuMeter([server, worker]);
      const measured = await sendAndWait(ctx, { count, send: (i) => client.publish(i) });
      return {
        measured,
        extra: { peakRssMB: peakRssMB(server.pid) + peakRssMB(worker.pid), cpuUsPerDelivery: cpu(measured.got.unique) },
      };
    } finally {
      await client?.close();
      if (server.connected) server.send({ cmd: 'exit' });
      await stopChild(server, 5_000);
      await stopChild(worker);
    }
  });
}
