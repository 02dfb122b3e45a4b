// `npm run bench`: countersign side by side with the raw HTTP ceiling and a BullMQ pipeline, in
// one run on one machine, all against the same receiver process on loopback. Progress goes to
// stderr; the Markdown table to stdout; the full results to bench/results/latest.json.
//
//   node bench/run.mjs [--quick] [--only 1,3,5] [--runs N] [--events N] [--drain-cap S] [--profile] [--node-args ARGS]
//                      [--out FILE]
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startReceiver } from './lib/receiver-client.mjs';
import { medianOfRuns } from './lib/stats.mjs';
import { budgets, goals, markdown, ratios } from './report.mjs';
import { backlog } from './scenarios/backlog.mjs';
import { bullmq, bullmqHttp } from './scenarios/bullmq.mjs';
import { ceiling } from './scenarios/ceiling.mjs';
import { endToEnd, endToEndBatch, publishOnly } from './scenarios/countersign.mjs';
import { fanOut } from './scenarios/fanout.mjs';
import { httpFloor } from './scenarios/http-floor.mjs';
import { latency } from './scenarios/latency.mjs';
import { closeBadEndpoints, neighbours } from './scenarios/neighbours.mjs';
import { relayFloor, relayFloorPublish } from './scenarios/relay-floor.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean' },
    only: { type: 'string' },
    runs: { type: 'string' },
    events: { type: 'string' },
    profile: { type: 'boolean' },
    'node-args': { type: 'string' },
    'drain-cap': { type: 'string' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (flags.help) {
  process.stdout.write(
    'usage: node bench/run.mjs [--quick] [--only 1,3,5] [--runs N] [--events N] [--drain-cap S] [--profile] [--node-args ARGS] [--out FILE]\n' +
      'See bench/README.md.\n',
  );
  process.exit(0);
}

const quick = Boolean(flags.quick);
const positive = (name, value) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a positive integer, got "${value}"`);
  return n;
};
const runs = flags.runs ? positive('runs', flags.runs) : 3;
const events = flags.events ? positive('events', flags.events) : quick ? 5_000 : 50_000;

const plan = {
  runs,
  events,
  warmup: quick ? 300 : 1_000,
  /** Concurrent publishing clients (and BullMQ producers). */
  publishConcurrency: 64,
  /** Connections to the receiver: countersign's default per-origin limit, used by every pipeline. */
  deliveryConnections: 128,
  /** Time box: no new event is sent after this, so a slow pipeline publishes fewer than N. */
  publishForMs: quick ? 5_000 : 10_000,
  /** Once sending ends, how long the deliveries may take to arrive before the run counts as incomplete. */
  waitMs: quick ? 30_000 : 60_000,
  latency: { rate: 1_000, seconds: quick ? 3 : 10, settleSeconds: quick ? 2 : 5, runs: quick ? 1 : runs },
  fanOut: { subscriptions: 1_000, events: quick ? 20 : 100, runs: quick ? 1 : runs, waitMs: quick ? 30_000 : 40_000 },
  neighbours: { events: quick ? 1_000 : 2_000, warmup: quick ? 200 : 300 },
  backlog: {
    deliveries: quick ? 100_000 : 1_000_000,
    runs: quick ? 1 : runs,
    // A drain still running at this point is stopped; its rate and RSS are those of the part drained.
    // --drain-cap SECONDS moves it (to drain the whole backlog once, say), and makes the run a partial one.
    capMs: flags['drain-cap'] ? positive('drain-cap', flags['drain-cap']) * 1_000 : quick ? 30_000 : 40_000,
  },
};

const SCENARIOS = [
  { id: '1', key: 'ceiling', title: 'Ceiling: undici → receiver', interleave: true, run: (ctx) => ceiling(ctx) },
  { id: '2', key: 'bullmq', title: 'BullMQ + worker (Redis)', interleave: true, run: (ctx) => bullmq(ctx) },
  {
    id: '2',
    key: 'bullmq-http',
    title: 'BullMQ behind a bare HTTP server: the same single-event publishes, queue.add each',
    interleave: true,
    run: (ctx) => bullmqHttp(ctx),
  },
  {
    id: '3',
    key: 'sqlite',
    title: 'countersign, SQLite',
    interleave: true,
    run: (ctx) => endToEnd(ctx, { store: 'sqlite' }),
  },
  {
    id: '3',
    key: 'relay-floor',
    title: 'Floor: bare durable relay (node:http, SQLite, undici), the same publishes end to end',
    interleave: true,
    run: (ctx) => relayFloor(ctx),
  },
  {
    id: '3',
    key: 'sqlite-publish',
    title: 'countersign, SQLite, publish only (dispatcher off)',
    interleave: true,
    run: (ctx) => publishOnly(ctx, { store: 'sqlite' }),
  },
  {
    id: '3',
    key: 'sqlite-publish-no-access-log',
    title: 'countersign, SQLite, publish only, access log off (COUNTERSIGN_ACCESS_LOG=off)',
    interleave: true,
    run: (ctx) => publishOnly(ctx, { store: 'sqlite', accessLog: false }),
  },
  {
    id: '3',
    key: 'sqlite-batch',
    title: 'countersign, SQLite, the same events published in batches of 500 over 4 connections',
    interleave: true,
    run: (ctx) => endToEndBatch(ctx),
  },
  {
    id: '3',
    key: 'sqlite-batch-publish',
    title: 'countersign, SQLite, batches of 500, publish only (dispatcher off)',
    interleave: true,
    run: (ctx) => publishOnly(ctx, { store: 'sqlite', batch: true }),
  },
  {
    id: '3',
    key: 'relay-floor-publish',
    title: 'Floor: bare durable relay, the same publish requests, stored and answered only',
    interleave: true,
    run: (ctx) => relayFloorPublish(ctx),
  },
  {
    id: '3',
    key: 'http-floor',
    title: 'Floor: bare node:http server, the same publish requests',
    interleave: true,
    run: (ctx) => httpFloor(ctx),
  },
  {
    id: '4',
    key: 'postgres',
    title: 'countersign, PostgreSQL, 1 process',
    interleave: true,
    run: (ctx) => endToEnd(ctx, { store: 'postgres' }),
  },
  {
    id: '4',
    key: 'postgres-3w',
    title: 'countersign, PostgreSQL, API + 3 workers',
    interleave: true,
    run: (ctx) => endToEnd(ctx, { store: 'postgres', workers: 3 }),
  },
  {
    id: '4',
    key: 'postgres-1w',
    title: 'countersign, PostgreSQL, API + 1 worker',
    // A diagnostic beside postgres-3w (what a process count costs on this machine), run only when
    // named: `--only postgres,postgres-1w,postgres-3w`.
    onlyWhenNamed: true,
    interleave: true,
    run: (ctx) => endToEnd(ctx, { store: 'postgres', workers: 1 }),
  },
  ...[
    ['same', 'in the healthy account'],
    ['other', 'in another account, which publishes as much'],
  ].flatMap(([where, what]) => [
    {
      id: '8',
      key: `neighbours-${where}-quiet`,
      title: `Neighbours, SQLite: the healthy endpoint, 60 bad subscriptions ${what}, paused (quiet)`,
      interleave: true,
      run: (ctx) => neighbours(ctx, { where, quiet: true }),
    },
    {
      id: '8',
      key: `neighbours-${where}`,
      title: `Neighbours, SQLite: the healthy endpoint beside 50 endpoints that never answer and 10 that answer 503 after 2 s, ${what}`,
      interleave: true,
      run: (ctx) => neighbours(ctx, { where, quiet: false }),
    },
  ]),
  {
    id: '5',
    key: 'latency',
    title: `Latency, SQLite, ${plan.latency.rate.toLocaleString('en-US')} events/s, first ${plan.latency.seconds} s`,
    run: (ctx) => latency({ ...ctx, plan: { ...ctx.plan, runs: plan.latency.runs } }),
  },
  {
    id: '6',
    key: 'fan-out',
    title: `Fan-out, SQLite: ${plan.fanOut.subscriptions.toLocaleString('en-US')} subscriptions × ${plan.fanOut.events} events`,
    run: (ctx) => fanOut(ctx),
  },
  {
    id: '7',
    key: 'backlog',
    title: `Backlog, SQLite: drain ${plan.backlog.deliveries.toLocaleString('en-US')} due deliveries`,
    run: (ctx) => backlog(ctx),
  },
];

const only = flags.only ? new Set(flags.only.split(',').map((s) => s.trim())) : undefined;
// A diagnostic scenario runs only when its key is named; the others also by number, or by default.
const selected = SCENARIOS.filter((s) =>
  s.onlyWhenNamed ? only?.has(s.key) : !only || only.has(s.id) || only.has(s.key),
);
if (selected.length === 0) throw new Error(`--only ${flags.only} matches no scenario (use 1-8 or a key)`);

const began = Date.now();
function log(message) {
  const t = ((Date.now() - began) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[${t}s] ${message}\n`);
}

