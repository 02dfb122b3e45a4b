// Property-based fuzzing of every route with fast-check: whatever arrives, the answer is never a
// 5xx, its status is one /openapi.json documents for that route, every error has the documented
// shape, and a rejected request leaves the database unchanged.
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoreDialect } from '../src/store/dialect.js';
import { openDialect, parseDatabaseUrl } from '../src/store/open.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

const RUNS = Number(process.env.COUNTERSIGN_FUZZ_RUNS ?? 10_000);

const ROUTES: { method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'; path: string }[] = [
  { method: 'PUT', path: '/api/sign/v1/callback/register' },
  { method: 'GET', path: '/api/sign/v1/callback' },
  { method: 'POST', path: '/v1/webhooks/subscriptions' },
  { method: 'GET', path: '/v1/webhooks/subscriptions' },
  { method: 'GET', path: '/v1/webhooks/subscriptions/:id' },
  { method: 'PATCH', path: '/v1/webhooks/subscriptions/:id' },
  { method: 'DELETE', path: '/v1/webhooks/subscriptions/:id' },
  { method: 'POST', path: '/v1/webhooks/subscriptions/:id/replay' },
  { method: 'POST', path: '/v1/webhooks/subscriptions/:id/test' },
  { method: 'POST', path: '/v1/webhooks/subscriptions/:id/rotate-secret' },
  { method: 'POST', path: '/v1/events' },
  { method: 'GET', path: '/v1/events' },
  { method: 'GET', path: '/v1/events/:id' },
  { method: 'GET', path: '/v1/deliveries' },
  { method: 'GET', path: '/v1/deliveries/:id' },
  { method: 'POST', path: '/v1/deliveries/:id/redeliver' },
  { method: 'POST', path: '/v1/webhooks/subscriptions/:id/recover' },
  { method: 'POST', path: '/v1/events/:id/deliver' },
  { method: 'POST', path: '/api/sign/v1/callback/rotate-secret' },
  { method: 'GET', path: '/v1/me' },
  { method: 'POST', path: '/v1/portal/sessions' },
  { method: 'DELETE', path: '/v1/portal/sessions/:id' },
  { method: 'GET', path: '/v1/stats/overview' },
  { method: 'GET', path: '/v1/stats/attempts' },
];

const FIELD_NAMES = [
  'callbackUrl',
  'authType',
  'username',
  'password',
  'bearerToken',
  'target_url',
  'event_type',
  'secret_token',
  'status',
  'event',
  'data',
  'timestamp',
  'since',
  'until',
  'grace_period_seconds',
  'event_types',
  'subscription_id',
  'document_id',
  'expires_in_seconds',
  'signer_email',
  'audit_url',
  '__proto__',
  'constructor',
];

const stringish = fc.oneof(
  fc.string(),
  fc.constantFrom(
    '',
    'Basic',
    'Bearer',
    'None',
    'active',
    'paused',
    'disabled',
    'document.signed',
    'document.sent',
    'document.declined',
    'https://example.com/hook',
    'http://127.0.0.1/x',
    'https://10.0.0.1/',
    'javascript:alert(1)',
    '2025-12-18T12:00:00Z',
    'not-a-date',
    'a@b.co',
    '\u0000',
    '%00',
    '../../etc/passwd',
    'x'.repeat(3000),
  ),
);
const leaf = fc.oneof(stringish, fc.integer(), fc.double(), fc.boolean(), fc.constant(null));
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('node'), { maxLength: 4 }), tie('object')),
  object: fc.dictionary(fc.oneof(fc.constantFrom(...FIELD_NAMES), fc.string({ maxLength: 8 })), tie('node'), {
    maxKeys: 6,
  }),
})).node;

