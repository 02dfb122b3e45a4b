// The process lifecycle of `countersign serve` and `countersign worker`: open the store (running
// migrations), start the dispatcher and/or the HTTP API, and shut down gracefully on SIGTERM/SIGINT:
// stop accepting, finish in-flight sends up to the grace period, hand back unfinished claims.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ALL_SCOPES } from './api/auth.js';
import { buildOpsApp } from './api/ops.js';
import { buildApp } from './app.js';
import type { Config } from './config.js';
import { Dispatcher } from './delivery/dispatcher.js';
import { SecretBox } from './domain/secret-box.js';
import { issueToken } from './domain/tokens.js';
import { loadMasterKey } from './master-key.js';
import { Metrics } from './metrics.js';
import { openStore } from './store/kysely-store.js';
import { describeLocation, openDialect } from './store/open.js';
import type { Store } from './store/store.js';

export interface Running {
  app: FastifyInstance | undefined;
  dispatcher: Dispatcher | undefined;
  store: Store;
  url: string | undefined;
  /** A worker's operations endpoint (/healthz, /readyz, /metrics), when it has one. */
  opsUrl: string | undefined;
  stop(): Promise<void>;
}

export async function openConfiguredStore(
  config: Config,
  log?: Logger,
): Promise<{ store: Store; secrets: SecretBox; keyCreated: boolean }> {
  const master = loadMasterKey(config.masterKey, config.masterKeyFile);
  const warn = log ? (err: Error, message: string) => log.warn({ err }, message) : undefined;
  const store = await openStore(openDialect(config.database, warn ? { warn } : {}));
  return { store, secrets: new SecretBox(master.key), keyCreated: master.origin === 'created' };
}

export async function start(
  config: Config,
  log: Logger,
  options: { api: boolean; out?: NodeJS.WritableStream },
): Promise<Running> {
  const { store, secrets, keyCreated } = await openConfiguredStore(config, log);
  log.info({ database: describeLocation(config.database) }, 'store ready');
  if (keyCreated)
    log.warn({ file: config.masterKeyFile }, 'created a new master key file; back it up, secrets at rest need it');

  if (options.api) await bootstrapFirstAccount(store, options.out ?? process.stdout);

  // One SSRF policy for registration and for every send.
  const targetPolicy = { allowInsecure: config.allowInsecureTargets, allowedCidrs: config.allowedTargetCidrs };
  const metrics = new Metrics();
  const dispatcher = config.dispatcher.enabled
    ? new Dispatcher(store, secrets, config.dispatcher, log, { targetPolicy, metrics })
    : undefined;
  dispatcher?.start();

  let app: FastifyInstance | undefined;
  let url: string | undefined;
  if (options.api) {
    app = await buildApp({
      store,
      secrets,
      targetPolicy,
      logger: log,
      rateLimit: config.rateLimit,
      metrics,
      dispatcher,
    });
    url = await app.listen({ port: config.port, host: config.host });
    log.info({ url, dispatcher: Boolean(dispatcher) }, 'countersign is listening');
  }
  let ops: FastifyInstance | undefined;
  let opsUrl: string | undefined;
  if (!options.api && config.metricsPort !== undefined) {
    ops = await buildOpsApp({ store, metrics, logger: log });
    opsUrl = await ops.listen({ port: config.metricsPort, host: config.host });
    log.info({ url: opsUrl }, 'operations endpoint listening');
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('shutting down');
      await app?.close();
      await ops?.close();
      await dispatcher?.stop();
      await store.close();
      log.info('stopped');
    })();
    return stopping;
  };
  return { app, dispatcher, store, url, opsUrl, stop };
}

/** On first start with an empty database, make an account and print a token once. */
async function bootstrapFirstAccount(store: Store, out: NodeJS.WritableStream): Promise<void> {
  if ((await store.countAccounts()) > 0) return;
  const now = Date.now();
  const account = await store.ensureAccount('default', now);
  const issued = issueToken();
  await store.createToken({
    accountId: account.id,
    lookup: issued.lookup,
    hash: issued.hash,
    scopes: ALL_SCOPES,
    expiresAt: null,
    now,
  });
  out.write(
    `\nFirst start: created account "default" and an API token. It is shown only this once:\n\n  ${issued.token}\n\n` +
      'Use it as "Authorization: Bearer <token>". Make more with: npx countersign token create --account NAME\n\n',
  );
}