function machineInfo() {
  const cpu = cpus();
  let commit;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: HERE, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    commit = undefined;
  }
  return {
    machine: {
      cpu: cpu[0]?.model ?? 'unknown CPU',
      cores: cpu.length,
      memoryGB: totalmem() / 1e9,
      platform: process.platform,
      kernel: release(),
      node: process.version,
      loadAverageAtStart: loadavg().map((l) => Math.round(l * 100) / 100),
    },
    commit,
  };
}

const profileDir = join(HERE, 'results', 'profiles');
// Extra node flags for every countersign process (e.g. --node-args="--max-semi-space-size=8").
const extraNodeArgs = flags['node-args']?.split(/\s+/).filter(Boolean) ?? [];
// The floors' servers are profiled with --profile too, but take no --node-args: they stay as node runs them.
const profileArgs = flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
const nodeArgs = [...profileArgs, ...extraNodeArgs];
if (flags.profile) mkdirSync(profileDir, { recursive: true });

const { machine, commit } = machineInfo();
log(
  `countersign benchmark${quick ? ' (--quick)' : ''}: ${selected.length} scenarios, ${runs} runs each, ` +
    `${events.toLocaleString('en-US')} events; ${machine.cpu}, ${machine.cores} cores, load ${machine.loadAverageAtStart.join(' ')}`,
);

