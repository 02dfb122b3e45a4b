// The access log: one line per request, written when the answer has gone out, with the method, the
// route (its pattern, so ids and query strings never reach the log), the status, the time taken and
// the account and token ids. Nothing in it can hold a secret, so it is written without the
// redaction pass (logger.ts, unredactedLogger). The operations routes (/healthz, /readyz, /metrics), which probes and scrapers call
// every few seconds, and the portal's files (/ui), log at debug; the API calls the portal makes
// are API requests like any other and log at info. COUNTERSIGN_ACCESS_LOG=off turns it off; `npm run bench`
// reports what it costs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';

const OPS_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

export function registerAccessLog(app: FastifyInstance, log: Logger): void {
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = request.routeOptions.url;
    const ms = Math.round(reply.elapsedTime * 10) / 10;
    const status = reply.statusCode;
    const principal = request.principal;
    if (route === undefined) {
      // Unmatched paths are logged by their path alone, cut short: they are whatever a client sent.
      const path = (request.url.split('?')[0] ?? '').slice(0, 200);
      log.info(
        { reqId: request.id, method: request.method, path, status, ms },
        `${request.method} ${path} ${status} ${ms} ms`,
      );
    } else {
      const line = `${request.method} ${route} ${status} ${ms} ms`;
      // One object literal of one shape per line: pino serialises it in a single pass.
      const fields = {
        reqId: request.id,
        method: request.method,
        route,
        status,
        ms,
        account: principal?.accountId,
        token_id: principal?.tokenId,
      };
      if (OPS_ROUTES.has(route) || route === '/' || route.startsWith('/ui')) log.debug(fields, line);
      else log.info(fields, line);
    }
    done();
  });
}
