// The relay floor's server (scenario relay-floor): the least a durable webhook relay does in Node.
// A bare node:http server parses each publish and commits its event and delivery to SQLite, with
// countersign's settings (WAL, synchronous NORMAL), before it answers 202; the publishes of one
// tick share one transaction. Each delivery is then signed the Standard Webhooks way and POSTed
// with undici's Pool through a bare dispatch handler, and its 2xx is recorded, also one
// transaction a tick.
// No framework, authentication, validation, retries, attempt log, metrics or logs: what storing
// and sending alone cost, before any of the work that makes countersign a product. With
// BENCH_SEND=off it stores and answers only (scenario relay-floor-publish).
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { Pool } from 'undici';

const target = new URL(process.env.BENCH_TARGET ?? '');
const connections = Number(process.env.BENCH_CONNECTIONS ?? '128');
/** BENCH_SEND=off stores and answers only: the durable publish floor. */
const sending = process.env.BENCH_SEND !== 'off';
const secret = randomBytes(32);

const db = new Database(process.env.BENCH_DB ?? '');
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
db.pragma('temp_store = MEMORY');
// Checkpoints on a thread of their own, as countersign runs them, not inside whichever commit
// fills the WAL.
db.pragma('wal_autocheckpoint = 0');
db.exec(`
  create table events (id text primary key, type text not null, data text not null, created_at integer not null) without rowid;
  create table deliveries (
    id text primary key, event_id text not null, status text not null,
    next_attempt_at integer not null, delivered_at integer
  ) without rowid;
  create index deliveries_due on deliveries (next_attempt_at) where status in ('pending', 'sending');
`);
const checkpointer = new Worker(
  `const { driver, path } = require('node:worker_threads').workerData;
   const db = new (require(driver))(path);
   setInterval(() => db.pragma('wal_checkpoint(PASSIVE)'), 100);`,
  {
    eval: true,
    workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path: process.env.BENCH_DB },
  },
);
checkpointer.unref();

/** Ids that grow with time, as countersign's ULIDs do: new rows go at the end of each B-tree. */
let sequence = Date.now() * 1_000;
const newId = (prefix) => `${prefix}_${(sequence++).toString(36)}`;

const insertEvent = db.prepare('insert into events (id, type, data, created_at) values (?, ?, ?, ?)');
const insertDelivery = db.prepare(
  `insert into deliveries (id, event_id, status, next_attempt_at) values (?, ?, 'sending', ?)`,
);
const markDelivered = db.prepare(`update deliveries set status = 'delivered', delivered_at = ? where id = ?`);

/** Runs `write(items)` in one transaction per tick for everything added during it. */
function perTick(write) {
  let items = [];
  return (item) => {
    if (items.length === 0) {
      setImmediate(() => {
        const batch = items;
        items = [];
        write(batch);
      });
    }
    items.push(item);
  };
}

const acceptTx = db.transaction((batch, now) => {
  for (const p of batch) {
    insertEvent.run(p.eventId, p.type, p.dataJson, now);
    // The lease a crash would need to be retried after, as a claim sets it.
    insertDelivery.run(p.deliveryId, p.eventId, now + 60_000);
  }
});
const recordTx = db.transaction((ids, now) => {
  for (const id of ids) markDelivered.run(now, id);
});

const record = perTick((ids) => recordTx(ids, Date.now()));

const pool = new Pool(target.origin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });

const isoSeconds = (ms) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

/**
 * Signs and POSTs one delivery through undici's dispatch handler (no response stream, as
 * countersign's sender does it), and records it once a 2xx has been read to its end.
 */
function send(p, timestamp) {
  const body = `{"event":${JSON.stringify(p.type)},"timestamp":"${timestamp}","data":${p.dataJson},"id":"${p.eventId}"}`;
  const sentAt = Math.floor(Date.now() / 1000);
  const signature = createHmac('sha256', secret).update(`${p.deliveryId}.${sentAt}.${body}`).digest('base64');
  let statusCode = 0;
  pool.dispatch(
    {
      method: 'POST',
      path: target.pathname,
      headers: {
        'content-type': 'application/json',
        'webhook-id': p.deliveryId,
        'webhook-timestamp': String(sentAt),
        'webhook-signature': `v1,${signature}`,
      },
      body,
    },
    {
      // undici takes a handler with onRequestStart for one of its current (v7) shape.
      onRequestStart() {},
      onResponseStart(_controller, code) {
        statusCode = code;
      },
      onResponseData() {},
      onResponseEnd() {
        if (statusCode >= 200 && statusCode < 300) record(p.deliveryId);
      },
      onResponseError(_controller, err) {
        process.stderr.write(`relay floor: send failed: ${err.message}\n`);
      },
    },
  );
}

const accept = perTick((batch) => {
  const now = Date.now();
  try {
    acceptTx(batch, now);
  } catch (err) {
    for (const p of batch) p.res.writeHead(503).end();
    process.stderr.write(`relay floor: ${err.message}\n`);
    return;
  }
  const timestamp = isoSeconds(now);
  for (const p of batch) {
    const answer = `{"id":"${p.eventId}","event":${JSON.stringify(p.type)},"timestamp":"${timestamp}","deliveries":1}`;
    p.res.writeHead(202, { 'content-type': 'application/json; charset=utf-8' }).end(answer);
    if (sending) send(p, timestamp);
  }
});

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
    accept({
      res,
      eventId: newId('evt'),
      deliveryId: newId('dlv'),
      type: String(body.event),
      dataJson: JSON.stringify(body.data),
    });
  });
});

server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
const exit = () => {
  db.close();
  process.exit(0);
};
process.on('message', (message) => {
  if (message?.cmd === 'exit') exit();
});
process.once('SIGTERM', exit);
