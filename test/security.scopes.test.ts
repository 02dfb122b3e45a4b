// Scopes, as one table: every route of the API tried with a token of each single scope. A token
// without the route's scope gets 403 `forbidden` naming the scope it lacks, and changes nothing; a
// token with it (or an admin token, which holds every scope) gets past authorisation. The table is
// written out here, apart from the code, and held to /openapi.json so that a new route cannot be
// left out of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../src/api/auth.js';
import { sqliteDialect } from './helpers/databases.js';
import { startTestService, type TestService } from './helpers/service.js';

const SCOPES: Scope[] = ['read', 'write', 'publish', 'admin'];

const DATA = { document_id: 'doc_1', signer_email: 'client@example.com', audit_url: 'https://x.test/audit/1' };

interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** The scope it needs; null: any valid token. */
  scope: Scope | null;
  /** A body the route accepts, so that a refusal is about the scope alone. */
  body?: unknown;
}

const ROUTES: Route[] = [
  {
    method: 'PUT',
    path: '/api/sign/v1/callback/register',
    scope: 'write',
    body: { callbackUrl: 'https://receiver.test/cb', authType: 'None' },
  },
  { method: 'GET', path: '/api/sign/v1/callback', scope: 'read' },
  { method: 'POST', path: '/api/sign/v1/callback/circuit/probe', scope: 'write' },
  { method: 'POST', path: '/api/sign/v1/callback/rotate-secret', scope: 'write', body: {} },
  {
    method: 'POST',
    path: '/v1/webhooks/subscriptions',
    scope: 'write',
    body: { target_url: 'https://receiver.test/hook', event_type: 'document.signed' },
  },
  { method: 'GET', path: '/v1/webhooks/subscriptions', scope: 'read' },
  { method: 'GET', path: '/v1/webhooks/subscriptions/{id}', scope: 'read' },
  { method: 'PATCH', path: '/v1/webhooks/subscriptions/{id}', scope: 'write', body: { paused: true } },
  { method: 'DELETE', path: '/v1/webhooks/subscriptions/{id}', scope: 'write' },
  { method: 'POST', path: '/v1/webhooks/subscriptions/{id}/circuit/probe', scope: 'write' },
  {
    method: 'POST',
    path: '/v1/webhooks/subscriptions/{id}/replay',
    scope: 'write',
    body: { since: '2026-01-01T00:00:00Z' },
  },
  {
    method: 'POST',
    path: '/v1/webhooks/subscriptions/{id}/recover',
    scope: 'write',
    body: { since: '2026-01-01T00:00:00Z' },
  },
  { method: 'POST', path: '/v1/webhooks/subscriptions/{id}/test', scope: 'write', body: {} },
  { method: 'POST', path: '/v1/webhooks/subscriptions/{id}/rotate-secret', scope: 'write', body: {} },
  { method: 'POST', path: '/v1/events', scope: 'publish', body: { event: 'document.signed', data: DATA } },
  {
    method: 'POST',
    path: '/v1/events/batch',
    scope: 'publish',
    body: { events: [{ event: 'document.signed', data: DATA }] },
  },
  { method: 'GET', path: '/v1/events', scope: 'read' },
  { method: 'GET', path: '/v1/events/{id}', scope: 'read' },
  { method: 'POST', path: '/v1/events/{id}/deliver', scope: 'write', body: {} },
  { method: 'GET', path: '/v1/deliveries', scope: 'read' },
  { method: 'GET', path: '/v1/deliveries/{id}', scope: 'read' },
  { method: 'POST', path: '/v1/deliveries/{id}/redeliver', scope: 'write' },
  { method: 'GET', path: '/v1/me', scope: null },
  { method: 'POST', path: '/v1/portal/sessions', scope: 'admin', body: {} },
  { method: 'DELETE', path: '/v1/portal/sessions/{id}', scope: 'admin' },
  { method: 'GET', path: '/v1/stats/overview', scope: 'read' },
  { method: 'GET', path: '/v1/stats/attempts', scope: 'read' },
  { method: 'POST', path: '/v1/listen/sessions', scope: 'write', body: {} },
  { method: 'GET', path: '/v1/listen/sessions/{id}/stream', scope: 'write' },
  { method: 'POST', path: '/v1/listen/sessions/{id}/answers', scope: 'write', body: { answers: [] } },
  { method: 'POST', path: '/v1/listen/sessions/{id}/heartbeat', scope: 'write' },
  { method: 'DELETE', path: '/v1/listen/sessions/{id}', scope: 'write' },
  { method: 'POST', path: '/v1/erasure', scope: 'admin', body: { signer_email: 'client@example.com' } },
  {
    method: 'POST',
    path: '/v1/documents',
    scope: 'publish',
    body: { title: 'Lease', signers: [{ email: 'client@example.com' }] },
  },
  { method: 'GET', path: '/v1/documents', scope: 'read' },
  { method: 'GET', path: '/v1/documents/{id}', scope: 'read' },
  { method: 'POST', path: '/v1/documents/{id}/send', scope: 'publish' },
  { method: 'POST', path: '/v1/documents/{id}/signers/{signer_id}/sign', scope: 'publish' },
  { method: 'POST', path: '/v1/documents/{id}/signers/{signer_id}/decline', scope: 'publish', body: {} },
  { method: 'GET', path: '/v1/documents/{id}/audit/verify', scope: 'read' },
  { method: 'GET', path: '/v1/documents/{id}/audit/entries', scope: 'read' },
  { method: 'POST', path: '/v1/documents/{id}/audit-link/revoke', scope: 'publish' },
];

