// Operations routes, without authentication: /healthz (the process answers), /readyz (its database
// answers) and /metrics (Prometheus). `serve` has them beside the API; `worker` serves only these,
// on its own port, when one is configured (opsApp).
import { Type } from '@sinclair/typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Metrics } from '../metrics.js';
import type { Store } from '../store/store.js';
import { registerErrorHandling } from './error-handler.js';
import { ErrorResponse } from './schemas.js';

export interface OpsOptions {
  store: Store;
  metrics?: Metrics;
}

export function registerOpsRoutes(app: FastifyInstance, options: OpsOptions): void {
  const metrics = options.metrics;
  if (metrics) {
    app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
      reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  }
  app.get(
    '/healthz',
    { schema: { tags: ['health'], security: [], response: { 200: Type.Object({ status: Type.String() }) } } },
    async () => ({ status: 'ok' }),
  );
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        security: [],
        response: { 200: Type.Object({ status: Type.String() }), 503: Type.Ref('ErrorResponse') },
      },
    },
    async (_request, reply) => {
      try {
        await options.store.ping();
        return { status: 'ready' };
      } catch {
        return reply.code(503).send({ error: { code: 'unavailable', message: 'the database does not answer' } });
      }
    },
  );
}

/** The operations routes alone, for `countersign worker` (which has no API). */
export async function buildOpsApp(options: OpsOptions & { logger?: FastifyBaseLogger }): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  }) as unknown as FastifyInstance;
  registerErrorHandling(app);
  app.addSchema(ErrorResponse);
  registerOpsRoutes(app, options);
  return app;
}
