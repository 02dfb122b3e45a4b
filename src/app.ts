// buildApp(): the Fastify instance with every plugin and route, without listen(), so tests use
// inject() or listen on an ephemeral port themselves. server.ts owns the process lifecycle.

import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import { registerAccessLog } from './api/access-log.js';
import { authenticate } from './api/auth.js';
import { callbackRoutes } from './api/callbacks.js';
import { circuitRoutes } from './api/circuit.js';
import { type AccountQuotas, type AppContext, DEFAULT_QUOTAS } from './api/context.js';
import { deliveryRoutes } from './api/deliveries.js';
import { auditChainKey, auditLinkKey, auditLinkRoutes, documentRoutes } from './api/documents.js';
import { erasureRoutes } from './api/erasure.js';
import { registerErrorHandling } from './api/error-handler.js';
import { eventRoutes } from './api/events.js';
import { type RateLimitSettings, registerLimits } from './api/limits.js';
import type { LinkSettings } from './api/link-base.js';
import { listenRoutes } from './api/listen.js';
import { meRoutes } from './api/me.js';
import { documentCommonAnswers, webhooksDocument } from './api/openapi-doc.js';
import { registerOpsRoutes } from './api/ops.js';
import { DEFAULT_FRAME_ANCESTORS, type PortalOptions, registerPortal } from './api/portal-assets.js';
import { portalSessionRoutes } from './api/portal-sessions.js';
import { recoveryRoutes } from './api/recovery.js';
import { registerRequestGuards } from './api/request-guards.js';
import { rotationRoutes } from './api/rotation.js';
import { BODY_LIMIT, ErrorResponse } from './api/schemas.js';
import { statsRoutes } from './api/stats.js';
import { subscriptionRoutes } from './api/subscriptions.js';
import type { Dispatcher } from './delivery/dispatcher.js';
import { type Resolver, systemResolver } from './delivery/guarded-lookup.js';
import { DEFAULT_LISTEN_SETTINGS, ListenHub, type ListenSettings } from './delivery/listen-hub.js';
import { FixedWindowLimiter } from './domain/rate-limit.js';
import type { SecretBox } from './domain/secret-box.js';
import type { TargetPolicy } from './domain/target-url.js';
import { unredactedLogger } from './logger.js';
import type { Metrics } from './metrics.js';
import { GroupCommit } from './store/group-commit.js';
import type { ClaimedDelivery, PublishRequest, PublishResult, Store } from './store/store.js';
import { VERSION } from './version.js';

export interface AppOptions {
  store: Store;
  secrets: SecretBox;
  targetPolicy: TargetPolicy;
  /** How target host names are resolved at registration; the system resolver by default. */
  resolve?: Resolver;
  logger?: FastifyBaseLogger | false;
  /** One log line per request (COUNTERSIGN_ACCESS_LOG); on by default when there is a logger. */
  accessLog?: boolean;
  /** Served at GET /metrics when given. */
  metrics?: Metrics;
  /** Per-token API rate limit; defaults to DEFAULT_RATE_LIMIT. */
  rateLimit?: RateLimitSettings;
  /**
   * How long a client may take to send a whole request, and a connection may stay silent (Node's
   * requestTimeout and the socket timeout). Default DEFAULT_INBOUND_TIMEOUT_MS.
   */
  inboundTimeoutMs?: number;
  /** What one account may hold (DEFAULT_QUOTAS). */
  quotas?: Partial<AccountQuotas>;
  /** Erasures per account per window (DEFAULT_ERASURE_RATE_LIMIT); max 0 turns the limit off. */
  erasureRateLimit?: RateLimitSettings;
  /** The dispatcher of this process, if any: publishes hand it their new deliveries directly. */
  dispatcher?: Pick<Dispatcher, 'reserveForPublish' | 'acceptPublished'>;
  /** COUNTERSIGN_PUBLIC_URL: where the links handed out start (api/link-base.ts). */
  publicUrl?: string;
  /** COUNTERSIGN_AUDIT_LINK_TTL: audit links expire this long after they are given out; undefined: never. */
  auditLinkTtlMs?: number;
  /** COUNTERSIGN_PUBLIC_HOSTS: hosts a request may name to have its links start there. */
  publicHosts?: readonly string[];
  /** The origin this server listens on, once it does: links start there when nothing else is set. */
  listenOrigin?: () => string | undefined;
  /** The browser portal at /ui (dist/ui, framed by this origin only, by default); false for none. */
  portal?: PortalOptions | false;
  /** How listen sessions are delivered to (the dispatcher's retry schedule and lease, in serve). */
  listen?: Partial<ListenSettings>;
}

