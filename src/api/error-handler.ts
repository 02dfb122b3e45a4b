// The one place errors become HTTP answers: `{"error":{"code","message","details"?}}` with a code
// from the catalogue. Validation errors name the offending field; a path asked with a method it
// does not have is a 405 with Allow, a path no route has a 404. Nothing a client sends produces a
// 5xx; a 5xx here is a bug, logged with its stack and answered without internals.
import type { IncomingMessage } from 'node:http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CountersignError, ERROR_CATALOGUE, type ErrorCode, type ErrorDetail } from '../errors.js';
import { BODY_LIMIT, describeBodyLimit } from './schemas.js';

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

export function errorBody(code: ErrorCode, message: string, details?: ErrorDetail[]) {
  return { error: details ? { code, message, details } : { code, message } };
}

export function sendError(reply: FastifyReply, err: CountersignError): FastifyReply {
  // Refused before its body was read (a 401, a 413, a 415): the connection is closed after the
  // answer rather than kept to drain a body that may trickle in for as long as the client likes.
  if (bodyLeftUnread(reply.request.raw)) reply.header('connection', 'close');
  return reply
    .code(err.statusCode)
    .type('application/json')
    .send(errorBody(err.code, err.message, err.details));
}

function bodyLeftUnread(raw: IncomingMessage): boolean {
  if (raw.complete) return false;
  const length = raw.headers['content-length'];
  return (length !== undefined && length !== '0') || raw.headers['transfer-encoding'] !== undefined;
}

export function registerErrorHandling(app: FastifyInstance): void {
  // Registered before any route, so every route (HEAD twins of GET routes included) is seen.
  const routes = new RouteMethods();
  app.addHook('onRoute', (route) => routes.add(route.url, route.method));

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = routes.allowedOn(path);
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      const allow = allowed.join(', ');
      reply.header('allow', allow);
      return sendError(
        reply,
        new CountersignError('method_not_allowed', `${request.method} is not allowed on ${path}; it answers ${allow}`),
      );
    }
    return sendError(reply, new CountersignError('route_not_found', `no route for ${request.method} ${path}`));
  });

  app.setErrorHandler((err: FastifyError & { validation?: AjvError[]; validationContext?: string }, request, reply) => {
    if (err instanceof CountersignError) return sendError(reply, err);
    if (err.validation) return sendError(reply, fromValidation(err.validation, err.validationContext));
    const mapped = fromFastify(err, request.routeOptions.bodyLimit ?? BODY_LIMIT);
    if (mapped) return sendError(reply, mapped);
    if (databaseUnavailable(err)) {
      // Nothing was accepted: the transaction did not commit. The client may simply retry.
      request.log.warn({ reqId: request.id, err }, 'database unavailable');
      reply.header('retry-after', '1');
      return sendError(reply, new CountersignError('unavailable', 'the database is unavailable; retry shortly'));
    }
    request.log.error({ reqId: request.id, err }, 'unhandled error');
    return sendError(reply, new CountersignError('internal_error', 'internal error'));
  });
}

function fromValidation(errors: AjvError[], context: string | undefined): CountersignError {
  const details = errors.map((e) => describeAjvError(e, context));
  const first = details[0] ?? { message: 'invalid request' };
  const message = first.field ? `${first.field}: ${first.message}` : first.message;
  return new CountersignError('validation_failed', message, details);
}

function describeAjvError(e: AjvError, context: string | undefined): ErrorDetail {
  // `events[17].data.signer_email`: array indexes in brackets, as a person writes the path.
  const path = e.instancePath
    .split('/')
    .filter(Boolean)
    .reduce((at, part) => (/^\d+$/.test(part) ? `${at}[${part}]` : at ? `${at}.${part}` : part), '');
  const join = (name: string) => (path ? `${path}.${name}` : name);
  switch (e.keyword) {
    case 'required':
      return { field: join(String(e.params.missingProperty)), message: 'is required' };
    case 'additionalProperties':
      return {
        field: join(String(e.params.additionalProperty)),
        message: context === 'querystring' ? 'is not a known query parameter' : 'is not a known field',
      };
    case 'enum':
      return {
        field: path || (context ?? 'body'),
        message: `must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`,
      };
    default:
      return { field: path || (context ?? 'body'), message: e.message ?? 'is invalid' };
  }
}

