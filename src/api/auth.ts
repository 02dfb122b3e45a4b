// Bearer-token authentication for every API route. A token is found by its public prefix and
// checked against the stored hash in constant time; missing, unknown, revoked and expired tokens
// all get the same 401, in the seed's words.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { tokenLookup, tokenMatches } from '../domain/tokens.js';
import { CountersignError } from '../errors.js';
import type { Store } from '../store/store.js';

export type Scope = 'read' | 'write' | 'publish' | 'admin';
export const ALL_SCOPES: Scope[] = ['read', 'write', 'publish', 'admin'];

export interface Principal {
  accountId: string;
  accountName: string;
  tokenId: string;
  scopes: Scope[];
}

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; `admin` tokens hold every scope. */
    scope?: Scope;
  }
}

const UNAUTHORIZED = 'your API token is invalid or expired';
/** last_used_at is kept to the minute: a write per request would cost more than the request. */
const TOUCH_EVERY_MS = 60_000;

export function authenticate(store: Store) {
  const touched = new Map<string, number>();
  return async function authenticateRequest(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const header = request.headers.authorization;
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const token = match?.[1];
    const lookup = token ? tokenLookup(token) : undefined;
    const row = lookup ? await store.findToken(lookup) : undefined;
    const now = Date.now();
    if (
      !token ||
      !row ||
      !tokenMatches(token, row.hash) ||
      row.revokedAt !== null ||
      (row.expiresAt !== null && row.expiresAt <= now)
    ) {
      reply.header('www-authenticate', 'Bearer');
      throw new CountersignError('unauthorized', UNAUTHORIZED);
    }
    const scopes = row.scopes.filter((s): s is Scope => (ALL_SCOPES as string[]).includes(s));
    const needed = request.routeOptions.config.scope;
    if (needed && !scopes.includes('admin') && !scopes.includes(needed)) {
      throw new CountersignError('forbidden', `this token lacks the "${needed}" scope`);
    }
    if (now - Math.max(row.lastUsedAt ?? 0, touched.get(row.id) ?? 0) >= TOUCH_EVERY_MS) {
      if (touched.size > 100_000) touched.clear();
      touched.set(row.id, now);
      store
        .touchToken(row.id, now)
        .catch((err: unknown) => request.log.warn({ reqId: request.id, err }, 'could not record token use'));
    }
    request.principal = { accountId: row.accountId, accountName: row.accountName, tokenId: row.id, scopes };
  };
}
