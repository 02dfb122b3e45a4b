// Seed API 1, the account callback (PUT /api/sign/v1/callback/register), held to the seed's letter:
// the three documented requests answer 200 with exactly the documented echo; every field the
// authType needs is required; an empty callbackUrl disables; credentials never come back from GET.
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../src/domain/tokens.js';
import { sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError, expectFieldError, expectUnauthorized } from './helpers/expect-error.js';
import { startTestService, type TestService } from './helpers/service.js';

const REGISTER = '/api/sign/v1/callback/register';
const CURRENT = '/api/sign/v1/callback';
const SEED_URL = 'https://your.domain/your.callback.listener.endpoint';

/** The three documented examples: request payload and the documented response payload. */
const SEED_EXAMPLES = [
  {
    name: 'Basic',
    request: { callbackUrl: SEED_URL, authType: 'Basic', username: 'your.username', password: 'your.password' },
    response: { callbackUrl: SEED_URL, authType: 'Basic', username: 'your.username', password: 'your.password' },
  },
  {
    name: 'Bearer',
    request: { callbackUrl: SEED_URL, authType: 'Bearer', bearerToken: 'your.bearer.token' },
    response: { callbackUrl: SEED_URL, authType: 'Bearer', bearerToken: 'your.bearer.token' },
  },
  {
    name: 'None',
    request: { callbackUrl: SEED_URL, authType: 'None' },
    response: { callbackUrl: SEED_URL, authType: 'None' },
  },
] as const;

const SEED_HEADERS = { accept: 'application/json', 'content-type': 'application/json' };

