// The process lifecycle of `countersign serve` and `countersign worker`. Start-up either brings up
// everything the process is for or leaves nothing running: the store (running migrations), the
// master key checked against the database, this process's registration, the HTTP API or the
// operations endpoint listening, then the dispatcher; the first-start token is made only once all
// of that is up. A failure at any step stops what was started and rejects with a StartupError that
// names the step in one line. Once up, SIGTERM/SIGINT shut down gracefully (stop accepting, finish
// in-flight sends up to the grace period, hand back unfinished claims).

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ALL_SCOPES } from './api/auth.js';
import { listeningOrigin } from './api/link-base.js';
import { buildOpsApp } from './api/ops.js';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { Dispatcher } from './delivery/dispatcher.js';
import type { SecretBox } from './domain/secret-box.js';
import { issueToken } from './domain/tokens.js';
import { MasterKeyError, masterKeyFor, verifyMasterKey } from './master-key.js';
import { Metrics } from './metrics.js';
import { RetentionPurge } from './retention.js';
import { openStore } from './store/kysely-store.js';
import { describeLocation, openDialect } from './store/open.js';
import { MASTER_KEY_CHECK } from './store/reseal.js';
import type { NodeRecord, Store } from './store/store.js';

/** How often a running process says it is alive; it counts as gone after NODE_STALE_MS of silence. */
export const HEARTBEAT_MS = 10_000;
export const NODE_STALE_MS = 3 * HEARTBEAT_MS;

export interface Running {
  app: FastifyInstance | undefined;
  dispatcher: Dispatcher | undefined;
  store: Store;
  url: string | undefined;
  /** A worker's operations endpoint (/healthz, /readyz, /metrics), when it has one. */
  opsUrl: string | undefined;
  stop(): Promise<void>;
}

export type StartupStep = 'store' | 'master key' | 'port' | 'ops endpoint' | 'dispatcher' | 'first start';

/** Start-up failed at `step`; the message is the one line an operator reads. */
export class StartupError extends Error {
  constructor(
    readonly step: StartupStep,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StartupError';
  }
}

export interface StartOptions {
  api: boolean;
  out?: NodeJS.WritableStream;
  /** Called when the process can no longer do its job (the master key was rotated under it). */
  onFatal?: (err: Error) => void;
}

export async function start(config: Config, log: Logger, options: StartOptions): Promise<Running> {
  // What has been started so far, undone in reverse order should a later step fail.
  const undo: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const step of undo.reverse()) await step().catch(() => undefined);
  };
  try {
    return await startSteps(config, log, options, undo);
  } catch (err) {
    await unwind();
    throw err;
  }
}

