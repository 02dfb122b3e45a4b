// The built CLI (`node dist/cli/main.js`) as real child processes: one-shot commands, and `serve`
// on a loopback port picked for the test. Every child started here is tracked so a suite can kill
// whatever is still running in afterEach/afterAll.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');

/** A token as printed by the CLI and the first start: `cst_` + 43 base64url characters. */
export const TOKEN_SHAPE = /cst_[A-Za-z0-9_-]{43}/g;

/** Where a first start that was not on a terminal says it wrote its token. */
const TOKEN_FILE_LINE = /it is in (\S+) \(readable by this user only\)/;

/**
 * The tokens a first start gave in this output: printed (on a terminal), or written to the file it
 * names (anywhere else, as under test).
 */
export function firstStartTokens(output: string): string[] {
  const printed = output.match(TOKEN_SHAPE) ?? [];
  const file = TOKEN_FILE_LINE.exec(output)?.[1];
  if (file === undefined) return printed;
  return [...printed, ...(readFileSync(file, 'utf8').match(TOKEN_SHAPE) ?? [])];
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface Workspace {
  dir: string;
  /** The environment a child needs: this workspace's database and key file, API only, loopback. */
  env: NodeJS.ProcessEnv;
  remove(): void;
}

/**
 * Preloaded into every child: Node's DNS answers IP literals and `localhost` and nothing else, without
 * asking any server. Registration resolves target hosts (the SSRF guard), and the seed examples name real
 * hosts; tests send traffic to loopback only, so the children must not query a real resolver.
 * An unresolvable host is accepted at registration (the send-time guard checks it again).
 */
const OFFLINE_DNS = `import dns from 'node:dns';
import { isIP } from 'node:net';
const local = (hostname) =>
  isIP(hostname) !== 0
    ? { address: hostname, family: isIP(hostname) }
    : hostname === 'localhost'
      ? { address: '127.0.0.1', family: 4 }
      : undefined;
const notFound = (hostname) =>
  Object.assign(new Error('getaddrinfo ENOTFOUND ' + hostname + ' (offline DNS in tests)'), { code: 'ENOTFOUND', hostname });
dns.promises.lookup = async (hostname, options) => {
  const found = local(hostname);
  if (!found) throw notFound(hostname);
  return options && typeof options === 'object' && options.all ? [found] : found;
};
dns.lookup = (hostname, options, callback) => {
  const cb = typeof options === 'function' ? options : callback;
  const found = local(hostname);
  if (!found) return process.nextTick(cb, notFound(hostname));
  if (options && typeof options === 'object' && options.all) return process.nextTick(cb, null, [found]);
  return process.nextTick(cb, null, found.address, found.family);
};
`;

/** A temp folder holding a fresh SQLite file (or the given DATABASE_URL) and the master key file. */
export function makeWorkspace(databaseUrl?: string): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-cli-'));
  const offlineDns = join(dir, 'offline-dns.mjs');
  writeFileSync(offlineDns, OFFLINE_DNS);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_OPTIONS: `--import=${offlineDns}`,
    DATABASE_URL: databaseUrl ?? join(dir, 'countersign.db'),
    COUNTERSIGN_MASTER_KEY_FILE: join(dir, 'master.key'),
    // The seed examples name real hosts: with no dispatcher nothing is ever sent to them.
    COUNTERSIGN_NO_DISPATCHER: 'true',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
  };
  delete env.COUNTERSIGN_MASTER_KEY;
  delete env.PORT;
  return { dir, env, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs one CLI command to completion. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [CLI, ...args], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** A port that was free a moment ago: listen on port 0, note the port, close. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolvePort, reject) => {
      const server = createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        const picked = typeof address === 'object' && address ? address.port : 0;
        server.close(() => resolvePort(picked));
      });
    });
    if (port !== 0 && port !== 8080) return port;
  }
}

export interface ServeProcess {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  /** The first-start tokens printed on stdout (none on later starts). */
  printedTokens(): string[];
  /** SIGTERM, then SIGKILL if it has not exited within the grace period; resolves the exit code. */
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();

/** Starts `serve` on a free loopback port (or `port`) and resolves once it logs that it is listening. */
export async function startServe(env: NodeJS.ProcessEnv, timeoutMs = 60_000, port?: number): Promise<ServeProcess> {
  port ??= await freePort();
  const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port), '--host', '127.0.0.1'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code) => {
      running.delete(child);
      resolveExit(code);
    });
  });

  await new Promise<void>((resolveReady, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`serve did not start within ${timeoutMs} ms\nstdout:\n${out}\nstderr:\n${err}`));
    }, timeoutMs);
    const onData = () => {
      if (out.includes('"countersign is listening"')) {
        cleanup();
        resolveReady();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`serve exited with ${code} before listening\nstdout:\n${out}\nstderr:\n${err}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    onData();
  });

  return {
    child,
    url: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    printedTokens: () => firstStartTokens(out),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      }
      return exited;
    },
  };
}

/** Kills every `serve` child still running (for afterEach/afterAll). */
export async function killAllServe(): Promise<void> {
  const children = [...running];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolveKill) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolveKill();
          child.once('exit', () => resolveKill());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** The last non-empty line of a command's stdout. */
export function lastLine(text: string): string {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  return lines[lines.length - 1] ?? '';
}