const body = fc.oneof(
  value.map((v) => JSON.stringify(v)),
  fc
    .record(
      { target_url: stringish, event_type: stringish, secret_token: fc.option(stringish, { nil: undefined }) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc
    .record(
      { event: stringish, data: value, timestamp: fc.option(stringish, { nil: undefined }) },
      { requiredKeys: [] },
    )
    .map((v) => JSON.stringify(v)),
  fc.string(),
  fc.constant(''),
  fc.constant('{"a":'),
);

const query = fc
  .dictionary(
    fc.constantFrom(
      'limit',
      'cursor',
      'event_type',
      'status',
      'since',
      'until',
      'subscription_id',
      'event_id',
      'document_id',
      'target',
      'include_tests',
      'hours',
      'minutes',
      'x',
    ),
    stringish,
    {
      maxKeys: 3,
    },
  )
  .map((q) => new URLSearchParams(q).toString());

const request = fc.record({
  route: fc.constantFrom(...ROUTES),
  id: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('sub_01J0000000000000000000000', '%2e%2e', 'null')),
  body,
  query,
  contentType: fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'text/plain',
    'application/x-www-form-urlencoded',
    undefined,
  ),
  auth: fc.constantFrom('valid', 'valid', 'valid', 'none', 'garbage'),
  idempotencyKey: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
  contentEncoding: fc.option(fc.constantFrom('identity', 'gzip', 'br'), { nil: undefined, freq: 10 }),
});

async function fingerprint(dialect: StoreDialect): Promise<string> {
  const result = await sql<Record<string, unknown>>`select
    (select count(*) from accounts) as a, (select count(*) from api_tokens) as t,
    (select count(*) from callbacks) as c, (select coalesce(max(updated_at), 0) from callbacks) as cu,
    (select count(*) from subscriptions) as s, (select coalesce(max(updated_at), 0) from subscriptions) as su,
    (select count(*) from events) as e, (select count(*) from deliveries) as d,
    (select coalesce(max(updated_at), 0) from deliveries) as du, (select count(*) from attempts) as at`.execute(
    dialect.db,
  );
  return JSON.stringify(result.rows[0]);
}

describe.each(DIALECTS)('fuzzing every route on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    let inspector: StoreDialect;
    /** The statuses /openapi.json documents, by method and route. */
    const documented = new Map<string, Set<string>>();
    beforeAll(async () => {
      service = await startTestService(dialect, { allowInsecureTargets: false, rateLimit: { max: 0, windowMs: 1000 } });
      inspector = openDialect(parseDatabaseUrl(service.database.url));
      const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
      for (const route of ROUTES) {
        const operation = doc.paths[route.path.replace(':id', '{id}')]?.[route.method.toLowerCase()];
        documented.set(`${route.method} ${route.path}`, new Set(Object.keys(operation?.responses ?? {})));
      }
    });
    afterAll(async () => {
      await inspector?.close();
      await service?.close();
    });

    it(`never answers 5xx and changes nothing when it refuses (${RUNS} requests)`, async () => {
      let refused = 0;
      await fc.assert(
        fc.asyncProperty(request, async (r) => {
          const url = `${r.route.path.replace(':id', encodeURIComponent(r.id))}${r.query ? `?${r.query}` : ''}`;
          const headers: Record<string, string> = {};
          if (r.contentType && r.route.method !== 'GET') headers['content-type'] = r.contentType;
          if (r.idempotencyKey !== undefined)
            headers['idempotency-key'] = r.idempotencyKey.replace(/[^\x20-\x7e]/g, 'x');
          if (r.contentEncoding !== undefined) headers['content-encoding'] = r.contentEncoding;
          const before = await fingerprint(inspector);
          const res = await service.request({
            method: r.route.method,
            url,
            headers,
            token: r.auth === 'valid' ? undefined : r.auth === 'none' ? null : 'cst_garbage',
            ...(r.route.method === 'GET' ? {} : { payload: r.body }),
          });
          expect(
            res.statusCode,
            `${r.route.method} ${url} ${r.body.slice(0, 200)} -> ${res.body.slice(0, 300)}`,
          ).toBeLessThan(500);
          // An id such as "." or "" can make the URL name another path: its 404 route_not_found or
          // 405 belongs to that path, not to this operation.
          const code = res.statusCode >= 400 ? res.json().error?.code : undefined;
          if (code !== 'route_not_found' && code !== 'method_not_allowed')
            expect(
              [...(documented.get(`${r.route.method} ${r.route.path}`) ?? [])],
              `${r.route.method} ${r.route.path} answered ${res.statusCode}: ${res.body.slice(0, 200)}`,
            ).toContain(String(res.statusCode));
          if (res.statusCode >= 400) {
            refused++;
            const error = res.json().error;
            expect(typeof error.code).toBe('string');
            expect(typeof error.message).toBe('string');
            expect(await fingerprint(inspector)).toBe(before);
          }
        }),
        { numRuns: RUNS, interruptAfterTimeLimit: 240_000 },
      );
      expect(refused).toBeGreaterThan(RUNS / 2);
    }, 300_000);
  });
});