const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * The methods each route path answers, for a 405's Allow header. Only requests no route took
 * consult it, so it is a plain list of patterns, each compiled once, rather than a second router.
 */
class RouteMethods {
  private readonly byUrl = new Map<string, { pattern: RegExp | undefined; methods: Set<string> }>();

  add(url: string, method: string | string[]): void {
    let entry = this.byUrl.get(url);
    if (!entry) {
      entry = { pattern: /[:*]/.test(url) ? patternOf(url) : undefined, methods: new Set() };
      this.byUrl.set(url, entry);
    }
    for (const m of Array.isArray(method) ? method : [method]) entry.methods.add(m.toUpperCase());
  }

  /** Every method some route on `path` answers, in a stable order; empty when none does. */
  allowedOn(rawPath: string): string[] {
    const path = safeDecode(rawPath);
    const methods = new Set<string>();
    for (const [url, entry] of this.byUrl) {
      if (entry.pattern ? entry.pattern.test(path) : url === path) for (const m of entry.methods) methods.add(m);
    }
    return [...methods].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  }
}

function rank(method: string): number {
  const at = METHOD_ORDER.indexOf(method);
  return at === -1 ? METHOD_ORDER.length : at;
}

/**
 * A route URL as a regular expression: a parameter (`:id`, up to the next "/") matches one
 * non-empty segment and `*` the rest of the path. A parameter's own regex, if a route ever has one,
 * is not applied: the pattern then matches more paths than the router, which only turns a 404
 * into a 405 for a path that looks like the route's.
 */
function patternOf(url: string): RegExp {
  let source = '';
  for (const part of url.split(/(:[^/]*|\*)/)) {
    if (part === '*') source += '.*';
    else if (part.startsWith(':')) source += '[^/]+';
    else source += part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/** The router matches decoded paths; a malformed escape is matched as written. */
function safeDecode(path: string): string {
  try {
    return decodeURI(path);
  } catch {
    return path;
  }
}

const UNAVAILABLE_CODES = new Set([
  // SQLite: another process held the write lock past busy_timeout.
  'SQLITE_BUSY',
  'SQLITE_BUSY_SNAPSHOT',
  'SQLITE_LOCKED',
  // PostgreSQL: server unreachable, shutting down, or the connection dropped.
  'ECONNREFUSED',
  'ECONNRESET',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
]);

/** Whether an error means "the database cannot answer now" rather than a bug of ours. */
function databaseUnavailable(err: { code?: unknown; message?: string }): boolean {
  if (typeof err.code === 'string' && UNAVAILABLE_CODES.has(err.code)) return true;
  return /Connection terminated|timeout exceeded when trying to connect/i.test(err.message ?? '');
}

/** Fastify's own 4xx errors (bad JSON, size, media type) in our shape. */
function fromFastify(err: FastifyError, bodyLimit: number): CountersignError | undefined {
  const status = err.statusCode ?? 500;
  const tooLarge = () =>
    new CountersignError('payload_too_large', `request body is larger than ${describeBodyLimit(bodyLimit)}`);
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CountersignError('unsupported_media_type', 'send the body as application/json');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new CountersignError('validation_failed', 'the request body does not match its Content-Length');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new CountersignError('malformed_json', 'the request body is empty; send a JSON object');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new CountersignError('malformed_json', 'the request body is not valid JSON');
    default:
      break;
  }
  if (err instanceof SyntaxError || err.name === 'SyntaxError') {
    return new CountersignError('malformed_json', 'the request body is not valid JSON');
  }
  if (status === 413) return tooLarge();
  if (status === 415) return new CountersignError('unsupported_media_type', 'send the body as application/json');
  if (status === 405) return new CountersignError('method_not_allowed', err.message);
  if (status >= 400 && status < 500) {
    const code = (Object.keys(ERROR_CATALOGUE) as ErrorCode[]).find((c) => ERROR_CATALOGUE[c] === status);
    return new CountersignError(code ?? 'validation_failed', err.message);
  }
  return undefined;
}