async function startSteps(
  config: Config,
  log: Logger,
  options: StartOptions,
  undo: (() => Promise<void>)[],
): Promise<Running> {
  const location = describeLocation(config.database);
  let store: Store;
  try {
    const warn = (err: Error, message: string) => log.warn({ err }, message);
    store = await openStore(openDialect(config.database, { warn }), {
      fileRebuildEveryMs: config.erasureRebuildEveryMs,
      warn: (message) => log.warn(message),
    });
  } catch (err) {
    throw new StartupError('store', `cannot open the database ${location}: ${reasonOf(err)}`, { cause: err });
  }
  undo.push(() => store.close());
  log.info({ database: location }, 'store ready');

  const node: NodeRecord = {
    id: `${hostname()}:${process.pid}:${Date.now().toString(36)}`,
    kind: options.api ? 'serve' : 'worker',
    hostname: hostname(),
    pid: process.pid,
    startedAt: Date.now(),
    heartbeatAt: Date.now(),
  };
  // Registered before the key is checked: a rotate-master-key that starts after this waits for us
  // or refuses; one that committed before is what the check below sees.
  try {
    await store.registerNode(node);
  } catch (err) {
    throw new StartupError('store', `cannot register this process in the database ${location}: ${reasonOf(err)}`, {
      cause: err,
    });
  }
  undo.push(() => store.removeNode(node.id));

  let secrets: SecretBox;
  let check: string;
  try {
    const key = await masterKeyFor(store, config.masterKey, config.masterKeyFile);
    secrets = key.secrets;
    check = key.check;
    if (key.source.origin === 'created') {
      log.warn({ file: config.masterKeyFile }, 'created a new master key file; back it up, secrets at rest need it');
    }
    // Values sealed before they were bound to their rows (domain/secret-box.ts) are re-sealed once,
    // here, before anything opens them: from now on a value opens only in the row it was made for.
    const upgraded = await store.upgradeLegacySealed((sealed, context) =>
      secrets.seal(secrets.openAny(sealed, context), context),
    );
    if (upgraded > 0) {
      log.info({ values: upgraded }, 'bound the sealed secrets to their rows (re-sealed with associated data)');
      check = (await store.getSetting(MASTER_KEY_CHECK)) ?? check;
    }
  } catch (err) {
    if (err instanceof MasterKeyError) throw new StartupError('master key', err.message, { cause: err });
    throw new StartupError('master key', `cannot read the master key: ${reasonOf(err)}`, { cause: err });
  }

  // One SSRF policy for registration and for every send.
  const targetPolicy = {
    allowInsecure: config.allowInsecureTargets,
    allowedCidrs: config.allowedTargetCidrs,
    allowedPorts: config.allowedTargetPorts,
  };
  const metrics = new Metrics();
  metrics.queue(store);
  const dispatcher = config.dispatcher.enabled
    ? new Dispatcher(store, secrets, config.dispatcher, log, { targetPolicy, metrics })
    : undefined;

  let app: FastifyInstance | undefined;
  let url: string | undefined;
  /** Where links start when neither COUNTERSIGN_PUBLIC_URL nor COUNTERSIGN_PUBLIC_HOSTS decides. */
  let linkOrigin: string | undefined;
  if (options.api) {
    const api = await buildApp({
      store,
      secrets,
      targetPolicy,
      logger: log,
      accessLog: config.accessLog,
      publicUrl: config.publicUrl,
      publicHosts: config.publicHosts,
      ...(config.auditLinkTtlMs === undefined ? {} : { auditLinkTtlMs: config.auditLinkTtlMs }),
      listenOrigin: () => linkOrigin,
      portal: { frameAncestors: config.portalFrameAncestors },
      rateLimit: config.rateLimit,
      inboundTimeoutMs: config.inboundTimeoutMs,
      erasureRateLimit: config.erasureRateLimit,
      quotas: {
        subscriptions: config.maxSubscriptions,
        deliveriesPerBatch: config.maxBatchDeliveries,
        portalSessions: config.maxPortalSessions,
      },
      metrics,
      dispatcher,
      listen: {
        retrySchedule: config.dispatcher.retrySchedule,
        leaseMs: config.dispatcher.leaseMs,
        disableAfterFailingMs: config.dispatcher.disableAfterFailingMs,
      },
    });
    app = api;
    undo.push(() => api.close());
    url = await listen(api, config.host, config.port, 'port');
    linkOrigin = listeningOrigin(url);
  }
  let ops: FastifyInstance | undefined;
  let opsUrl: string | undefined;
  if (!options.api && config.metricsPort !== undefined) {
    const opsApp = await buildOpsApp({ store, metrics, logger: log });
    ops = opsApp;
    undo.push(() => opsApp.close());
    opsUrl = await listen(opsApp, config.host, config.metricsPort, 'ops endpoint');
  }

  if (dispatcher) {
    try {
      await dispatcher.start();
    } catch (err) {
      throw new StartupError('dispatcher', `the dispatcher cannot claim deliveries: ${reasonOf(err)}`, { cause: err });
    }
    undo.push(() => dispatcher.stop());
  }

  // COUNTERSIGN_RETENTION: old events are purged in the background (retention.ts).
  const retention = config.retentionMs === undefined ? undefined : new RetentionPurge(store, config.retentionMs, log);
  if (retention) {
    retention.start();
    undo.push(() => retention.stop());
  }

  if (options.api && url) {
    const out = options.out ?? process.stdout;
    const tokenFile = resolve(dirname(config.masterKeyFile), FIRST_TOKEN_FILE);
    try {
      await bootstrapFirstAccount(store, out, portalAddress(config.publicUrl ?? url), tokenFile);
    } catch (err) {
      throw new StartupError('first start', `cannot write the first API token to ${tokenFile}: ${reasonOf(err)}`, {
        cause: err,
      });
    }
  }
  if (url) log.info({ url, dispatcher: Boolean(dispatcher) }, 'countersign is listening');
  if (opsUrl) log.info({ url: opsUrl }, 'operations endpoint listening');
  if (!options.api) log.info({ dispatcher: Boolean(dispatcher) }, 'countersign worker started');

  const heartbeat = keepAlive(store, node, secrets, check, log, options.onFatal);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      clearInterval(heartbeat);
      await retention?.stop();
      await app?.close();
      await ops?.close();
      await dispatcher?.stop();
      await store.removeNode(node.id).catch((err) => log.warn({ err }, 'could not deregister this process'));
      await store.close();
      log.info('stopped');
    })();
    return stopping;
  };
  return { app, dispatcher, store, url, opsUrl, stop };
}

