// Scenario 2's worker, in its own process like countersign's: what a Node team would build
// instead of countersign. A BullMQ Worker takes each job, builds the same payload, signs it the
// Standard Webhooks way (HMAC-SHA256 over id.timestamp.body) and POSTs it with undici over a
// keep-alive pool. A non-2xx answer throws, so BullMQ retries with the job's attempts and backoff.
import { createHmac } from 'node:crypto';
import { Worker } from 'bullmq';
import { Agent, request } from 'undici';
import { deliveryPayload } from './lib/load.mjs';

const connection = JSON.parse(process.env.BENCH_REDIS ?? '{}');
const concurrency = Number(process.env.BENCH_CONCURRENCY ?? '128');
const key = Buffer.from(process.env.BENCH_SECRET ?? '', 'base64');
const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });

const worker = new Worker(
  process.env.BENCH_QUEUE,
  async (job) => {
    const { id, type, occurredAt, data, url } = job.data;
    const body = deliveryPayload(id, type, occurredAt, data);
    const timestamp = Math.floor(Date.now() / 1000);
    const signature = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: {
        'content-type': 'application/json',
        'webhook-id': id,
        'webhook-timestamp': String(timestamp),
        'webhook-signature': `v1,${signature}`,
      },
      body,
      signal: AbortSignal.timeout(15_000),
    });
    await res.body.dump();
    if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`receiver answered ${res.statusCode}`);
  },
  { connection, prefix: process.env.BENCH_PREFIX, concurrency },
);
worker.on('error', (err) => process.stderr.write(`bullmq worker: ${err.message}\n`));

await worker.waitUntilReady();
process.send?.({ type: 'ready' });

const shutdown = () => {
  worker.close().finally(() => agent.close().finally(() => process.exit(0)));
};
process.once('SIGTERM', shutdown);
process.on('disconnect', shutdown);
