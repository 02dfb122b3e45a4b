// An in-process countersign on a fresh database: the real store, the real Fastify app (driven with
// inject() or over loopback), and optionally the real dispatcher with a short retry schedule.
import { randomBytes } from 'node:crypto';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Scope } from '../../src/api/auth.js';
import { buildApp } from '../../src/app.js';
import { type DispatcherConfig, loadConfig } from '../../src/config.js';
import { Dispatcher } from '../../src/delivery/dispatcher.js';
import type { Resolver } from '../../src/delivery/guarded-lookup.js';
import type { ListenSettings } from '../../src/delivery/listen-hub.js';
import { SecretBox } from '../../src/domain/secret-box.js';
import type { Metrics } from '../../src/metrics.js';
import { openStore } from '../../src/store/kysely-store.js';
import { openDialect, parseDatabaseUrl } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import type { DialectUnderTest, TestDatabase } from './databases.js';
import { addToken } from './tokens.js';

export interface TestService {
  app: FastifyInstance;
  store: Store;
  secrets: SecretBox;
  database: TestDatabase;
  dispatcher: Dispatcher | undefined;
  /** An admin token for the account "acme". */
  token: string;
  accountId: string;
  /** inject() with the account's token (or `token: null` for none). */
  request(options: InjectOptions & { token?: string | null }): Promise<LightMyRequestResponse>;
  /** A token for another account, created on demand. */
  tokenFor(
    account: string,
    options?: { scopes?: Scope[]; expiresAt?: number | null },
  ): Promise<{ token: string; id: string; accountId: string }>;
  close(): Promise<void>;
}

export interface TestServiceOptions {
  dispatcher?: boolean | Partial<DispatcherConfig>;
  allowInsecureTargets?: boolean;
  /** COUNTERSIGN_ALLOWED_TARGET_CIDRS, canonical (as loadConfig gives them). */
  allowedTargetCidrs?: string[];
  /** COUNTERSIGN_ALLOWED_TARGET_PORTS, parsed (80, 443 and 1024-65535 by default). */
  allowedTargetPorts?: [number, number][];
  /** DNS for registration and sends; default `offlineResolver`, so no test ever asks a real DNS server. */
  resolve?: Resolver;
  /** Extra CA certificates the dispatcher trusts (https receivers with a test certificate). */
  trustedCa?: string[];
  rateLimit?: { max: number; windowMs: number };
  /** COUNTERSIGN_MAX_SUBSCRIPTIONS and the other quotas (DEFAULT_QUOTAS by default). */
  quotas?: { subscriptions?: number; deliveriesPerBatch?: number; portalSessions?: number };
  /** COUNTERSIGN_ERASURE_RATE_LIMIT (10 a minute by default). */
  erasureRateLimit?: { max: number; windowMs: number };
  /** COUNTERSIGN_INBOUND_TIMEOUT (60 s by default). */
  inboundTimeoutMs?: number;
  metrics?: Metrics;
  /** Where the service logs (silent by default); with it the access log is on, as in `serve`. */
  logger?: Logger;
  /** The master key's box (a random key by default). */
  secrets?: SecretBox;
  /** COUNTERSIGN_PUBLIC_URL, the base of portal session links. */
  publicUrl?: string;
  /** COUNTERSIGN_PUBLIC_HOSTS: hosts whose requests get links naming them. */
  publicHosts?: string[];
  /** COUNTERSIGN_AUDIT_LINK_TTL (off by default). */
  auditLinkTtlMs?: number;
  /** The listen hub's timings (answer timeout, pings, silence), shortened by the listen tests. */
  listen?: Partial<ListenSettings>;
  /**
   * COUNTERSIGN_ERASURE_REBUILD_INTERVAL (1 minute by default). Here 1 ms unless given, so that
   * erasures one after another each rebuild the file, as the tests that read it expect.
   */
  fileRebuildEveryMs?: number;
}

/** Answers `localhost` with 127.0.0.1 and every other name with ENOTFOUND, without touching the network. */
export const offlineResolver: Resolver = async (hostname) => {
  if (hostname === 'localhost') return [{ address: '127.0.0.1', family: 4 }];
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
};

export async function startTestService(
  dialect: DialectUnderTest,
  options: TestServiceOptions = {},
): Promise<TestService> {
  const database = await dialect.create();
  const store = await openStore(openDialect(parseDatabaseUrl(database.url)), {
    fileRebuildEveryMs: options.fileRebuildEveryMs ?? 1,
  });
  const secrets = options.secrets ?? new SecretBox(randomBytes(32));
  const logger = options.logger ?? pino({ level: 'silent' });
  const targetPolicy = {
    allowInsecure: options.allowInsecureTargets ?? true,
    allowedCidrs: options.allowedTargetCidrs ?? [],
    ...(options.allowedTargetPorts ? { allowedPorts: options.allowedTargetPorts } : {}),
  };
  const resolve = options.resolve ?? offlineResolver;
  let dispatcher: Dispatcher | undefined;
  if (options.dispatcher) {
    const defaults = loadConfig({}, {}).dispatcher;
    dispatcher = new Dispatcher(
      store,
      secrets,
      {
        ...defaults,
        // Short retries, a quick poll; but timeouts, the lease and the shutdown grace as long as a
        // loaded machine needs, so no test's outcome turns on how fast loopback answers. A test
        // about timeouts or leases sets its own, and holds the request open (receiver.ts `until`).
        retrySchedule: [0, 200, 400],
        connectTimeoutMs: 10_000,
        requestTimeoutMs: 10_000,
        pollIntervalMs: 200,
        leaseMs: 30_000,
        shutdownGraceMs: 10_000,
        ...(typeof options.dispatcher === 'object' ? options.dispatcher : {}),
      },
      logger,
      { targetPolicy, resolve, trustedCa: options.trustedCa, metrics: options.metrics },
    );
  }

  const app = await buildApp({
    store,
    secrets,
    targetPolicy,
    resolve,
    logger,
    accessLog: options.logger !== undefined,
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    ...(options.inboundTimeoutMs ? { inboundTimeoutMs: options.inboundTimeoutMs } : {}),
    ...(options.erasureRateLimit ? { erasureRateLimit: options.erasureRateLimit } : {}),
    ...(options.quotas ? { quotas: options.quotas } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(dispatcher ? { dispatcher } : {}),
    ...(options.publicUrl ? { publicUrl: options.publicUrl } : {}),
    ...(options.publicHosts ? { publicHosts: options.publicHosts } : {}),
    ...(options.auditLinkTtlMs ? { auditLinkTtlMs: options.auditLinkTtlMs } : {}),
    ...(options.listen ? { listen: options.listen } : {}),
  });
  await app.ready();
  await dispatcher?.start();

  const tokenFor = async (account: string, opts: { scopes?: Scope[]; expiresAt?: number | null } = {}) => {
    const acc = await store.ensureAccount(account, Date.now());
    return { ...(await addToken(store, acc.id, opts)), accountId: acc.id };
  };
  const main = await tokenFor('acme');

  return {
    app,
    store,
    secrets,
    database,
    dispatcher,
    token: main.token,
    accountId: main.accountId,
    request(opts) {
      const { token, ...inject } = opts;
      const bearer = token === undefined ? main.token : token;
      return app.inject({
        ...inject,
        headers: { ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }), ...inject.headers },
      });
    },
    tokenFor,
    async close() {
      await dispatcher?.stop();
      await app.close();
      await store.close();
      await database.drop();
    },
  };
}
