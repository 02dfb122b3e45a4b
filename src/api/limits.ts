// Request limits beyond body size: per-token rate limits (429 with Retry-After) and a cap on JSON
// nesting, so no client can monopolise the service or make validation walk a pathological body.
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeSpan } from '../domain/time.js';
import { CountersignError } from '../errors.js';

export const MAX_JSON_DEPTH = 32;

export interface RateLimitSettings {
  /** Requests allowed per token per window; 0 turns the limit off. */
  max: number;
  windowMs: number;
}

export async function registerLimits(api: FastifyInstance, settings: RateLimitSettings): Promise<void> {
  // A callback hook, not an async one: it never waits, so it need not cost a promise per request.
  api.addHook('preValidation', (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    if (request.body !== null && typeof request.body === 'object' && depthExceeds(request.body, MAX_JSON_DEPTH)) {
      done(
        new CountersignError('validation_failed', `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, [
          { field: 'body', message: `nested deeper than ${MAX_JSON_DEPTH} levels` },
        ]),
      );
      return;
    }
    // PostgreSQL text cannot hold U+0000, and no field of ours has a use for it: refuse it everywhere
    // with a 400 rather than let one dialect fail where the other stores it.
    const field = nulField(request.params, '') ?? nulField(request.query, '') ?? nulField(request.body, '');
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
  if (settings.max <= 0) return;
  await api.register(rateLimit, {
    global: true,
    // After authentication (onRequest), so the limit is per token, not per address.
    hook: 'preHandler',
    max: settings.max,
    timeWindow: settings.windowMs,
    keyGenerator: (request) => request.principal?.tokenId ?? request.ip,
    errorResponseBuilder: (_request, context) =>
      new CountersignError(
        'rate_limited',
        `rate limit of ${context.max} requests per ${describeSpan(settings.windowMs)} exceeded; retry in ${context.after}`,
      ),
  });
}

/** The path of the first string (or key) holding U+0000, or undefined. Depth is capped above. */
function nulField(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\u0000') ? path : undefined;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, child] of Object.entries(value)) {
    const childPath = path ? `${path}.${key}` : key;
    if (key.includes('\u0000')) return childPath;
    const found = nulField(child, childPath);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Iterative, so a hostile body cannot overflow the stack while we measure it. */
function depthExceeds(root: object, limit: number): boolean {
  const stack: [unknown, number][] = [[root, 1]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop() as [unknown, number];
    if (depth > limit) return true;
    if (value !== null && typeof value === 'object') {
      for (const child of Object.values(value)) {
        if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
      }
    }
  }
  return false;
}
