// Request limits beyond body size: per-account rate limits (429 with Retry-After) and a cap on JSON
// nesting, so no client can monopolise the service or make validation walk a pathological body.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FixedWindowLimiter } from '../domain/rate-limit.js';
import { describeSpan } from '../domain/time.js';
import { CountersignError } from '../errors.js';

export const MAX_JSON_DEPTH = 32;

/** The refusal of a body nested deeper than MAX_JSON_DEPTH (found in its text before parsing, or after). */
export function tooDeep(): CountersignError {
  return new CountersignError('validation_failed', `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, [
    { field: 'body', message: `nested deeper than ${MAX_JSON_DEPTH} levels` },
  ]);
}

export interface RateLimitSettings {
  /** Requests allowed per token per window; 0 turns the limit off. */
  max: number;
  windowMs: number;
}

export function registerLimits(api: FastifyInstance, settings: RateLimitSettings): void {
  // A callback hook, not an async one: it never waits, so it need not cost a promise per request.
  api.addHook('preValidation', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const body = request.body;
    const found = body !== null && typeof body === 'object' ? inspectBody(body) : nulField(body, '');
    if (found === DEEP) {
      done(tooDeep());
      return;
    }
    // PostgreSQL text cannot hold U+0000, and no field of ours has a use for it: refuse it everywhere
    // with a 400 rather than let one dialect fail where the other stores it.
    const field = nulField(request.params, '') ?? nulField(request.query, '') ?? found;
    if (field !== undefined) {
      done(
        new CountersignError('validation_failed', `${field || 'body'}: must not contain NUL characters`, [
          { field: field || 'body', message: 'must not contain NUL characters' },
        ]),
      );
      return;
    }
    done();
  });
  if (settings.max > 0) registerRateLimit(api, new FixedWindowLimiter(settings.max, settings.windowMs));
}

/**
 * Counts every request of an account, whichever of its tokens made it and refused ones included,
 * right after authentication (an onRequest hook registered after it), so a client can neither
 * spend the service's time on requests that fail validation nor get a fresh window by minting
 * another token (a portal session makes one each). Every answer carries the account's standing; a
 * 429 says when to come back. A callback hook: it never waits.
 */
function registerRateLimit(api: FastifyInstance, limiter: FixedWindowLimiter): void {
  const window = describeSpan(limiter.windowMs);
  api.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const decision = limiter.take(request.principal.accountId, Date.now());
    const resetSeconds = Math.max(1, Math.ceil(decision.resetInMs / 1000));
    reply.header('x-ratelimit-limit', decision.limit);
    reply.header('x-ratelimit-remaining', decision.remaining);
    reply.header('x-ratelimit-reset', resetSeconds);
    if (decision.allowed) {
      done();
      return;
    }
    reply.header('retry-after', resetSeconds);
    done(
      new CountersignError(
        'rate_limited',
        `rate limit of ${decision.limit} requests per ${window} exceeded; retry in ${describeSpan(resetSeconds * 1000)}`,
      ),
    );
  });
}

const DEEP = Symbol('nested too deep');

/** The path of the first string (or key) holding U+0000 in params, a query or a scalar body, or undefined. */
function nulField(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const key of Object.keys(value)) {
    const childPath = path ? `${path}.${key}` : key;
    if (key.includes('\u0000')) return childPath;
    const found = nulField((value as Record<string, unknown>)[key], childPath);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * One walk over a parsed body: DEEP when it nests past MAX_JSON_DEPTH (which wins over a NUL), else
 * the path of the first string or key holding U+0000, else undefined. The recursion stops at the
 * depth limit, so a hostile body cannot overflow the stack.
 */
function inspectBody(root: object): typeof DEEP | string | undefined {
  let nulAt: string | undefined;
  // The keys leading to the value being walked; a path string is made only when a NUL is found.
  const keys: string[] = [];
  const walk = (value: object, depth: number): boolean => {
    if (depth > MAX_JSON_DEPTH) return true;
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const child = record[key];
      if (nulAt === undefined && (key.includes('\u0000') || (typeof child === 'string' && child.includes('\u0000')))) {
        nulAt = [...keys, key].join('.');
      }
      if (child !== null && typeof child === 'object') {
        keys.push(key);
        const deep = walk(child, depth + 1);
        keys.pop();
        if (deep) return true;
      }
    }
    return false;
  };
  return walk(root, 1) ? DEEP : nulAt;
}