/** An id that names nothing: a route that lets the token through answers 404 (or 400) for it. */
const urlOf = (route: Route) => route.path.replace(/\{[a-z_]+\}/g, 'nothing_here');

describe('scopes, route by route', () => {
  let service: TestService;
  const tokens = new Map<Scope, string>();
  beforeAll(async () => {
    service = await startTestService(sqliteDialect);
    for (const scope of SCOPES) tokens.set(scope, (await service.tokenFor('acme', { scopes: [scope] })).token);
  });
  afterAll(async () => {
    await service?.close();
  });

  const ask = (route: Route, scope: Scope) =>
    service.request({
      method: route.method,
      url: urlOf(route),
      token: tokens.get(scope) as string,
      ...(route.body === undefined ? {} : { payload: route.body as Record<string, unknown> }),
    });

  it('names every route /openapi.json says takes a token, with the scope it documents', async () => {
    const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
    const documented: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const [method, operation] of Object.entries(operations)) {
        const security = (operation as { security?: { bearer?: string[] }[] }).security;
        // Routes that take no token (health, the signed audit page) say so with an empty list.
        if (Array.isArray(security) && security.length === 0) continue;
        documented.push(`${method.toUpperCase()} ${path} ${security?.[0]?.bearer?.[0] ?? 'any'}`);
      }
    }
    expect(ROUTES.map((r) => `${r.method} ${r.path} ${r.scope ?? 'any'}`).sort()).toEqual(documented.sort());
  });

  it('refuses each route to every token without its scope with a 403 naming it, and changes nothing', async () => {
    const refused: string[] = [];
    for (const route of ROUTES) {
      for (const scope of SCOPES) {
        if (route.scope === null || scope === route.scope || scope === 'admin') continue;
        const res = await ask(route, scope);
        expect([res.statusCode, res.json().error?.code], `${route.method} ${route.path} with ${scope}`).toEqual([
          403,
          'forbidden',
        ]);
        expect(res.json().error.message).toBe(`this token lacks the "${route.scope}" scope`);
        refused.push(`${route.method} ${route.path}`);
      }
    }
    // Every route that needs a scope was refused to each token lacking it: two of them for read,
    // write and publish; three for admin.
    const needing = (scope: Scope) => ROUTES.filter((r) => r.scope === scope).length;
    expect(refused.length).toBe((needing('read') + needing('write') + needing('publish')) * 2 + needing('admin') * 3);
    // Nothing any of them asked for was done.
    const admin = tokens.get('admin') as string;
    const list = async (url: string, key: string) =>
      (await service.request({ method: 'GET', url, token: admin })).json()[key] as unknown[];
    expect(await list('/v1/webhooks/subscriptions', 'subscriptions')).toEqual([]);
    expect(await list('/v1/events', 'events')).toEqual([]);
    expect(await list('/v1/documents', 'documents')).toEqual([]);
    const callback = await service.request({ method: 'GET', url: '/api/sign/v1/callback', token: admin });
    expect(callback.statusCode).toBe(200);
    expect(callback.json().callbackUrl ?? '').toBe('');
  });

  it('lets each route through for a token with its scope, and for an admin token holding no other', async () => {
    for (const route of ROUTES) {
      for (const scope of SCOPES) {
        if (!(route.scope === null || scope === route.scope || scope === 'admin')) continue;
        const res = await ask(route, scope);
        // Past authorisation, the route answers for itself: 2xx, or 404/400/409 for the made-up id.
        expect([401, 403], `${route.method} ${route.path} with ${scope}: ${res.body}`).not.toContain(res.statusCode);
        expect(res.statusCode, `${route.method} ${route.path} with ${scope}`).toBeLessThan(500);
      }
    }
  });
});
