// Bad input is refused at the door with a 4xx that names the field, and a refusal changes nothing:
// credentials that cannot travel in an HTTP header, bodies and query parameters a route does not
// take, `__proto__` keys, impossible dates, URLs the WHATWG parser would repair, compressed bodies,
// wrong methods (405 with Allow). And an Idempotency-Key compares requests by what they mean.
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError } from './helpers/expect-error.js';
import { startTestService, type TestService } from './helpers/service.js';

const REGISTER = '/api/sign/v1/callback/register';
const CURRENT = '/api/sign/v1/callback';
const SUBSCRIPTIONS = '/v1/webhooks/subscriptions';
const EVENTS = '/v1/events';
const CALLBACK_URL = 'https://your.domain/your.callback.listener.endpoint';
const DATA = { document_id: 'doc_88291', signer_email: 'client@example.com', audit_url: 'https://x.test/a/88291' };

for (const dialect of DIALECTS) {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    let accounts = 0;
    beforeAll(async () => {
      service = await startTestService(dialect);
    });
    afterAll(async () => {
      await service?.close();
    });

    /** A token for an account of its own, so what a test reads back is what it wrote. */
    async function freshAccount(): Promise<string> {
      accounts++;
      return (await service.tokenFor(`input-${dialect.name}-${accounts}-${Date.now()}`)).token;
    }

    function put(token: string, payload: object): Promise<LightMyRequestResponse> {
      return service.request({ method: 'PUT', url: REGISTER, token, payload });
    }

    async function currentCallback(token: string): Promise<unknown> {
      const res = await service.request({ method: 'GET', url: CURRENT, token });
      expect(res.statusCode, res.body).toBe(200);
      return res.json();
    }

    /** An account whose callback is a Basic one, and what GET shows of it. */
    async function accountWithCallback(): Promise<{ token: string; before: unknown }> {
      const token = await freshAccount();
      const first = { callbackUrl: CALLBACK_URL, authType: 'Basic', username: 'first.user', password: 'first.pass' };
      expect((await put(token, first)).statusCode).toBe(200);
      return { token, before: await currentCallback(token) };
    }

    async function subscribe(token: string, path: string): Promise<string> {
      const res = await service.request({
        method: 'POST',
        url: SUBSCRIPTIONS,
        token,
        payload: { target_url: `https://your-app.com/${path}`, event_type: 'document.signed' },
      });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().subscriptions[0].id;
    }

    async function eventCount(token: string): Promise<number> {
      const res = await service.request({ method: 'GET', url: `${EVENTS}?limit=100`, token });
      expect(res.statusCode, res.body).toBe(200);
      return res.json().events.length;
    }

    describe('callback credentials that cannot go into an HTTP header', () => {
      it('refuses a bearerToken with a line break with 400 and stores nothing', async () => {
        const { token, before } = await accountWithCallback();
        for (const bearerToken of ['abc\r\nX-Injected: 1', 'abc\ndef', 'abc\rdef']) {
          const error = expectError(
            await put(token, { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken }),
            400,
            'validation_failed',
          );
          expect(error.message).toMatch(/^bearerToken: must not contain line breaks.*HTTP header/);
        }
        expect(await currentCallback(token)).toEqual(before);
        const valid = { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken: 'abcdef' };
        const res = await put(token, valid);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual(valid);
      });

      it('refuses a bearerToken with a tab, NUL, DEL or another control character, and stores nothing', async () => {
        const { token, before } = await accountWithCallback();
        for (const bearerToken of ['abc\tdef', 'abc\u0000def', 'abc\u007fdef', 'abc\u001bdef', 'abc\u0085def']) {
          const error = expectError(
            await put(token, { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken }),
            400,
            'validation_failed',
          );
          expect(error.message).toMatch(/^bearerToken: /);
        }
        expect(await currentCallback(token)).toEqual(before);
      });

      it('refuses a bearerToken with a character above U+00FF, and accepts Latin-1 ones', async () => {
        const { token, before } = await accountWithCallback();
        for (const bearerToken of ['tok€n', 'token✓', 'token😀', 'tokenĀ']) {
          const error = expectError(
            await put(token, { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken }),
            400,
            'validation_failed',
          );
          expect(error.message).toMatch(/^bearerToken: must contain only Latin-1 characters/);
        }
        expect(await currentCallback(token)).toEqual(before);
        const latin1 = { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken: 'tøkén_ÿ' };
        const res = await put(token, latin1);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual(latin1);
      });

      it('refuses a bearerToken with leading or trailing white space, which HTTP would trim', async () => {
        const { token, before } = await accountWithCallback();
        for (const bearerToken of [' abc', 'abc ', '  abc  ']) {
          const error = expectError(
            await put(token, { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken }),
            400,
            'validation_failed',
          );
          expect(error.message).toMatch(/^bearerToken: must not start or end with white space/);
        }
        expect(await currentCallback(token)).toEqual(before);
        const inner = { callbackUrl: CALLBACK_URL, authType: 'Bearer', bearerToken: 'two words' };
        expect((await put(token, inner)).json()).toEqual(inner);
      });

      it('refuses a Basic username containing ":" (RFC 7617) and stores nothing', async () => {
        const { token, before } = await accountWithCallback();
        const error = expectError(
          await put(token, { callbackUrl: CALLBACK_URL, authType: 'Basic', username: 'ann:admin', password: 'pw' }),
          400,
          'validation_failed',
        );
        expect(error.message).toMatch(/^username: must not contain ":"/);
        expect(await currentCallback(token)).toEqual(before);
        // A colon in the password is fine: the first colon separates the two.
        const valid = { callbackUrl: CALLBACK_URL, authType: 'Basic', username: 'ann', password: 'pass:word' };
        const res = await put(token, valid);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual(valid);
      });

      it('refuses a Basic username or password with control characters and stores nothing', async () => {
        const { token, before } = await accountWithCallback();
        for (const [username, password, field] of [
          ['ann\r\n', 'pw', 'username'],
          ['ann\u0001', 'pw', 'username'],
          ['ann', 'pass\nword', 'password'],
          ['ann', 'pass\u007f', 'password'],
          ['ann', 'pass\tword', 'password'],
        ] as const) {
          const error = expectError(
            await put(token, { callbackUrl: CALLBACK_URL, authType: 'Basic', username, password }),
            400,
            'validation_failed',
          );
          expect(error.message).toMatch(new RegExp(`^${field}: must not contain line breaks or other control`));
        }
        expect(await currentCallback(token)).toEqual(before);
      });
    });

    describe('bodies on routes that take none, and unknown query parameters', () => {
      it('refuses a JSON body on DELETE of a subscription with 400 and deletes nothing', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'delete-with-body');
        const error = expectError(
          await service.request({ method: 'DELETE', url: `${SUBSCRIPTIONS}/${id}`, token, payload: { force: true } }),
          400,
          'validation_failed',
        );
        expect(error.message).toBe('body: this route takes no request body');
        expect((await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}`, token })).statusCode).toBe(200);
      });

      it('refuses a body on POST …/redeliver and on a GET, with or without a Content-Type', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'get-with-body');
        for (const request of [
          { method: 'POST', url: '/v1/deliveries/del_01J0000000000000000000000/redeliver', payload: '{}' },
          { method: 'GET', url: `${SUBSCRIPTIONS}/${id}`, payload: '{"a":1}' },
          { method: 'DELETE', url: `${SUBSCRIPTIONS}/${id}`, payload: 'x', headers: { 'content-type': 'text/plain' } },
          { method: 'DELETE', url: `${SUBSCRIPTIONS}/${id}`, payload: 'x', headers: {} },
        ] as const) {
          const res = await service.request({
            token,
            headers: { 'content-type': 'application/json' },
            ...request,
          });
          const error = expectError(res, 400, 'validation_failed');
          expect(error.message, `${request.method} ${request.url}`).toBe('body: this route takes no request body');
        }
        expect((await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}`, token })).statusCode).toBe(200);
      });

      it('refuses a chunked body on a route that takes none, and accepts an empty chunked one', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'chunked');
        const chunked = (body: string[]) =>
          service.request({
            method: 'DELETE',
            url: `${SUBSCRIPTIONS}/${id}`,
            token,
            headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
            payload: Readable.from(body.map((b) => Buffer.from(b))),
          });
        expectError(await chunked(['{"force"', ':true}']), 400, 'validation_failed');
        expect((await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}`, token })).statusCode).toBe(200);
        const res = await chunked([]);
        expect(res.statusCode, res.body).toBe(204);
      });

      it('accepts an empty body with a JSON Content-Type on DELETE, as curl -H sends it', async () => {
        const token = await freshAccount();
        for (const contentType of ['application/json', 'application/json; charset=utf-8', 'text/plain']) {
          const id = await subscribe(token, `empty-${contentType.length}`);
          const res = await service.request({
            method: 'DELETE',
            url: `${SUBSCRIPTIONS}/${id}`,
            token,
            headers: { 'content-type': contentType },
            payload: '',
          });
          expect(res.statusCode, `${contentType}: ${res.body}`).toBe(204);
          expect((await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}`, token })).statusCode).toBe(404);
        }
      });

      it('accepts rotate-secret, whose body is optional, with no body or an empty JSON one, and reads one when sent', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'rotate');
        const rotate = (headers: Record<string, string>, payload?: string) =>
          service.request({
            method: 'POST',
            url: `${SUBSCRIPTIONS}/${id}/rotate-secret`,
            token,
            headers,
            ...(payload === undefined ? {} : { payload }),
          });
        for (const [headers, payload] of [
          [{ 'content-type': 'application/json' }, ''],
          [{}, undefined],
        ] as const) {
          const res = await rotate(headers, payload);
          expect(res.statusCode, res.body).toBe(200);
          expect(res.json().subscriptions[0].signing_secret).toMatch(/^whsec_/);
        }
        const res = await rotate({ 'content-type': 'application/json' }, '{"grace_period_seconds":60}');
        expect(res.statusCode, res.body).toBe(200);
        const unknown = await rotate({ 'content-type': 'application/json' }, '{"grace":60}');
        expect(expectError(unknown, 400, 'validation_failed').message).toContain('grace');
      });

      it('refuses a query parameter on a route that reads none, naming it, and publishes nothing', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'query');
        const get = expectError(
          await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}?cursor=abc`, token }),
          400,
          'validation_failed',
        );
        expect(get.message).toBe('cursor: is not a known query parameter; this route takes none');
        const publish = expectError(
          await service.request({
            method: 'POST',
            url: `${EVENTS}?dry_run=1`,
            token,
            payload: { event: 'document.signed', data: DATA },
          }),
          400,
          'validation_failed',
        );
        expect(publish.message).toMatch(/^dry_run: is not a known query parameter/);
        expect(await eventCount(token)).toBe(0);
        const health = await service.request({ method: 'GET', url: '/healthz?verbose=1', token: null });
        expect(expectError(health, 400, 'validation_failed').message).toMatch(/^verbose: /);
      });

      it('calls an unknown query parameter by that name on routes that read some', async () => {
        const error = expectError(
          await service.request({ method: 'GET', url: `${EVENTS}?limit=5&bogus=1` }),
          400,
          'validation_failed',
        );
        expect(error.message).toBe('bogus: is not a known query parameter');
      });
    });

    describe('JSON that parses but holds a forbidden key', () => {
      it('refuses "__proto__" with a 400 that names the key rather than calling it invalid JSON, and publishes nothing', async () => {
        const token = await freshAccount();
        const publish = (payload: string) =>
          service.request({
            method: 'POST',
            url: EVENTS,
            token,
            headers: { 'content-type': 'application/json' },
            payload,
          });
        const nested = expectError(
          await publish(`{"event":"document.signed","data":{"__proto__":{"admin":true},"document_id":"d"}}`),
          400,
          'validation_failed',
        );
        expect(nested.message).toBe('data: the key "__proto__" is not allowed');
        const top = expectError(await publish('{"__proto__":{}}'), 400, 'validation_failed');
        expect(top.message).toBe('body: the key "__proto__" is not allowed');
        const escaped = expectError(await publish('{"\\u005f_proto__":{}}'), 400, 'validation_failed');
        expect(escaped.message).toBe('body: the key "__proto__" is not allowed');
        expect(await eventCount(token)).toBe(0);
        // Broken JSON is still called broken.
        const broken = expectError(await publish('{"__proto__":'), 400, 'malformed_json');
        expect(broken.message).toBe('the request body is not valid JSON');
      });

      it('refuses "constructor" holding "prototype" the same way, and allows a plain "constructor" field', async () => {
        const token = await freshAccount();
        const res = await service.request({
          method: 'POST',
          url: EVENTS,
          token,
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({
            event: 'document.signed',
            data: { ...DATA, meta: { constructor: { prototype: {} } } },
          }),
        });
        const error = expectError(res, 400, 'validation_failed');
        expect(error.message).toBe('data.meta: the key "constructor" holding "prototype" is not allowed');
        expect(await eventCount(token)).toBe(0);
        const plain = await service.request({
          method: 'POST',
          url: EVENTS,
          token,
          payload: { event: 'document.signed', data: { ...DATA, constructor: 'Acme' } },
        });
        expect(plain.statusCode, plain.body).toBe(202);
      });
    });

    describe('Content-Encoding', () => {
      it('answers 415 for an encoding the server does not decode, naming it, on every route', async () => {
        const token = await freshAccount();
        const publish = await service.request({
          method: 'POST',
          url: EVENTS,
          token,
          headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
          payload: JSON.stringify({ event: 'document.signed', data: DATA }),
        });
        const error = expectError(publish, 415, 'unsupported_media_type');
        expect(error.message).toBe('Content-Encoding "gzip" is not supported; send the request body uncompressed');
        expect(publish.headers['accept-encoding']).toBe('identity');
        expect(await eventCount(token)).toBe(0);
        for (const [url, encoding, named] of [
          ['/healthz', 'br', 'br'],
          ['/readyz', 'deflate', 'deflate'],
          ['/openapi.json', 'identity, zstd', 'zstd'],
        ] as const) {
          const res = await service.request({
            method: 'GET',
            url,
            token: null,
            headers: { 'content-encoding': encoding },
          });
          expect(expectError(res, 415, 'unsupported_media_type').message, url).toContain(`"${named}"`);
        }
        const identity = await service.request({
          method: 'POST',
          url: EVENTS,
          token,
          headers: { 'content-type': 'application/json', 'content-encoding': 'identity' },
          payload: JSON.stringify({ event: 'document.signed', data: DATA }),
        });
        expect(identity.statusCode, identity.body).toBe(202);
      });
    });

    describe('methods a path does not have', () => {
      it('answers 405 with an Allow header listing the methods of the path, HEAD included', async () => {
        const res = await service.request({ method: 'PUT', url: SUBSCRIPTIONS });
        const error = expectError(res, 405, 'method_not_allowed');
        expect(res.headers.allow).toBe('GET, HEAD, POST');
        expect(error.message).toContain('PUT');
        const callback = await service.request({ method: 'POST', url: REGISTER });
        expectError(callback, 405, 'method_not_allowed');
        expect(callback.headers.allow).toBe('PUT');
        // A path no route has is still a 404.
        expectError(await service.request({ method: 'PUT', url: '/v1/nothing-here' }), 404, 'route_not_found');
      });

      it('matches parametric and wildcard paths', async () => {
        const one = await service.request({ method: 'PUT', url: `${SUBSCRIPTIONS}/sub_01J0000000000000000000000` });
        expectError(one, 405, 'method_not_allowed');
        expect(one.headers.allow).toBe('GET, HEAD, PATCH, DELETE');
        const test = await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/sub_x/test` });
        expectError(test, 405, 'method_not_allowed');
        expect(test.headers.allow).toBe('POST');
        const docs = await service.request({ method: 'POST', url: '/docs/static/swagger-ui.css', token: null });
        expectError(docs, 405, 'method_not_allowed');
        expect(docs.headers.allow).toBe('GET, HEAD');
        expectError(await service.request({ method: 'PUT', url: `${SUBSCRIPTIONS}/a/b/c` }), 404, 'route_not_found');
      });
    });

    describe('dates and URLs that would be repaired instead of refused', () => {
      it('refuses a publish timestamp of February 30 or T24:00 with 400 and publishes nothing', async () => {
        const token = await freshAccount();
        for (const timestamp of ['2025-02-30T00:00:00Z', '2025-12-18T24:00:00Z']) {
          const res = await service.request({
            method: 'POST',
            url: EVENTS,
            token,
            payload: { event: 'document.signed', data: DATA, timestamp },
          });
          expect(expectError(res, 400, 'validation_failed').message, timestamp).toMatch(/^timestamp: /);
        }
        expect(await eventCount(token)).toBe(0);
      });

      it('refuses since and until that name no real instant on the lists and on replay', async () => {
        const token = await freshAccount();
        const id = await subscribe(token, 'replay-dates');
        for (const url of [`${EVENTS}?since=2025-02-30T00:00:00Z`, '/v1/deliveries?until=2025-12-18T24:00:00Z']) {
          const res = await service.request({ method: 'GET', url, token });
          expect(expectError(res, 400, 'validation_failed').message, url).toMatch(/^(since|until): /);
        }
        const replay = await service.request({
          method: 'POST',
          url: `${SUBSCRIPTIONS}/${id}/replay`,
          token,
          payload: { since: '2025-04-31T00:00:00Z' },
        });
        expect(expectError(replay, 400, 'validation_failed').message).toMatch(/^since: /);
      });

      it('refuses a target_url with an empty authority or a stripped character and subscribes nothing', async () => {
        const token = await freshAccount();
        for (const target_url of [
          'https:///your-app.com/hooks',
          'https:your-app.com/hooks',
          'https://your-app.com/ho\tok',
          'https://your-app.com\\hooks',
        ]) {
          const res = await service.request({
            method: 'POST',
            url: SUBSCRIPTIONS,
            token,
            payload: { target_url, event_type: 'document.signed' },
          });
          expect(expectError(res, 400, 'validation_failed').message, target_url).toMatch(/^target_url: /);
        }
        const list = await service.request({ method: 'GET', url: SUBSCRIPTIONS, token });
        expect(list.json().subscriptions).toEqual([]);
      });

      it('refuses a callbackUrl with a line break or no host and keeps the callback as it was', async () => {
        const { token, before } = await accountWithCallback();
        for (const callbackUrl of ['https://your.domain/cb\n', 'https:/your.domain/cb']) {
          const res = await put(token, { callbackUrl, authType: 'None' });
          expect(expectError(res, 400, 'validation_failed').message, callbackUrl).toMatch(/^callbackUrl: /);
        }
        expect(await currentCallback(token)).toEqual(before);
      });
    });

    describe('Idempotency-Key compares requests by meaning', () => {
      async function publish(token: string, key: string, body: string): Promise<LightMyRequestResponse> {
        return service.request({
          method: 'POST',
          url: EVENTS,
          token,
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          payload: body,
        });
      }

      it('treats the same data in another key order as the same request, and stores the data as first sent', async () => {
        const token = await freshAccount();
        const first = await publish(
          token,
          'order-1',
          `{"event":"document.signed","data":{"document_id":"d1","signer_email":"a@b.co","audit_url":"https://x.test/a","extra":{"b":2,"a":1},"list":[1,2]}}`,
        );
        expect(first.statusCode, first.body).toBe(202);
        const again = await publish(
          token,
          'order-1',
          `{"data":{"list":[1,2],"extra":{"a":1,"b":2},"audit_url":"https://x.test/a","signer_email":"a@b.co","document_id":"d1"},"event":"document.signed"}`,
        );
        expect(again.statusCode, again.body).toBe(202);
        expect(again.headers['idempotent-replayed']).toBe('true');
        expect(again.json().id).toBe(first.json().id);
        expect(await eventCount(token)).toBe(1);
        const stored = await service.request({ method: 'GET', url: `${EVENTS}/${first.json().id}`, token });
        expect(Object.keys(stored.json().data)).toEqual(['document_id', 'signer_email', 'audit_url', 'extra', 'list']);
        expect(Object.keys(stored.json().data.extra)).toEqual(['b', 'a']);
        // A different meaning is still a different request: arrays keep their order, values count.
        for (const body of [
          `{"event":"document.signed","data":{"document_id":"d1","signer_email":"a@b.co","audit_url":"https://x.test/a","extra":{"b":2,"a":1},"list":[2,1]}}`,
          `{"event":"document.signed","data":{"document_id":"d1","signer_email":"a@b.co","audit_url":"https://x.test/a","extra":{"b":2,"a":3},"list":[1,2]}}`,
        ]) {
          expectError(await publish(token, 'order-1', body), 422, 'idempotency_key_reused');
        }
      });

      it('treats two spellings of one instant as the same timestamp, and another instant as another request', async () => {
        const token = await freshAccount();
        const body = (timestamp: string) => JSON.stringify({ event: 'document.signed', data: DATA, timestamp });
        const first = await publish(token, 'instant-1', body('2025-12-18T14:30:05Z'));
        expect(first.statusCode, first.body).toBe(202);
        for (const spelling of [
          '2025-12-18T14:30:05.000+00:00',
          '2025-12-18T16:30:05+02:00',
          '2025-12-18t14:30:05.000z',
        ]) {
          const again = await publish(token, 'instant-1', body(spelling));
          expect(again.statusCode, `${spelling}: ${again.body}`).toBe(202);
          expect(again.json().id).toBe(first.json().id);
        }
        expectError(await publish(token, 'instant-1', body('2025-12-18T14:30:06Z')), 422, 'idempotency_key_reused');
        expectError(
          await publish(token, 'instant-1', JSON.stringify({ event: 'document.signed', data: DATA })),
          422,
          'idempotency_key_reused',
        );
        expect(await eventCount(token)).toBe(1);
      });
    });
  });
}
