// Bearer-token authentication (src/api/auth.ts) and the tokens it checks (src/domain/tokens.ts):
// which Authorization headers name a token, the one 401 every refusal gets, expiry to the
// millisecond, revocation of a cached token, and how often a token's last use is written. The
// service tests drive the real app; the unit tests drive the hook with a stand-in store, where the
// clock, the cache and a failing write are in the test's hands.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { authenticate, type Principal, type Scope } from '../src/api/auth.js';
import { hashToken, issueToken, TOKEN_PREFIX, tokenLookup, tokenMatches } from '../src/domain/tokens.js';
import type { ApiToken, Store } from '../src/store/store.js';
import { sqliteDialect } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

const UNAUTHORIZED_BODY = { error: { code: 'unauthorized', message: 'your API token is invalid or expired' } };

describe('tokens', () => {
  it('issues cst_ tokens whose lookup is a short public prefix, never the secret part', () => {
    const issued = issueToken();
    expect(issued.token).toMatch(/^cst_[A-Za-z0-9_-]{43}$/);
    // The lookup is stored in clear and indexed: the prefix and 12 characters, nothing more.
    expect(issued.lookup).toHaveLength(TOKEN_PREFIX.length + 12);
    expect(issued.token.startsWith(issued.lookup)).toBe(true);
    expect(tokenLookup(issued.token)).toBe(issued.lookup);
    expect(issued.hash).toBe(hashToken(issued.token));
    expect(issued.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses strings that cannot be tokens', () => {
    const { token } = issueToken();
    expect(tokenLookup(token.slice(0, -1))).toBeUndefined();
    expect(tokenLookup(`${token}x`)).toBeUndefined();
    expect(tokenLookup(`xst_${token.slice(4)}`)).toBeUndefined();
  });

  it('matches a token against its stored hash, as hex or as bytes, and nothing else', () => {
    const a = issueToken();
    const b = issueToken();
    expect(tokenMatches(a.token, a.hash)).toBe(true);
    expect(tokenMatches(a.token, Buffer.from(a.hash, 'hex'))).toBe(true);
    expect(tokenMatches(a.token, b.hash)).toBe(false);
    expect(tokenMatches(a.token, Buffer.from(b.hash, 'hex'))).toBe(false);
    expect(tokenMatches(a.token, a.hash.slice(0, 62))).toBe(false);
    expect(tokenMatches(a.token, Buffer.alloc(0))).toBe(false);
  });
});

describe('authentication through the API', () => {
  let service: TestService;
  beforeAll(async () => {
    service = await startTestService(sqliteDialect);
  });
  afterAll(async () => {
    await service?.close();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  const me = (authorization?: string) =>
    service.request({
      method: 'GET',
      url: '/v1/me',
      token: null,
      headers: authorization === undefined ? {} : { authorization },
    });

  function expectUnauthorized(res: Awaited<ReturnType<typeof me>>) {
    expect(res.statusCode, res.body).toBe(401);
    expect(res.json()).toEqual(UNAUTHORIZED_BODY);
    expect(res.headers['www-authenticate']).toBe('Bearer');
  }

  it('admits `Bearer <token>` in any case, with any spacing around the token', async () => {
    const { token } = service;
    for (const header of [
      `Bearer ${token}`,
      `bearer ${token}`,
      `BEARER ${token}`,
      `Bearer   ${token}`,
      `Bearer ${token}  `,
      `Bearer\t${token}`,
    ]) {
      const res = await me(header);
      expect(res.statusCode, JSON.stringify(header)).toBe(200);
      expect(res.json().account.name).toBe('acme');
    }
  });

  it('answers every malformed Authorization header with the one 401 and `WWW-Authenticate: Bearer`', async () => {
    const { token } = service;
    const headers = [
      undefined,
      '',
      token,
      'Bearer',
      'Bearer ',
      `Basic ${token}`,
      `Token Bearer ${token}`,
      `XBearer ${token}`,
      `Bearer ${token} ${token}`,
      `Bearer ${token} extra`,
      `Bearer ${token}x`,
      'Bearer cst_short',
      `Bearer ${token.slice(0, -1)}`,
    ];
    for (const header of headers) expectUnauthorized(await me(header));
  });

  it('answers an unknown well-formed token with the same 401', async () => {
    expectUnauthorized(await me(`Bearer ${issueToken().token}`));
  });

  it('answers a known token with a wrong secret part with the same 401', async () => {
    // Same lookup prefix as a real token, different rest: found by its prefix, refused by the hash.
    const { token } = service;
    const forged = token.slice(0, 16) + (token[16] === 'A' ? 'B' : 'A') + token.slice(17);
    expectUnauthorized(await me(`Bearer ${forged}`));
  });

  it('admits a token until the millisecond before its expiry and refuses it at that millisecond', async () => {
    const expiresAt = Date.now() + 3_600_000;
    const t = await service.tokenFor('acme', { expiresAt });
    const clock = vi.spyOn(Date, 'now');
    clock.mockReturnValue(expiresAt - 1);
    expect((await me(`Bearer ${t.token}`)).statusCode).toBe(200);
    clock.mockReturnValue(expiresAt);
    expectUnauthorized(await me(`Bearer ${t.token}`));
    clock.mockReturnValue(expiresAt + 1);
    expectUnauthorized(await me(`Bearer ${t.token}`));
  });

  it('refuses a revoked token even after it was admitted (and cached)', async () => {
    const t = await service.tokenFor('acme');
    expect((await me(`Bearer ${t.token}`)).statusCode).toBe(200);
    expect((await me(`Bearer ${t.token}`)).statusCode).toBe(200);
    expect(await service.store.revokeToken(t.id, Date.now())).toBe(true);
    expectUnauthorized(await me(`Bearer ${t.token}`));
  });

  it('drops scopes it does not know, so they grant nothing', async () => {
    const t = await service.tokenFor('acme', { scopes: ['read', 'superuser', 'Admin'] as Scope[] });
    const res = await me(`Bearer ${t.token}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().token.scopes).toEqual(['read']);
    const write = await service.request({
      method: 'POST',
      url: '/v1/webhooks/subscriptions',
      token: t.token,
      payload: { target_url: 'https://receiver.test/hook', event_type: 'document.signed' },
    });
    expect(write.statusCode).toBe(403);
    expect(write.json().error.message).toBe('this token lacks the "write" scope');
  });

  it('records a token’s last use at most once a minute', async () => {
    const t = await service.tokenFor('acme');
    const lastUsed = async () => (await service.store.listTokens()).find((row) => row.id === t.id)?.lastUsedAt;
    const touch = vi.spyOn(service.store, 'touchToken');
    const settled = async () => {
      await Promise.all(touch.mock.results.map((r) => r.value));
    };
    const clock = vi.spyOn(Date, 'now');
    const start = Date.now() + 10_000;
    const at = async (ms: number) => {
      clock.mockReturnValue(ms);
      expect((await me(`Bearer ${t.token}`)).statusCode).toBe(200);
      await settled();
    };
    await at(start);
    expect(await lastUsed()).toBe(start);
    await at(start + 1);
    await at(start + 59_999);
    expect(await lastUsed()).toBe(start);
    await at(start + 60_000);
    expect(await lastUsed()).toBe(start + 60_000);
    expect(touch.mock.calls.filter(([id]) => id === t.id)).toEqual([
      [t.id, start],
      [t.id, start + 60_000],
    ]);
  });

  it('does not record a use again when another process recorded one within the minute', async () => {
    const t = await service.tokenFor('acme');
    const now = Date.now();
    await service.store.touchToken(t.id, now - 30_000);
    const touch = vi.spyOn(service.store, 'touchToken');
    expect((await me(`Bearer ${t.token}`)).statusCode).toBe(200);
    expect(touch).not.toHaveBeenCalled();
  });
});

// --- the hook on its own ---------------------------------------------------------------------

interface Harness {
  store: Store;
  rows: Map<string, ApiToken>;
  touches: [string, number][];
  lookups: string[];
  /** Makes a row for a fresh token; the token to present is returned. */
  add(options?: { lastUsedAt?: number | null }): { token: string; row: ApiToken };
}

/**
 * A store holding rows in a map: cachedToken answers every known row (as after a first read),
 * findToken counts its lookups, touchToken records the write without changing the row (as while
 * the write is still in flight), unless `fail` makes it reject.
 */
function harness(options: { fail?: boolean; cached?: boolean } = {}): Harness {
  const rows = new Map<string, ApiToken>();
  const touches: [string, number][] = [];
  const lookups: string[] = [];
  let n = 0;
  const store = {
    cachedToken: (lookup: string) => (options.cached === false ? undefined : rows.get(lookup)),
    findToken: async (lookup: string) => {
      lookups.push(lookup);
      return rows.get(lookup);
    },
    touchToken: async (id: string, now: number) => {
      touches.push([id, now]);
      if (options.fail) throw new Error('database is locked');
    },
  } as unknown as Store;
  return {
    store,
    rows,
    touches,
    lookups,
    add({ lastUsedAt = null } = {}) {
      const issued = issueToken();
      const row: ApiToken = {
        id: `tok_${++n}`,
        accountId: 'acc_1',
        accountName: 'acme',
        scopes: ['read', 'write', 'publish', 'admin'],
        hash: issued.hash,
        createdAt: 0,
        expiresAt: null,
        revokedAt: null,
        lastUsedAt,
        kind: 'api',
      };
      rows.set(issued.lookup, row);
      return { token: issued.token, row };
    },
  };
}

function fakeRequest(authorization: string | undefined) {
  const warn = vi.fn();
  const request = {
    id: 'req-1',
    headers: authorization === undefined ? {} : { authorization },
    routeOptions: { config: {} },
    log: { warn },
  } as unknown as FastifyRequest & { principal?: Principal };
  const header = vi.fn();
  const reply = { header } as unknown as FastifyReply;
  return { request, reply, warn, header };
}

/** Runs the hook; `sync` tells whether it finished before returning. */
async function run(hook: ReturnType<typeof authenticate>, authorization: string | undefined) {
  const fake = fakeRequest(authorization);
  let result: { err: Error | undefined } | undefined;
  const finished = new Promise<Error | undefined>((resolve) => {
    hook(fake.request, fake.reply, (err) => {
      result = { err };
      resolve(err);
    });
  });
  const sync = result !== undefined;
  const err = await finished;
  return { ...fake, err, sync };
}

describe('the authentication hook', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('refuses a missing or malformed header without asking the store', async () => {
    const h = harness({ cached: false });
    const hook = authenticate(h.store);
    const { token } = h.add();
    for (const header of [undefined, 'Basic abc', `Bearer ${token.slice(0, -1)}`, 'Bearer cst_x']) {
      const r = await run(hook, header);
      expect(r.err?.message).toBe('your API token is invalid or expired');
      expect(r.header).toHaveBeenCalledWith('www-authenticate', 'Bearer');
    }
    expect(h.lookups).toEqual([]);
  });

  it('finishes synchronously for a cached token, and hands every request of it the same principal', async () => {
    const h = harness();
    const hook = authenticate(h.store);
    const { token } = h.add();
    const first = await run(hook, `Bearer ${token}`);
    const second = await run(hook, `Bearer ${token}`);
    expect(first.err).toBeUndefined();
    expect(first.sync).toBe(true);
    expect(second.sync).toBe(true);
    expect(h.lookups).toEqual([]);
    expect(first.request.principal).toBeDefined();
    expect(second.request.principal).toBe(first.request.principal);
  });

  it('reads an uncached token from the store', async () => {
    const h = harness({ cached: false });
    const hook = authenticate(h.store);
    const { token } = h.add();
    const r = await run(hook, `Bearer ${token}`);
    expect(r.err).toBeUndefined();
    expect(r.request.principal?.tokenId).toBe('tok_1');
    expect(h.lookups).toEqual([tokenLookup(token)]);
  });

  it('records a use once a minute even while the row does not show the last write yet', async () => {
    const h = harness();
    const hook = authenticate(h.store);
    const { token } = h.add();
    const clock = vi.spyOn(Date, 'now');
    const t0 = 1_000_000_000_000;
    for (const ms of [t0, t0 + 1, t0 + 59_999, t0 + 60_000, t0 + 60_001]) {
      clock.mockReturnValue(ms);
      expect((await run(hook, `Bearer ${token}`)).err).toBeUndefined();
    }
    expect(h.touches).toEqual([
      ['tok_1', t0],
      ['tok_1', t0 + 60_000],
    ]);
  });

  it('takes the row’s last use into account', async () => {
    const h = harness();
    const hook = authenticate(h.store);
    const t0 = 1_000_000_000_000;
    const recent = h.add({ lastUsedAt: t0 - 59_999 });
    const old = h.add({ lastUsedAt: t0 - 60_000 });
    vi.spyOn(Date, 'now').mockReturnValue(t0);
    await run(hook, `Bearer ${recent.token}`);
    await run(hook, `Bearer ${old.token}`);
    expect(h.touches).toEqual([[old.row.id, t0]]);
  });

  it('logs a failed write of the last use and still admits the request', async () => {
    const h = harness({ fail: true });
    const hook = authenticate(h.store);
    const { token } = h.add();
    const r = await run(hook, `Bearer ${token}`);
    expect(r.err).toBeUndefined();
    await vi.waitFor(() => expect(r.warn).toHaveBeenCalled());
    const [fields, message] = r.warn.mock.calls[0] as [{ reqId: string; err: Error }, string];
    expect(message).toBe('could not record token use');
    expect(fields.reqId).toBe('req-1');
    expect(fields.err.message).toBe('database is locked');
  });

  it('forgets which tokens it recorded once more than 100,000 were, so its memory stays bounded', async () => {
    const h = harness();
    const hook = authenticate(h.store);
    const t0 = 1_000_000_000_000;
    const clock = vi.spyOn(Date, 'now').mockReturnValue(t0);
    const watched = h.add();
    await run(hook, `Bearer ${watched.token}`);
    // 100,000 others: 100,001 remembered, the limit not yet passed.
    const others = Array.from({ length: 100_001 }, () => h.add().token);
    // The cached path finishes synchronously, so these need neither promises nor spies.
    const { request, reply } = fakeRequest(undefined);
    const refusals: Error[] = [];
    for (let i = 0; i < 100_000; i++) {
      request.headers.authorization = `Bearer ${others[i]}`;
      hook(request, reply, (err) => {
        if (err) refusals.push(err);
      });
    }
    expect(refusals).toEqual([]);
    clock.mockReturnValue(t0 + 1);
    await run(hook, `Bearer ${watched.token}`);
    expect(h.touches.filter(([id]) => id === watched.row.id)).toHaveLength(1);
    // One more: past the limit, all forgotten; the watched token's next use is written again.
    clock.mockReturnValue(t0);
    await run(hook, `Bearer ${others[100_000]}`);
    clock.mockReturnValue(t0 + 2);
    await run(hook, `Bearer ${watched.token}`);
    expect(h.touches.filter(([id]) => id === watched.row.id)).toEqual([
      [watched.row.id, t0],
      [watched.row.id, t0 + 2],
    ]);
  }, 120_000);
});
