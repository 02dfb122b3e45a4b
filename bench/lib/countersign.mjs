// countersign as the benchmark runs it: the built CLI (`dist/cli/main.js`) in child processes, on
// a fresh SQLite file or a fresh PostgreSQL database per run, reachable on loopback only.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { request } from 'undici';
import { cpuSeconds, freePort, lastWords, onInterrupt, peakRssMB, sleep, spawnNode, stopChild } from './processes.mjs';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const TOKEN = /cst_[A-Za-z0-9_-]{43}/;
/** Where a first start that is not on a terminal (as here) says it wrote its token. */
const TOKEN_FILE_LINE = /it is in (\S+) \(readable by this user only\)/;

/** The first start's token in its output: printed on a terminal, else in the file it names. */
function firstStartToken(stdout) {
  const printed = TOKEN.exec(stdout)?.[0];
  if (printed) return printed;
  const file = TOKEN_FILE_LINE.exec(stdout)?.[1];
  return file === undefined ? undefined : TOKEN.exec(readFileSync(file, 'utf8'))?.[0];
}

/** Every process of one run shares this key, as nodes sharing a database must. */
const MASTER_KEY = randomBytes(32).toString('hex');

/** Refuses any database or Redis URL that is not on loopback. */
export function requireLoopback(name, url) {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) {
    throw new Error(`${name} must point at a loopback address (127.0.0.1, localhost or ::1), got "${host}"`);
  }
}

/** A temporary directory holding a fresh SQLite file; `remove()` deletes it. */
export function sqliteDatabase() {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-bench-'));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onInterrupt(async () => remove());
  return {
    dir,
    url: join(dir, 'countersign.db'),
    async drop() {
      forget();
      remove();
    },
  };
}

let databaseCounter = 0;

/** A fresh database on the PostgreSQL server of `serverUrl`; `drop()` removes it. */
export async function postgresDatabase(serverUrl) {
  requireLoopback('COUNTERSIGN_BENCH_PG_URL', serverUrl);
  const name = `countersign_bench_${process.pid}_${Date.now()}_${++databaseCounter}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const dir = mkdtempSync(join(tmpdir(), 'countersign-bench-'));
  const drop = async () => {
    rmSync(dir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    } finally {
      await client.end();
    }
  };
  const forget = onInterrupt(drop);
  return {
    dir,
    url: url.toString(),
    async drop() {
      forget();
      await drop();
    },
  };
}

function childEnv(databaseUrl, extra) {
  const env = {};
  // Only what a node process needs from the parent; no stray COUNTERSIGN_* settings leak in.
  for (const key of ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ']) if (process.env[key]) env[key] = process.env[key];
  return {
    ...env,
    DATABASE_URL: databaseUrl,
    COUNTERSIGN_ALLOW_INSECURE_TARGETS: 'true',
    COUNTERSIGN_MASTER_KEY: MASTER_KEY,
    // The product's defaults: info, with the access log on, as an operator runs it.
    LOG_LEVEL: 'info',
    ...extra,
  };
}

/**
 * Starts `countersign serve` (with or without its dispatcher) and waits until /healthz answers.
 * On a database without accounts the server prints a first token, which is returned.
 */
export async function startServe(database, { dispatcher = true, nodeArgs = [], expectToken = true, env = {} } = {}) {
  const port = await freePort();
  const args = [CLI, 'serve', '--host', '127.0.0.1', '--port', String(port)];
  if (!dispatcher) args.push('--no-dispatcher');
  const child = spawnNode(args, {
    env: childEnv(database.url, env),
    nodeArgs,
    cwd: database.dir,
    name: dispatcher ? 'countersign serve' : 'countersign serve --no-dispatcher',
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    if (stdout.length < 10_000) stdout += chunk.toString();
  });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (true) {
    if (child.exitCode !== null) throw new Error(`countersign serve exited (${child.exitCode}) ${lastWords(child)}`);
    if (Date.now() > deadline) {
      await stopChild(child, 1_000);
      throw new Error(`countersign serve did not answer /healthz within 60 s ${lastWords(child)}`);
    }
    const healthy = await request(`${origin}/healthz`).then(
      async (res) => {
        await res.body.dump();
        return res.statusCode === 200;
      },
      () => false,
    );
    if (healthy && (!expectToken || firstStartToken(stdout) !== undefined)) break;
    await sleep(100);
  }
  return { child, origin, token: firstStartToken(stdout) };
}

/** A token of a new account `name`, made by `countersign token create` on the run's database. */
export async function createToken(database, name) {
  const child = spawnNode([CLI, 'token', 'create', '--account', name, '--create-account'], {
    env: childEnv(database.url, {}),
    cwd: database.dir,
    name: 'countersign token create',
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk.toString();
  });
  const { code } = await child.exited;
  const token = TOKEN.exec(stdout)?.[0];
  if (code !== 0 || !token) throw new Error(`countersign token create failed (${code}) ${lastWords(child)}`);
  return token;
}

/** Starts `countersign worker` (dispatcher only) and waits until its store is open. */
export async function startWorker(database, { nodeArgs = [] } = {}) {
  // At info level the worker says "store ready" once, right before its dispatcher starts.
  const child = spawnNode([CLI, 'worker'], {
    env: childEnv(database.url, {}),
    nodeArgs,
    cwd: database.dir,
    name: 'countersign worker',
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => {
    if (stdout.length < 10_000) stdout += chunk.toString();
  });
  const deadline = Date.now() + 60_000;
  while (!stdout.includes('store ready')) {
    if (child.exitCode !== null) throw new Error(`countersign worker exited (${child.exitCode}) ${lastWords(child)}`);
    if (Date.now() > deadline) {
      await stopChild(child, 1_000);
      throw new Error(`countersign worker did not start within 60 s ${lastWords(child)}`);
    }
    await sleep(50);
  }
  return { child };
}

/** The sum of the processes' peak RSS in MB (undefined where /proc is not available). */
export function peakRssOf(children) {
  const peaks = children.map((c) => peakRssMB(c.pid));
  return peaks.some((p) => p === undefined) ? undefined : peaks.reduce((a, b) => a + b, 0);
}

/**
 * Starts counting the processes' CPU time; the returned function gives the CPU microseconds they
 * used per unit of `work` since (undefined where /proc is not available). On a shared machine this
 * moves less than a rate does, so changes are compared with it too.
 */
export function cpuMeter(children) {
  const total = () => {
    const each = children.map((c) => cpuSeconds(c.pid));
    return each.some((s) => s === undefined) ? undefined : each.reduce((a, b) => a + b, 0);
  };
  const start = total();
  return (work) => {
    const end = total();
    return start === undefined || end === undefined || work <= 0 ? undefined : ((end - start) * 1e6) / work;
  };
}

/** Stops the processes (API first, so nothing new arrives while workers finish). */
export async function stopAll(children) {
  for (const child of children) await stopChild(child);
}
