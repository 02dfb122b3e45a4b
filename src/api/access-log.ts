// The access log: one line per request, written when the answer has gone out, with the method, the
// route (its pattern, so ids and query strings never reach the log), the status, the time taken and
// the account. The operations routes (/healthz, /readyz, /metrics), which probes and scrapers call
// every few seconds, log at debug. COUNTERSIGN_ACCESS_LOG=off turns it off; `npm run bench`
// reports what it costs.
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

const OPS_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

export function registerAccessLog(app: FastifyInstance, log: FastifyBaseLogger): void {
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = request.routeOptions.url;
    const ms = Math.round(reply.elapsedTime * 10) / 10;
    const status = reply.statusCode;
    // Unmatched paths are logged by their path alone, cut short: they are whatever a client sent.
    const shown = route ?? request.url.split('?')[0]?.slice(0, 200) ?? '';
    const fields = {
      reqId: request.id,
      method: request.method,
      ...(route === undefined ? { path: shown } : { route }),
      status,
      ms,
      ...(request.principal ? { account: request.principal.accountId, token: request.principal.tokenId } : {}),
    };
    const line = `${request.method} ${shown} ${status} ${ms} ms`;
    if (route !== undefined && OPS_ROUTES.has(route)) log.debug(fields, line);
    else log.info(fields, line);
    done();
  });
}
