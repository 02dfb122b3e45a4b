// Bearer-token authentication for every API route. A token is found by its public prefix and
// checked against the stored hash in constant time; missing, unknown, revoked and expired tokens
// all get the same 401, in the seed's words.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { tokenLookup, tokenMatches } from '../domain/tokens.js';
import { CountersignError } from '../errors.js';
import type { ApiToken, Store, TokenKind } from '../store/store.js';

export type Scope = 'read' | 'write' | 'publish' | 'admin';
export const ALL_SCOPES: Scope[] = ['read', 'write', 'publish', 'admin'];

/** Shared by every request of one token (see admissionOf), hence read-only. */
export interface Principal {
  readonly accountId: string;
  readonly accountName: string;
  readonly tokenId: string;
  readonly scopes: readonly Scope[];
  /** `portal` for a portal session's token. */
  readonly kind: TokenKind;
  /** When the token stops working (epoch ms); null when it does not expire. */
  readonly expiresAt: number | null;
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

/** What a token row means for a request, worked out once per row read rather than per request. */
interface Admission {
  principal: Principal;
  hash: Buffer;
}

/**
 * The onRequest hook. A callback hook rather than an async one: with the token row cached (every
 * request but the first after a change), authentication finishes synchronously, without the
 * promise hops an async hook around an async lookup costs on every request. Authentication had
 * been about a sixth of a publish's CPU; this took about a tenth off (docs/architecture.md).
 */
export function authenticate(store: Store) {
  const touched = new Map<string, number>();
  // Keyed by the row object: a row read anew (after a revocation, say) gets a fresh admission, and
  // admissions of rows no longer cached go with them.
  const admissions = new WeakMap<ApiToken, Admission>();

  function admissionOf(row: ApiToken): Admission {
    let admission = admissions.get(row);
    if (!admission) {
      const scopes = row.scopes.filter((s): s is Scope => (ALL_SCOPES as string[]).includes(s));
      admission = {
        principal: {
          accountId: row.accountId,
          accountName: row.accountName,
          tokenId: row.id,
          scopes,
          kind: row.kind,
          expiresAt: row.expiresAt,
        },
        hash: Buffer.from(row.hash, 'hex'),
      };
      admissions.set(row, admission);
    }
    return admission;
  }

  /** Sets request.principal, or returns the error to answer with. */
  function admit(
    request: FastifyRequest,
    reply: FastifyReply,
    token: string,
    row: ApiToken | undefined,
  ): CountersignError | undefined {
    if (!row) return unauthorized(reply);
    const now = Date.now();
    const { principal, hash } = admissionOf(row);
    if (!tokenMatches(token, hash) || row.revokedAt !== null || (row.expiresAt !== null && row.expiresAt <= now)) {
      return unauthorized(reply);
    }
    const needed = request.routeOptions.config.scope;
    if (needed && !principal.scopes.includes('admin') && !principal.scopes.includes(needed)) {
      return new CountersignError('forbidden', `this token lacks the "${needed}" scope`);
    }
    if (now - Math.max(row.lastUsedAt ?? 0, touched.get(row.id) ?? 0) >= TOUCH_EVERY_MS) {
      if (touched.size > 100_000) touched.clear();
      touched.set(row.id, now);
      store
        .touchToken(row.id, now)
        .catch((err: unknown) => request.log.warn({ reqId: request.id, err }, 'could not record token use'));
    }
    request.principal = principal;
    return undefined;
  }

  return function authenticateRequest(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const token = bearerToken(request);
    const lookup = token ? tokenLookup(token) : undefined;
    if (!token || !lookup) {
      done(unauthorized(reply));
      return;
    }
    const cached = store.cachedToken(lookup);
    if (cached) {
      done(admit(request, reply, token, cached));
      return;
    }
    store
      .findToken(lookup)
      .then((row) => admit(request, reply, token, row))
      .then(done, done);
  };
}

/** The token of a request's `Authorization: Bearer …` header, if it has one. */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  return header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
}

function unauthorized(reply: FastifyReply): CountersignError {
  reply.header('www-authenticate', 'Bearer');
  return new CountersignError('unauthorized', UNAUTHORIZED);
}