const receiver = await startReceiver();
log(`receiver listening on ${receiver.origin} (pid in its own process)`);

const baseCtx = {
  receiver,
  plan,
  nodeArgs,
  profileArgs,
  redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
  pgUrl: process.env.COUNTERSIGN_BENCH_PG_URL || 'postgres://postgres@127.0.0.1:5432/test',
  log,
  progress: (expected) => (s) =>
    log(`    … ${s.unique.toLocaleString('en-US')} of ${expected.toLocaleString('en-US')} delivered`),
};

/**
 * Runs `scenario` `count` times, appending to entry.runs. Runs are numbered from `first` out of
 * `total` (a round of the interleaved scenarios), or out of what the scenario repeats.
 */
async function runInto(entry, scenario, count, first = 1, total = undefined) {
  const ctx = {
    ...baseCtx,
    plan: { ...plan, runs: count },
    async repeat(n, once) {
      const out = [];
      for (let r = 0; r < n; r++) {
        const result = await once();
        out.push(result);
        log(`  run ${first + r}/${total ?? n}: ${describe(result)}`);
      }
      return out;
    },
  };
  try {
    entry.runs.push(...(await scenario.run(ctx)));
  } catch (err) {
    entry.error = err instanceof Error ? err.message : String(err);
    log(`  FAILED: ${entry.error}`);
  }
}

function finish(entry) {
  if (entry.runs.length === 0) return;
  entry.median = medianOfRuns(entry.runs);
  const problems = entry.runs.filter((r) => r.timedOut || r.errors > 0);
  const partial = entry.runs.filter((r) => r.partial);
  if (partial.length > 0) {
    entry.incomplete =
      `${partial.length} of ${entry.runs.length} drains stopped at the ${plan.backlog.capMs / 1000} s cap ` +
      `(median ${Math.round(entry.median.received).toLocaleString('en-US')} delivered): ` +
      'the rate and the peak RSS are those of the part drained';
  } else if (problems.length > 0) {
    const p = problems[0];
    entry.incomplete =
      `${problems.length} of ${entry.runs.length} runs incomplete: ` +
      `received ${p.received?.toLocaleString('en-US')} of ${(p.deliveries ?? p.events)?.toLocaleString('en-US')}` +
      `${p.timedOut ? ' before the time limit' : ''}${p.errors ? `, ${p.errors} errors (${p.firstError ?? 'see receiver'})` : ''}`;
  }
}