export const DEFAULT_RATE_LIMIT: RateLimitSettings = { max: 100_000, windowMs: 10_000 };
export const DEFAULT_INBOUND_TIMEOUT_MS = 60_000;

/** The Content-Security-Policy of the interactive docs at /docs. */
export const DOCS_CSP =
  "default-src 'self'; base-uri 'self'; connect-src 'self'; font-src 'self' data:; form-action 'self'; " +
  "frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self'; " +
  "script-src-attr 'none'; style-src 'self' 'unsafe-inline'";
export const DEFAULT_ERASURE_RATE_LIMIT: RateLimitSettings = { max: 10, windowMs: 60_000 };

export { BODY_LIMIT };

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const inboundTimeoutMs = options.inboundTimeoutMs ?? DEFAULT_INBOUND_TIMEOUT_MS;
  const app = Fastify({
    loggerInstance: options.logger || undefined,
    logger: options.logger ? undefined : false,
    bodyLimit: BODY_LIMIT,
    // Fastify's own request logging writes two lines per request (in and out) through a child
    // logger; registerAccessLog writes one, with what an operator needs.
    logController: new LogController({ disableRequestLogging: true }),
    // Nor a child logger per request (about 2 % of a publish): request.log is the service logger,
    // and the few lines logged per request name their reqId themselves.
    childLoggerFactory: (logger) => logger,
    return503OnClosing: true,
    // A client that trickles its request (or holds a silent connection) is cut off, not kept
    // forever. Listen streams write a ping every 10 s, so they are never silent that long.
    requestTimeout: inboundTimeoutMs,
    connectionTimeout: inboundTimeoutMs,
    // Given to Node's server as it is made too: Node 20 reads a requestTimeout set on the server
    // afterwards (which is how Fastify sets it) for nothing. Node looks for requests past their time
    // every connectionsCheckingInterval (30 s by its default).
    http: { requestTimeout: inboundTimeoutMs, connectionsCheckingInterval: Math.min(5_000, inboundTimeoutMs) },
    ajv: { customOptions: {} },
  }) as unknown as FastifyInstance;

  // Bodies are validated strictly (no type coercion, unknown fields refused); query strings and
  // params are coerced, since they arrive as text.
  const bodyAjv = addFormats.default(
    new Ajv({ allErrors: false, coerceTypes: false, removeAdditional: false, useDefaults: true, strict: false }),
  );
  const textAjv = addFormats.default(
    new Ajv({ allErrors: false, coerceTypes: 'array', removeAdditional: false, useDefaults: true, strict: false }),
  );
  app.setValidatorCompiler(
    ({ schema, httpPart }) =>
      (httpPart === 'body' ? bodyAjv : textAjv).compile(schema as object) as ReturnType<typeof bodyAjv.compile>,
  );

  /** One transaction of publishes, with up to the dispatcher's room handed to it directly. */
  const quotas: AccountQuotas = { ...DEFAULT_QUOTAS, ...options.quotas };
  const publish = async (items: PublishRequest[], allOrNothing: boolean): Promise<PublishResult[]> => {
    const dispatcher = options.dispatcher;
    const claim = dispatcher?.reserveForPublish();
    const now = Date.now();
    let claimed: ClaimedDelivery[] = [];
    try {
      const outcome = await options.store.publishAndClaim(
        items,
        now,
        claim,
        allOrNothing ? { allOrNothing, maxDeliveries: quotas.deliveriesPerBatch } : {},
      );
      claimed = outcome.claimed;
      options.metrics?.eventsPublished(outcome.results.filter((r) => r.ok && !r.replayed).length);
      return outcome.results;
    } finally {
      if (claim) dispatcher?.acceptPublished(claim, claimed, now);
    }
  };
  const erasures = options.erasureRateLimit ?? DEFAULT_ERASURE_RATE_LIMIT;
  const ctx: AppContext = {
    quotas,
    erasureLimiter: erasures.max > 0 ? new FixedWindowLimiter(erasures.max, erasures.windowMs) : undefined,
    store: options.store,
    secrets: options.secrets,
    targetPolicy: options.targetPolicy,
    resolve: options.resolve ?? systemResolver,
    publisher: new GroupCommit<PublishRequest, PublishResult>((items) => publish(items, false), 500),
    publishBatch: (items) => publish(items, true),
  };

  const hub = new ListenHub(options.store, options.secrets, { ...DEFAULT_LISTEN_SETTINGS, ...options.listen }, app.log);
  hub.start();

  registerErrorHandling(app);
  registerRequestGuards(app);
  if (options.logger && options.accessLog !== false) {
    registerAccessLog(app, unredactedLogger(options.logger as unknown as Logger));
  }
  // Every body is JSON: without this, Fastify's built-in text/plain parser would hand a string to
  // validation and a client sending JSON as text/plain would get a puzzling 400 instead of a 415.
  app.removeContentTypeParser('text/plain');
  app.addSchema(ErrorResponse);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'countersign',
        version: VERSION,
        description: 'Webhook delivery for e-signature lifecycle events.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      webhooks: webhooksDocument(),
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  // The interactive docs run only their own scripts: Swagger UI's page has no inline script (its
  // csp.json lists no hashes), and the spec validator's badge, which calls out, is off. Its bundle
  // sets an inline style as it draws, which Chromium refuses under style-src 'self' (the browser
  // test sees it), so styles, and styles alone, may be inline.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: true, validatorUrl: null },
    staticCSP: DOCS_CSP,
  });
  documentCommonAnswers(app);

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  registerOpsRoutes(app, options);
  if (options.portal !== false) {
    await registerPortal(app, options.portal ?? { frameAncestors: DEFAULT_FRAME_ANCESTORS });
    // A person who opens the bare address gets the portal rather than a 404.
    app.get('/', { schema: { hide: true } }, (_request, reply) => reply.redirect('/ui/', 302));
  }

  // Audit links carry their own credential (a signature), so they sit outside the token check.
  const links: LinkSettings = {
    publicUrl: options.publicUrl,
    publicHosts: options.publicHosts,
    listenOrigin: options.listenOrigin,
  };
  const auditLinks = {
    key: await auditLinkKey(options.store, options.secrets),
    links,
    chain: await auditChainKey(options.store, options.secrets),
    ttlMs: options.auditLinkTtlMs,
  };
  await app.register(auditLinkRoutes(ctx, auditLinks));

  await app.register(async (api) => {
    api.addHook('onRequest', authenticate(options.store));
    registerLimits(api, options.rateLimit ?? DEFAULT_RATE_LIMIT);
    await api.register(callbackRoutes(ctx));
    await api.register(subscriptionRoutes(ctx));
    await api.register(circuitRoutes(ctx));
    await api.register(eventRoutes(ctx));
    await api.register(deliveryRoutes(ctx));
    await api.register(recoveryRoutes(ctx));
    await api.register(rotationRoutes(ctx));
    await api.register(meRoutes());
    await api.register(portalSessionRoutes(ctx, links));
    await api.register(statsRoutes(ctx));
    await api.register(listenRoutes(ctx, hub, links));
    await api.register(erasureRoutes(ctx));
    await api.register(documentRoutes(ctx, auditLinks));
  });

  app.addHook('onClose', async () => {
    await ctx.publisher.drain();
  });
  return app;
}
