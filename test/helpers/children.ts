// Real `countersign serve` and `countersign worker` child processes (the built dist/, so `npm test`
// builds first), and small HTTP helpers for talking to them: the crash and delivery-control suites.

import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Agent, request } from 'undici';
import { firstStartTokens } from './cli-process.js';
import type { Receiver } from './receiver.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli', 'main.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  /** The first-start token, when this start created the account. */
  token: string | undefined;
  output: string[];
  exited: Promise<Exit>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The environment of the child: ours minus any countersign settings, plus the test's. */
export function childEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key.startsWith('COUNTERSIGN_') || ['DATABASE_URL', 'PORT', 'HOST', 'LOG_LEVEL'].includes(key)) continue;
    env[key] = value;
  }
  return { ...env, ...settings };
}

/** Starts `countersign serve` and resolves once it listens (with the first-start token, if printed). */
export async function serve(env: NodeJS.ProcessEnv): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const listening = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`countersign did not listen in time:\n${output.join('\n')}`)),
      30_000,
    );
    const collect = (stream: NodeJS.ReadableStream | null) => {
      let rest = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) {
          output.push(line);
          if (line.includes('"countersign is listening"')) {
            clearTimeout(timer);
            resolve((JSON.parse(line) as { url: string }).url);
          }
        }
      });
    };
    collect(child.stdout);
    collect(child.stderr);
    exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`countersign exited (${exit.code ?? exit.signal}) before listening:\n${output.join('\n')}`));
    });
  });
  const url = await listening;
  const token = firstStartTokens(output.join('\n'))[0];
  return { child, url, token, output, exited };
}

/** Starts `countersign worker` and resolves once its store is open (its dispatcher starts next). */
export async function worker(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; exited: Promise<Exit> }> {
  const child = spawn(process.execPath, [CLI, 'worker'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start in time:\n${output}`)), 30_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('"store ready"')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    exited.then((exit) => {
      clearTimeout(timer);
      reject(new Error(`worker exited (${exit.code ?? exit.signal}) before starting:\n${output}`));
    });
  });
  return { child, exited };
}

export async function call(
  agent: Agent,
  base: string,
  token: string,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH',
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${base}${path}`, {
    method,
    dispatcher: agent,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Event ids the receiver got, read from each payload's `id`. */
export function receivedIds(receiver: Receiver): Set<string> {
  return new Set(receiver.requests.map((r) => (JSON.parse(r.body) as { id: string }).id));
}

export async function waitUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** SIGKILLs every child still running and waits for each to exit; empties the list. */
export async function killAll(children: ChildProcess[]): Promise<void> {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
  }
}
