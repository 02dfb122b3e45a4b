// Bearer-token authentication (src/api/auth.ts) and the tokens it checks (src/domain/tokens.ts):
// which Authorization headers name a token, the one 401 every refusal gets, expiry to the
// millisecond, revocation of a cached token, and how often a token's last use is written, all
// through the real app on a real SQLite store.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Scope } from '../src/api/auth.js';
import { hashToken, issueToken, TOKEN_PREFIX, tokenLookup, tokenMatches } from '../src/domain/tokens.js';
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
