// What every client sees when a request goes wrong before it reaches a route's logic (unknown
// route, bad JSON, oversize body, wrong media type), the health endpoints, and the published API
// description: /openapi.json must be a valid OpenAPI 3.1 document listing the seed paths.
import { Validator } from '@seriousme/openapi-schema-validator';
import BetterSqlite3 from 'better-sqlite3';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SMALL_BODY_LIMIT } from '../src/api/schemas.js';
import { BODY_LIMIT, DOCS_CSP } from '../src/app.js';
import { DIALECTS, dialectLabel, sqliteDialect } from './helpers/databases.js';
import { expectError } from './helpers/expect-error.js';
import { startTestService, type TestService } from './helpers/service.js';

const SUBSCRIPTIONS = '/v1/webhooks/subscriptions';
const REGISTER = '/api/sign/v1/callback/register';

/** Every `$ref` in the document, so the test can check each one points at something. */
function collectRefs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) collectRefs(item, out);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out.push(value);
      else collectRefs(value, out);
    }
  }
  return out;
}

function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const part of ref.slice(2).split('/')) {
    if (!node || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return node;
}

describe.each(DIALECTS)('errors, health and API description on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startTestService(dialect, { allowInsecureTargets: false });
    });
    afterAll(async () => {
      await service?.close();
    });

    function postRaw(body: string, contentType?: string, token?: string | null): Promise<LightMyRequestResponse> {
      return service.request({
        method: 'POST',
        url: SUBSCRIPTIONS,
        token,
        headers: contentType ? { 'content-type': contentType } : {},
        payload: body,
      });
    }

    describe('unknown routes', () => {
      it('answers 404 route_not_found in the error shape for an unknown path', async () => {
        const error = expectError(
          await service.request({ method: 'GET', url: '/v1/nothing-here' }),
          404,
          'route_not_found',
        );
        expect(error.message).toContain('/v1/nothing-here');
      });

      it('answers 404 without a token too, and without echoing the query string', async () => {
        const res = await service.request({ method: 'GET', url: '/nope?secret=abc', token: null });
        const error = expectError(res, 404, 'route_not_found');
        expect(error.message).not.toContain('secret=abc');
      });

      it('answers 405 with Allow for a method the path does not have', async () => {
        const res = await service.request({ method: 'DELETE', url: SUBSCRIPTIONS });
        expectError(res, 405, 'method_not_allowed');
        expect(res.headers.allow).toBe('GET, HEAD, POST');
      });
    });

    describe('request bodies', () => {
      it('answers 400 malformed_json for a body that is not JSON', async () => {
        expectError(
          await postRaw('{"target_url": "https://your-app.com/x",', 'application/json'),
          400,
          'malformed_json',
        );
        const put = await service.request({
          method: 'PUT',
          url: REGISTER,
          headers: { 'content-type': 'application/json' },
          payload: "{ callbackUrl: 'https://your.domain/cb' }",
        });
        expectError(put, 400, 'malformed_json');
      });

      it('answers 400 malformed_json for an empty JSON body', async () => {
        expectError(await postRaw('', 'application/json'), 400, 'malformed_json');
      });

      it('answers 400, not 415, when the body does not match its Content-Length', async () => {
        const res = await service.request({
          method: 'POST',
          url: SUBSCRIPTIONS,
          headers: { 'content-type': 'application/json', 'content-length': '100' },
          payload: '{"event_type":"document.sent"}',
        });
        const error = expectError(res, 400, 'validation_failed');
        expect(error.message).toContain('Content-Length');
      });

      it('answers 413 payload_too_large for a body over what its route takes: 64 KiB here, 1 MiB to publish', async () => {
        const body = JSON.stringify({ target_url: `https://your-app.com/${'a'.repeat(SMALL_BODY_LIMIT)}` });
        expect(Buffer.byteLength(body)).toBeGreaterThan(64 * 1024);
        const error = expectError(await postRaw(body, 'application/json'), 413, 'payload_too_large');
        expect(error.message).toBe('request body is larger than 64 KiB');
        const big = await service.request({
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.signed', data: { document_id: 'doc_1', padding: 'a'.repeat(BODY_LIMIT) } },
        });
        expect(expectError(big, 413, 'payload_too_large').message).toBe('request body is larger than 1 MiB');
        // The publish route reads what the subscription route refuses, up to its own limit.
        const under = await service.request({
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.signed', data: { padding: 'a'.repeat(BODY_LIMIT - 200) } },
        });
        expect(expectError(under, 400, 'validation_failed').message).toContain('data');
      });

      it('reads a body just under its limit and answers its validation error instead', async () => {
        const body = JSON.stringify({
          target_url: 'https://your-app.com/x',
          event_type: 'document.sent',
          padding: 'a'.repeat(SMALL_BODY_LIMIT - 200),
        });
        expect(Buffer.byteLength(body)).toBeLessThanOrEqual(SMALL_BODY_LIMIT);
        const error = expectError(await postRaw(body, 'application/json'), 400, 'validation_failed');
        expect(error.message).toContain('padding');
      });

      it.each([
        'text/plain',
        'application/xml',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
      ])('answers 415 unsupported_media_type for content-type %s', async (contentType) => {
        const body = JSON.stringify({ target_url: 'https://your-app.com/x', event_type: 'document.sent' });
        const error = expectError(await postRaw(body, contentType), 415, 'unsupported_media_type');
        expect(error.message).toContain('application/json');
        const list = await service.request({ method: 'GET', url: SUBSCRIPTIONS });
        expect(list.json().subscriptions).toEqual([]);
      });

      it('accepts application/json with a charset parameter', async () => {
        const body = JSON.stringify({ target_url: 'https://your-app.com/charset', event_type: 'document.sent' });
        const res = await postRaw(body, 'application/json; charset=utf-8');
        expect(res.statusCode, res.body).toBe(200);
      });

      it('answers 401 before reading the body when the token is missing', async () => {
        expectError(await postRaw('{not json', 'application/json', null), 401, 'unauthorized');
        expectError(await postRaw('x', 'text/plain', null), 401, 'unauthorized');
      });
    });

    describe('health', () => {
      it('answers /healthz with 200 and no token', async () => {
        const res = await service.request({ method: 'GET', url: '/healthz', token: null });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ status: 'ok' });
      });

      it('answers /readyz with 200 when the database answers', async () => {
        const res = await service.request({ method: 'GET', url: '/readyz', token: null });
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({ status: 'ready' });
      });
    });

    describe('the API description', () => {
      it('serves /openapi.json as a valid OpenAPI 3.1 document', async () => {
        const res = await service.request({ method: 'GET', url: '/openapi.json', token: null });
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        const doc = res.json();
        expect(doc.openapi).toMatch(/^3\.1\./);
        const result = await new Validator().validate(doc);
        if (!result.valid) console.error(JSON.stringify(result.errors, null, 2));
        expect(result.valid).toBe(true);
        const dangling = collectRefs(doc).filter((ref) => resolvePointer(doc, ref) === undefined);
        expect(dangling).toEqual([]);
      });

      it('lists the seed paths with the seed status codes', async () => {
        const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
        const register = doc.paths[REGISTER]?.put;
        expect(register).toBeDefined();
        expect(Object.keys(register.responses)).toEqual(expect.arrayContaining(['200', '400', '401']));
        expect(register.requestBody.content['application/json'].schema.properties).toHaveProperty('callbackUrl');

        const create = doc.paths[SUBSCRIPTIONS]?.post;
        expect(create).toBeDefined();
        expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '409']));
        const body = create.requestBody.content['application/json'].schema;
        // event_type, or (an extension) event_types: one of the two is required, as the description says.
        expect(body.required).toEqual(expect.arrayContaining(['target_url']));
        expect(body.properties.event_types.type).toBe('array');
        // The seed's three, document.completed and the operational events countersign makes itself
        // (extensions).
        expect([...body.properties.event_type.enum].sort()).toEqual([
          'delivery.failed',
          'document.completed',
          'document.declined',
          'document.sent',
          'document.signed',
          'endpoint.circuit_closed',
          'endpoint.circuit_opened',
          'subscription.disabled',
        ]);
        expect(body.properties.rate_limit_per_second).toMatchObject({ type: 'integer', minimum: 1, maximum: 10_000 });
        expect(body.properties.ordering.enum).toEqual(['none', 'document']);
        // Publishing takes the document events only.
        const publish = doc.paths['/v1/events'].post.requestBody.content['application/json'].schema;
        expect([...publish.properties.event.enum].sort()).toEqual([
          'document.completed',
          'document.declined',
          'document.sent',
          'document.signed',
        ]);
        expect(doc.paths[SUBSCRIPTIONS].get).toBeDefined();
        const one = doc.paths[`${SUBSCRIPTIONS}/{id}`];
        expect(Object.keys(one)).toEqual(expect.arrayContaining(['get', 'patch', 'delete']));
      });

      it('serves the interactive docs as an HTML page', async () => {
        let res = await service.request({ method: 'GET', url: '/docs', token: null });
        if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location) {
          res = await service.request({ method: 'GET', url: String(res.headers.location), token: null });
        }
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/html/);
        expect(res.body).toMatch(/<html/i);
        const slash = await service.request({ method: 'GET', url: '/docs/', token: null });
        expect(slash.statusCode).toBe(200);
        expect(slash.headers['content-type']).toMatch(/^text\/html/);
        // Its own files only: no inline script, no plugin, framed by this origin alone.
        expect(slash.headers['content-security-policy']).toBe(DOCS_CSP);
        for (const directive of ["script-src 'self'", "object-src 'none'", "frame-ancestors 'self'"]) {
          expect(slash.headers['content-security-policy']).toContain(directive);
        }
        expect(String(slash.headers['content-security-policy']).match(/script-src[^;]*/)?.[0]).toBe(
          "script-src 'self'",
        );
      });
    });
  });

  describe.skipIf(!dialect.available)(`${dialectLabel(dialect)}: readiness`, () => {
    it('answers /readyz with 503 unavailable once the database is gone', async () => {
      const service = await startTestService(dialect);
      try {
        expect((await service.request({ method: 'GET', url: '/readyz', token: null })).statusCode).toBe(200);
        await service.store.close();
        const res = await service.request({ method: 'GET', url: '/readyz', token: null });
        expectError(res, 503, 'unavailable');
        const health = await service.request({ method: 'GET', url: '/healthz', token: null });
        expect(health.statusCode).toBe(200);
      } finally {
        await service.app.close();
        await service.database.drop();
      }
    });
  });
});

describe('when the database cannot take a write', () => {
  it('answers 503 with Retry-After, accepts nothing, and works again once the lock is gone', async () => {
    const service = await startTestService(sqliteDialect);
    const holder = new BetterSqlite3(service.database.url);
    try {
      holder.pragma('busy_timeout = 0');
      holder.exec('begin immediate');
      const data = { document_id: 'd', signer_email: 'a@b.co', audit_url: 'https://x.test/a' };
      const refused = await service.request({
        method: 'POST',
        url: '/v1/events',
        payload: { event: 'document.signed', data },
      });
      expectError(refused, 503, 'unavailable');
      expect(refused.headers['retry-after']).toBe('1');
      holder.exec('rollback');
      const events = await service.request({ method: 'GET', url: '/v1/events' });
      expect(events.json().events).toEqual([]);
      const accepted = await service.request({
        method: 'POST',
        url: '/v1/events',
        payload: { event: 'document.signed', data },
      });
      expect(accepted.statusCode).toBe(202);
    } finally {
      holder.close();
      await service.close();
    }
  });
});