describe.each(DIALECTS)('callback API on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startTestService(dialect, { allowInsecureTargets: false });
    });
    afterAll(async () => {
      await service?.close();
    });

    /** Each test works in an account of its own, so the callback it sees is the one it set. */
    async function freshAccount(): Promise<string> {
      return (await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`)).token;
    }

    function put(token: string | null, payload: unknown): Promise<LightMyRequestResponse> {
      return service.request({
        method: 'PUT',
        url: REGISTER,
        token,
        headers: SEED_HEADERS,
        payload: payload as object,
      });
    }

    function current(token: string | null): Promise<LightMyRequestResponse> {
      return service.request({ method: 'GET', url: CURRENT, token, headers: { accept: 'application/json' } });
    }

    describe('the documented examples', () => {
      it.each(SEED_EXAMPLES)('answers the $name example with 200 and exactly the documented echo', async (example) => {
        const token = await freshAccount();
        const res = await put(token, example.request);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        expect(res.json()).toStrictEqual(example.response);
        expect(Object.keys(res.json())).toEqual(Object.keys(example.response));
      });

      it('stores the Basic callback: GET shows it enabled, with the username and a masked password', async () => {
        const token = await freshAccount();
        expect((await put(token, SEED_EXAMPLES[0].request)).statusCode).toBe(200);
        const res = await current(token);
        expect(res.statusCode).toBe(200);
        const body = res.json();
        expect(body).toMatchObject({
          callbackUrl: SEED_URL,
          authType: 'Basic',
          username: 'your.username',
          enabled: true,
        });
        expect(body.updatedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
        expect(body.password).toEqual(expect.any(String));
        expect(body.password).not.toBe('your.password');
        expect(res.body).not.toContain('your.password');
        expect(body).not.toHaveProperty('bearerToken');
      });

      it('replaces the previous setting on update, so credentials of the old authType are gone', async () => {
        const token = await freshAccount();
        expect((await put(token, SEED_EXAMPLES[0].request)).statusCode).toBe(200);
        expect((await put(token, SEED_EXAMPLES[2].request)).statusCode).toBe(200);
        const body = (await current(token)).json();
        expect(body).toMatchObject({ callbackUrl: SEED_URL, authType: 'None', enabled: true });
        expect(body).not.toHaveProperty('username');
        expect(body).not.toHaveProperty('password');
        expect(body).not.toHaveProperty('bearerToken');
      });

      it('shows no callback (disabled, empty URL) for an account that never registered one', async () => {
        const token = await freshAccount();
        const res = await current(token);
        expect(res.statusCode).toBe(200);
        expect(res.json()).toMatchObject({ callbackUrl: '', authType: 'None', enabled: false, updatedAt: null });
      });
    });

    describe('disabling with an empty callbackUrl', () => {
      it('accepts callbackUrl "" with the other fields, echoes it, and GET shows enabled false', async () => {
        const token = await freshAccount();
        expect((await put(token, SEED_EXAMPLES[1].request)).statusCode).toBe(200);
        const disable = { ...SEED_EXAMPLES[1].request, callbackUrl: '' };
        const res = await put(token, disable);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toStrictEqual(disable);
        const shown = (await current(token)).json();
        expect(shown).toMatchObject({ callbackUrl: '', authType: 'Bearer', enabled: false });
        expect(JSON.stringify(shown)).not.toContain('your.bearer.token');
      });

      it('enables the callback again when a URL is registered after disabling', async () => {
        const token = await freshAccount();
        expect((await put(token, { callbackUrl: '', authType: 'None' })).statusCode).toBe(200);
        expect((await current(token)).json().enabled).toBe(false);
        expect((await put(token, SEED_EXAMPLES[2].request)).statusCode).toBe(200);
        expect((await current(token)).json()).toMatchObject({ callbackUrl: SEED_URL, enabled: true });
      });

      it('still requires the fields of the authType when disabling', async () => {
        const token = await freshAccount();
        expectFieldError(await put(token, { callbackUrl: '', authType: 'Basic', username: 'u' }), 'password');
      });
    });

    describe('required fields per authType', () => {
      const missing: [string, Record<string, unknown>, string][] = [
        ['callbackUrl', { authType: 'None' }, 'callbackUrl'],
        ['authType', { callbackUrl: SEED_URL }, 'authType'],
        ['Basic username', { callbackUrl: SEED_URL, authType: 'Basic', password: 'p' }, 'username'],
        ['Basic password', { callbackUrl: SEED_URL, authType: 'Basic', username: 'u' }, 'password'],
        ['Bearer bearerToken', { callbackUrl: SEED_URL, authType: 'Bearer' }, 'bearerToken'],
      ];
      it.each(missing)('answers 400 naming the field when %s is missing', async (_label, payload, field) => {
        const token = await freshAccount();
        expectFieldError(await put(token, payload), field);
      });

      const empty: [string, Record<string, unknown>][] = [
        ['username', { callbackUrl: SEED_URL, authType: 'Basic', username: '', password: 'p' }],
        ['password', { callbackUrl: SEED_URL, authType: 'Basic', username: 'u', password: '' }],
        ['bearerToken', { callbackUrl: SEED_URL, authType: 'Bearer', bearerToken: '' }],
      ];
      it.each(empty)('answers 400 naming %s when it is an empty string', async (field, payload) => {
        const token = await freshAccount();
        expectFieldError(await put(token, payload), field);
      });

      const unused: [string, string, Record<string, unknown>][] = [
        ['bearerToken', 'Basic', { username: 'u', password: 'p', bearerToken: 't' }],
        ['username', 'Bearer', { bearerToken: 't', username: 'u' }],
        ['password', 'Bearer', { bearerToken: 't', password: 'p' }],
        ['username', 'None', { username: 'u' }],
        ['password', 'None', { password: 'p' }],
        ['bearerToken', 'None', { bearerToken: 't' }],
      ];
      it.each(unused)('answers 400 naming %s when authType %s does not use it', async (field, authType, extra) => {
        const token = await freshAccount();
        expectFieldError(await put(token, { callbackUrl: SEED_URL, authType, ...extra }), field);
      });

      const wrongType: [string, unknown][] = [
        ['callbackUrl', 42],
        ['callbackUrl', null],
        ['authType', 1],
        ['username', 5],
        ['password', true],
        ['bearerToken', { value: 't' }],
      ];
      it.each(wrongType)('answers 400 naming %s when it is not a string (%j)', async (field, value) => {
        const token = await freshAccount();
        const base: Record<string, unknown> =
          field === 'bearerToken'
            ? { ...SEED_EXAMPLES[1].request }
            : { ...SEED_EXAMPLES[0].request, username: 'u', password: 'p' };
        expectFieldError(await put(token, { ...base, [field]: value }), field);
      });

      it('answers 400 naming an unknown field', async () => {
        const token = await freshAccount();
        expectFieldError(await put(token, { ...SEED_EXAMPLES[2].request, callbackSecret: 'x' }), 'callbackSecret');
      });

      it.each(['Digest', 'basic', 'NONE', ''])('answers 400 naming authType for authType %j', async (authType) => {
        const token = await freshAccount();
        expectFieldError(await put(token, { callbackUrl: SEED_URL, authType }), 'authType');
      });

      it('answers 400 when the body is not a JSON object', async () => {
        const token = await freshAccount();
        expectError(await put(token, [SEED_EXAMPLES[2].request]), 400, 'validation_failed');
      });

      it('leaves the stored callback unchanged when an update is refused', async () => {
        const token = await freshAccount();
        expect((await put(token, SEED_EXAMPLES[0].request)).statusCode).toBe(200);
        expectFieldError(
          await put(token, { callbackUrl: 'https://other.example/cb', authType: 'Bearer' }),
          'bearerToken',
        );
        expect((await current(token)).json()).toMatchObject({
          callbackUrl: SEED_URL,
          authType: 'Basic',
          username: 'your.username',
        });
      });
    });

    describe('the callback URL', () => {
      it('refuses a plain http URL when insecure targets are not allowed', async () => {
        const token = await freshAccount();
        const res = await put(token, {
          callbackUrl: 'http://your.domain/your.callback.listener.endpoint',
          authType: 'None',
        });
        expectFieldError(res, 'callbackUrl');
        expect(res.json().error.message).toContain('https');
      });

      it.each([
        'your.domain/callback',
        '/callback',
        'ftp://your.domain/callback',
        'https://localhost/callback',
        'https://127.0.0.1/callback',
        'https://user:pw@your.domain/callback',
      ])('refuses %s', async (callbackUrl) => {
        const token = await freshAccount();
        expectFieldError(await put(token, { callbackUrl, authType: 'None' }), 'callbackUrl');
      });

      it('accepts a plain http loopback URL when insecure targets are allowed', async () => {
        const insecure = await startTestService(dialect, { allowInsecureTargets: true });
        try {
          const payload = { callbackUrl: 'http://127.0.0.1:9999/callback', authType: 'None' };
          const res = await insecure.request({ method: 'PUT', url: REGISTER, headers: SEED_HEADERS, payload });
          expect(res.statusCode, res.body).toBe(200);
          expect(res.json()).toStrictEqual(payload);
          const shown = await insecure.request({ method: 'GET', url: CURRENT });
          expect(shown.json()).toMatchObject({ callbackUrl: 'http://127.0.0.1:9999/callback', enabled: true });
        } finally {
          await insecure.close();
        }
      });
    });

    describe('GET masks credentials', () => {
      it('never shows the Basic password anywhere in the response', async () => {
        const token = await freshAccount();
        const password = `pw-${randomBytes(12).toString('hex')}`;
        const put1 = await put(token, { callbackUrl: SEED_URL, authType: 'Basic', username: 'alice', password });
        expect(put1.statusCode).toBe(200);
        const res = await current(token);
        expect(res.statusCode).toBe(200);
        expect(res.body).not.toContain(password);
        expect(res.json().password).not.toBe(password);
        expect(res.json().username).toBe('alice');
      });

      it('never shows the bearer token anywhere in the response', async () => {
        const token = await freshAccount();
        const bearerToken = `bt-${randomBytes(12).toString('hex')}`;
        expect((await put(token, { callbackUrl: SEED_URL, authType: 'Bearer', bearerToken })).statusCode).toBe(200);
        const res = await current(token);
        expect(res.statusCode).toBe(200);
        expect(res.body).not.toContain(bearerToken);
        expect(res.json().bearerToken).toEqual(expect.any(String));
        expect(res.json().bearerToken).not.toBe(bearerToken);
      });
    });

    describe('authentication', () => {
      const valid = SEED_EXAMPLES[2].request;

      it('answers 401 without an Authorization header', async () => {
        expectUnauthorized(await put(null, valid));
        expectUnauthorized(await current(null));
      });

      it('answers 401 for a well-formed token that was never issued', async () => {
        const unknown = issueToken().token;
        expectUnauthorized(await put(unknown, valid));
        expectUnauthorized(await current(unknown));
      });

      it('answers 401 for a malformed token or another auth scheme', async () => {
        expectUnauthorized(await put('not-a-token', valid));
        const res = await service.request({
          method: 'PUT',
          url: REGISTER,
          token: null,
          headers: { ...SEED_HEADERS, authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
          payload: valid,
        });
        expectUnauthorized(res);
      });

      it('answers 401 for a revoked token', async () => {
        const issued = await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`);
        expect((await put(issued.token, valid)).statusCode).toBe(200);
        expect(await service.store.revokeToken(issued.id, Date.now())).toBe(true);
        expectUnauthorized(await put(issued.token, valid));
        expectUnauthorized(await current(issued.token));
      });

      it('answers 401 for a token from its expiry on, and 200 until then', async () => {
        const expiresAt = Date.now() + 1_500;
        const issued = await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`, { expiresAt });
        expect((await put(issued.token, valid)).statusCode).toBe(200);
        expect((await current(issued.token)).statusCode).toBe(200);
        // The server reads this process's clock: past the expiry, the same requests are refused.
        while (Date.now() < expiresAt) await sleep(expiresAt - Date.now());
        expectUnauthorized(await put(issued.token, valid));
        expectUnauthorized(await current(issued.token));
      });

      it('answers 401 rather than 400 when an invalid body comes without a valid token', async () => {
        expectUnauthorized(await put(issueToken().token, { authType: 'Nope' }));
      });

      it('answers 403 to a read-only token on PUT, and 200 on GET', async () => {
        const reader = await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`, { scopes: ['read'] });
        const res = await put(reader.token, valid);
        expectError(res, 403, 'forbidden');
        expect((await current(reader.token)).statusCode).toBe(200);
        expect((await current(reader.token)).json().enabled).toBe(false);
      });
    });
  });
});