const entries = selected.map((s) => ({ id: s.id, key: s.key, title: s.title, runs: [] }));
try {
  // The throughput scenarios that the ratios compare run in rounds, one run of each per round, so a
  // machine whose speed drifts over minutes slows every pipeline alike and the ratios stay fair.
  const interleaved = selected.filter((s) => s.interleave);
  for (let round = 1; round <= runs && interleaved.length > 0; round++) {
    for (const scenario of interleaved) {
      const entry = entries[selected.indexOf(scenario)];
      if (entry.error) continue;
      log(`[round ${round}/${runs}] ${scenario.id}. ${scenario.title}`);
      entry.interleaved = true;
      await runInto(entry, scenario, 1, round, runs);
    }
  }
  for (const [n, scenario] of selected.entries()) {
    if (scenario.interleave) continue;
    log(`[${n + 1}/${selected.length}] ${scenario.id}. ${scenario.title}`);
    await runInto(entries[n], scenario, runs);
  }
  for (const entry of entries) finish(entry);
} finally {
  closeBadEndpoints();
  await receiver.close();
}

function describe(r) {
  const parts = [];
  const n = (v, d = 0) => v.toLocaleString('en-US', { maximumFractionDigits: d });
  if (r.deliveriesPerSec !== undefined) parts.push(`${n(r.deliveriesPerSec)} deliveries/s`);
  if (r.drainPerSec !== undefined) parts.push(`drained at ${n(r.drainPerSec)}/s`);
  if (r.e2eSeconds !== undefined) parts.push(`${n(r.e2eSeconds, 2)} s end to end`);
  if (r.publishPerSec !== undefined) parts.push(`${n(r.publishPerSec)} publishes/s`);
  if (r.p99Ms !== undefined) parts.push(`p50 ${n(r.p50Ms, 2)} p95 ${n(r.p95Ms, 2)} p99 ${n(r.p99Ms, 2)} ms`);
  if (r.p99SteadyMs !== undefined) parts.push(`from ${r.steadyFromS} s on: p99 ${n(r.p99SteadyMs, 2)} ms`);
  if (r.peakRssMB !== undefined) parts.push(`peak RSS ${n(r.peakRssMB)} MB`);
  const cpu = r.cpuUsPerDelivery ?? r.cpuUsPerEvent;
  if (cpu !== undefined) parts.push(`${n(cpu)} µs CPU each`);
  if (r.partial) parts.push(`stopped at the cap with ${n(r.received ?? 0)} delivered`);
  if (r.timedOut) parts.push(`TIMED OUT with ${n(r.received ?? 0)} received`);
  if (r.errors) parts.push(`${r.errors} errors: ${r.firstError ?? ''}`);
  if (r.duplicates) parts.push(`${r.duplicates} duplicates`);
  return parts.join(', ');
}

const results = entries;
const byKey = Object.fromEntries(results.map((r) => [r.key, r]));
const result = {
  benchmark: 'countersign',
  date: new Date().toISOString(),
  quick,
  commit,
  machine,
  plan: {
    ...plan,
    redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379',
    scenarios: selected.map((s) => s.key),
  },
  durationSeconds: Math.round((Date.now() - began) / 1000),
  scenarios: results,
  ratios: ratios(byKey),
  goals: goals(byKey),
  budgets: budgets(byKey, machine.cores),
};

const partial =
  quick ||
  only !== undefined ||
  flags.runs !== undefined ||
  flags.events !== undefined ||
  flags['drain-cap'] !== undefined ||
  extraNodeArgs.length > 0;
const out = flags.out ?? join(HERE, 'results', partial ? 'latest-quick.json' : 'latest.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
process.stdout.write(markdown(result));
log(`done in ${result.durationSeconds} s; results in ${out}`);
if (results.some((r) => r.error)) process.exitCode = 1;