/** listen(), with the reasons a port cannot be had in plain words. */
async function listen(app: FastifyInstance, host: string, port: number, step: StartupStep): Promise<string> {
  try {
    return await app.listen({ port, host });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    const flag = step === 'port' ? '--port / PORT' : '--metrics-port / COUNTERSIGN_METRICS_PORT';
    const why =
      code === 'EADDRINUSE'
        ? `the port is already in use (is countersign already running? stop it, or choose another port with ${flag})`
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : code === 'EADDRNOTAVAIL'
            ? `${host} is not an address of this machine (--host / HOST)`
            : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
              ? `the host name ${host} does not resolve (--host / HOST)`
              : reasonOf(err);
    throw new StartupError(step, `cannot listen on ${where}: ${why}`, { cause: err });
  }
}

/**
 * The heartbeat: keeps this process's registration fresh (re-registering if it was removed), and
 * checks that the master key still opens the database. If a rotation re-sealed everything under
 * another key while this process ran, every send it makes would fail: it says so and stops.
 */
function keepAlive(
  store: Store,
  node: NodeRecord,
  secrets: SecretBox,
  check: string,
  log: Logger,
  onFatal: ((err: Error) => void) | undefined,
): NodeJS.Timeout {
  let verified = check;
  const timer = setInterval(() => {
    void (async () => {
      const now = Date.now();
      if (!(await store.heartbeatNode(node.id, now))) await store.registerNode({ ...node, heartbeatAt: now });
      const current = await store.getSetting(MASTER_KEY_CHECK);
      if (current === undefined || current === verified) return;
      try {
        verified = await verifyMasterKey(store, secrets, 'this process');
      } catch (err) {
        clearInterval(timer);
        const fatal = new StartupError(
          'master key',
          `the master key was changed while this process ran (${(err as Error).message}); restart it with the new key`,
        );
        log.fatal({ err }, fatal.message);
        onFatal?.(fatal);
      }
    })().catch((err: unknown) => log.warn({ err }, 'heartbeat failed; retrying'));
  }, HEARTBEAT_MS);
  timer.unref();
  return timer;
}

function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

/** Where a person opens the portal: the listening address, with a wildcard host read as localhost. */
export function portalAddress(base: string): string {
  const address = new URL(base);
  if (address.hostname === '0.0.0.0' || address.hostname === '[::]') address.hostname = 'localhost';
  return new URL('/ui/', address).toString();
}

/** Where the first API token goes when standard output is not a terminal: beside the master key file. */
export const FIRST_TOKEN_FILE = 'first-start-token';

/**
 * On first start with an empty database, make an account and a token, and give the token once: on
 * a terminal, printed; otherwise (a service manager, a container, anything collecting the output
 * into logs) written to `tokenFile`, readable by this user only, and only its path printed. The
 * file is written before the token exists, so a start that cannot write it leaves no token
 * nobody was given.
 */
async function bootstrapFirstAccount(
  store: Store,
  out: NodeJS.WritableStream & { isTTY?: boolean },
  portal: string,
  tokenFile: string,
): Promise<void> {
  if ((await store.countAccounts()) > 0) return;
  const now = Date.now();
  const issued = issueToken();
  const onTerminal = out.isTTY === true;
  if (!onTerminal) writePrivately(tokenFile, `${issued.token}\n`);
  const account = await store.ensureAccount('default', now);
  await store.createToken({
    accountId: account.id,
    lookup: issued.lookup,
    hash: issued.hash,
    scopes: ALL_SCOPES,
    expiresAt: null,
    now,
  });
  const given = onTerminal
    ? `It is shown only this once:\n\n  ${issued.token}\n\n`
    : `Standard output is not a terminal, so it is not printed: it is in ${tokenFile} (readable by this user only).\n` +
      'Keep it somewhere safe, then delete that file.\n\n';
  out.write(
    `\nFirst start: created account "default" and an API token. ${given}` +
      `Sign in with it at ${portal}, or use it as "Authorization: Bearer <token>".\n` +
      'Make more with: npx countersign token create --account NAME --create-account\n\n',
  );
}

/** Writes a new file readable by its owner only (one left by an earlier first start is replaced). */
function writePrivately(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  rmSync(file, { force: true });
  writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
}
