// The benchmark's receiver, in its own process so its work never shares an event loop with the
// system under test. A minimal node:http server on 127.0.0.1 that answers every POST with 200 and
// records when it arrived. The parent arms it over IPC with the number of deliveries to expect and
// gets one `done` message when they are in (or asks for `stats` at any time).
//
// Times are process.hrtime.bigint() nanoseconds: CLOCK_MONOTONIC, shared by every process on the
// machine, so a `sent_at_ns` stamped by the publisher compares with an arrival stamped here.
import { createServer } from 'node:http';

const SENT_AT = '"sent_at_ns":"';

/** One armed measurement. */
let run = newRun({ expected: 0, latency: false, unique: false });

/**
 * `windowsMs`: extra latency percentiles over parts of the run, each [from, to) in ms of send time
 * counted from the earliest send (e.g. [[5000, 15000]]: events sent from 5 s to 15 s).
 */
function newRun({ expected, latency, unique, windowsMs = [] }) {
  return {
    expected,
    count: 0,
    errors: 0,
    firstNs: 0n,
    lastNs: 0n,
    latenciesMs: latency ? [] : undefined,
    sentNs: latency ? [] : undefined,
    windowsMs,
    seen: unique ? new Set() : undefined,
    done: false,
  };
}

function uniqueCount(r) {
  return r.seen ? r.seen.size : r.count;
}

function summary(r) {
  const latency = r.latenciesMs ? percentiles(r.latenciesMs) : undefined;
  const windows = r.latenciesMs ? windowPercentiles(r) : undefined;
  return {
    expected: r.expected,
    count: r.count,
    unique: uniqueCount(r),
    duplicates: r.seen ? r.count - r.seen.size : undefined,
    errors: r.errors,
    firstNs: r.firstNs.toString(),
    lastNs: r.lastNs.toString(),
    latency,
    windows,
  };
}

function windowPercentiles(r) {
  let earliest;
  for (const sent of r.sentNs) if (earliest === undefined || sent < earliest) earliest = sent;
  const atMs = r.sentNs.map((sent) => Number(sent - earliest) / 1e6);
  return r.windowsMs.map(([fromMs, toMs]) => {
    const inWindow = r.latenciesMs.filter((_, i) => atMs[i] >= fromMs && atMs[i] < toMs);
    return { fromMs, toMs, ...percentiles(inWindow) };
  });
}

function percentiles(samples) {
  if (samples.length === 0) return undefined;
  const sorted = Float64Array.from(samples).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
  return { samples: sorted.length, p50: at(50), p95: at(95), p99: at(99), max: sorted[sorted.length - 1] };
}

function checkDone(r) {
  if (!r.done && r.expected > 0 && uniqueCount(r) >= r.expected) {
    r.done = true;
    process.send?.({ type: 'done', summary: summary(r) });
  }
}

function record(url, id, body) {
  const now = process.hrtime.bigint();
  const r = run;
  if (r.count === 0) r.firstNs = now;
  r.count++;
  r.lastNs = now;
  r.seen?.add(`${url} ${id}`);
  if (r.latenciesMs) {
    const at = body.indexOf(SENT_AT);
    if (at !== -1) {
      const start = at + SENT_AT.length;
      const sent = BigInt(body.slice(start, body.indexOf('"', start)));
      r.latenciesMs.push(Number(now - sent) / 1e6);
      r.sentNs.push(sent);
    }
  }
  checkDone(r);
}

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0].toString('latin1') : Buffer.concat(chunks).toString('latin1');
    if (req.method === 'POST') record(req.url, req.headers['webhook-id'] ?? '', body);
    else run.errors++;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
  req.on('error', () => {
    run.errors++;
  });
});
server.headersTimeout = 60_000;
server.requestTimeout = 0;

process.on('message', (message) => {
  switch (message.cmd) {
    case 'arm':
      run = newRun(message);
      process.send?.({ type: 'armed' });
      break;
    case 'expect':
      // Fewer were sent than armed for (a time-boxed or failed publish): wait for those only.
      run.expected = message.expected;
      checkDone(run);
      break;
    case 'stats':
      process.send?.({ type: 'stats', summary: summary(run) });
      break;
    case 'exit':
      server.close();
      server.closeAllConnections();
      process.disconnect();
      break;
  }
});
// The parent going away (even by a crash) ends the receiver too.
process.on('disconnect', () => process.exit(0));

server.listen(0, '127.0.0.1', () => {
  process.send?.({ type: 'ready', port: server.address().port });
});
