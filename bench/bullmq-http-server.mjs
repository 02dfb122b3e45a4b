// Scenario bullmq-http's server: what a Node team would put in front of BullMQ to take the same
// single-event publish requests countersign takes. A bare node:http server parses each POST,
// calls `queue.add` with the job options of scenario 2, and answers 202 once Redis has the job.
// The same worker (bullmq-worker.mjs) signs and sends behind it. No framework, authentication or
// validation: the least such a front costs.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { Queue } from 'bullmq';

const connection = JSON.parse(process.env.BENCH_REDIS ?? '{}');
const jobOptions = JSON.parse(process.env.BENCH_JOB_OPTIONS ?? '{}');
const url = process.env.BENCH_TARGET ?? '';
const queue = new Queue(process.env.BENCH_QUEUE ?? '', { connection, prefix: process.env.BENCH_PREFIX });
queue.on('error', (err) => process.stderr.write(`bullmq-http queue: ${err.message}\n`));

let sequence = 0;
const prefix = randomBytes(4).toString('hex');

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad json"}');
      return;
    }
    const id = `evt_${prefix}_${(sequence++).toString(36)}`;
    queue
      .add('deliver', { id, type: String(body.event), occurredAt: Date.now(), data: body.data, url }, jobOptions)
      .then(
        () => res.writeHead(202, { 'content-type': 'application/json' }).end(`{"id":"${id}"}`),
        (err) => res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message })),
      );
  });
});

server.keepAliveTimeout = 30_000;
await queue.waitUntilReady();
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
const exit = () => {
  server.close();
  queue.close().finally(() => process.exit(0));
};
process.on('message', (message) => {
  if (message?.cmd === 'exit') exit();
});
process.once('SIGTERM', exit);
