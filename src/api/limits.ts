// Request limits beyond body size: per-token rate limits (429 with Retry-After) and a cap on JSON
// nesting, so no client can monopolise the service or make validation walk a pathological body.
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CountersignError } from '../errors.js';

export const MAX_JSON_DEPTH = 32;

export interface RateLimitSettings {
  /** Requests allowed per token per window; 0 turns the limit off. */
  max: number;
  windowMs: number;
}

export async function registerLimits(api: FastifyInstance, settings: RateLimitSettings): Promise<void> {
  api.addHook('preValidation', async (request: FastifyRequest) => {
    if (request.body !== null && typeof request.body === 'object' && depthExceeds(request.body, MAX_JSON_DEPTH)) {
      throw new CountersignError('validation_failed', `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`, [
        { field: 'body', message: `nested deeper than ${MAX_JSON_DEPTH} levels` },
      ]);
    }
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
        `rate limit of ${context.max} requests per ${context.after} exceeded; retry later`,
      ),
  });
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
