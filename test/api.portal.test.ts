// The API the browser portal speaks, on every dialect: who a token is (GET /v1/me), portal
// sessions (a link whose token can read and change the account, never publish or manage tokens,
// and stops at its expiry or when revoked), the dashboard's figures from real deliveries to
// loopback receivers, and each subscription's last delivery.
import { afterEach, describe, expect, it } from 'vitest';
import { ALL_SCOPES } from '../src/api/auth.js';
import { issueToken } from '../src/domain/tokens.js';
import { apiOf, eventually, SIGNED_DATA, sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError, expectFieldError, expectUnauthorized } from './helpers/expect-error.js';
import { captureLogs } from './helpers/log-capture.js';
import { type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService, type TestServiceOptions } from './helpers/service.js';

const SESSIONS = '/v1/portal/sessions';
const SUBSCRIPTIONS = '/v1/webhooks/subscriptions';
const MINUTE = 60_000;

interface Session {
  id: string;
  url: string;
  expires_at: string;
}

/** The token a portal link carries in its fragment. */
function tokenOf(url: string): string {
  const fragment = new URL(url).hash;
  expect(fragment).toMatch(/^#token=cst_[A-Za-z0-9_-]{43}$/);
  return fragment.slice('#token='.length);
}

describe.each(DIALECTS)('portal API on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const receivers: Receiver[] = [];

    async function start(options: TestServiceOptions = {}) {
      service = await startTestService(dialect, options);
      return { service, api: apiOf(service) };
    }

    async function receiver(responder?: Responder): Promise<Receiver> {
      const r = await startReceiver(responder);
      receivers.push(r);
      return r;
    }

    async function session(s: TestService, body?: Record<string, unknown>, token?: string): Promise<Session> {
      const res = await s.request({ method: 'POST', url: SESSIONS, token, ...(body ? { payload: body } : {}) });
      expect(res.statusCode, res.body).toBe(201);
      return res.json() as Session;
    }

    afterEach(async () => {
      await service?.close();
      service = undefined;
      await Promise.all(receivers.splice(0).map((r) => r.close()));
    });

    it('keeps at most COUNTERSIGN_MAX_PORTAL_SESSIONS open per account, even when they are asked for at once', async () => {
      const { service: s } = await start({ quotas: { portalSessions: 3 } });
      const ask = (token?: string) => s.request({ method: 'POST', url: SESSIONS, token });
      const answers = await Promise.all(Array.from({ length: 8 }, () => ask()));
      const made = answers.filter((a) => a.statusCode === 201).map((a) => a.json() as Session);
      expect(made).toHaveLength(3);
      for (const refused of answers.filter((a) => a.statusCode !== 201)) {
        expect(expectError(refused, 409, 'quota_exceeded').message).toBe(
          'this account has 3 portal sessions open, as many as it may (COUNTERSIGN_MAX_PORTAL_SESSIONS); end one (DELETE /v1/portal/sessions/:id) or let one expire',
        );
      }
      // Ending one frees its place; another account has places of its own.
      expect((await s.request({ method: 'DELETE', url: `${SESSIONS}/${made[0]?.id}` })).statusCode).toBe(204);
      expect((await ask()).statusCode).toBe(201);
      expect((await ask()).statusCode).toBe(409);
      expect((await ask((await s.tokenFor('globex')).token)).statusCode).toBe(201);
    });

    describe('GET /v1/me', () => {
      it('names the account and the token: its id, scopes, kind and expiry', async () => {
        const { service } = await start();
        const main = await service.request({ method: 'GET', url: '/v1/me' });
        expect(main.statusCode, main.body).toBe(200);
        expect(main.json()).toEqual({
          account: { id: service.accountId, name: 'acme' },
          token: { id: expect.stringMatching(/^tok_/), scopes: ALL_SCOPES, kind: 'api', expires_at: null },
        });

        const expiresAt = Date.now() + 3_600_123;
        const reader = await service.tokenFor('globex', { scopes: ['publish'], expiresAt });
        const res = await service.request({ method: 'GET', url: '/v1/me', token: reader.token });
        // No scope is needed: a publish-only token may ask who it is.
        expect(res.json()).toEqual({
          account: { id: reader.accountId, name: 'globex' },
          token: { id: reader.id, scopes: ['publish'], kind: 'api', expires_at: new Date(expiresAt).toISOString() },
        });
        expectUnauthorized(await service.request({ method: 'GET', url: '/v1/me', token: null }));
        expectFieldError(await service.request({ method: 'GET', url: '/v1/me?x=1' }), 'x');
      });
    });

    describe('portal sessions', () => {
      it('answers 201 with a link to /ui carrying a new portal token in its fragment, for an hour by default', async () => {
        const { service } = await start();
        const before = Date.now();
        const made = await session(service);
        expect(Object.keys(made).sort()).toEqual(['expires_at', 'id', 'url']);
        expect(made.id).toMatch(/^tok_/);
        // Without COUNTERSIGN_PUBLIC_URL, the address the server listens on; inject() never listens.
        expect(made.url.startsWith('http://localhost/ui/#token=')).toBe(true);
        const token = tokenOf(made.url);
        const expiresAt = Date.parse(made.expires_at);
        expect(expiresAt).toBeGreaterThanOrEqual(before + 3600_000);
        expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000);

        const me = await service.request({ method: 'GET', url: '/v1/me', token });
        expect(me.json()).toEqual({
          account: { id: service.accountId, name: 'acme' },
          token: { id: made.id, scopes: ['read', 'write'], kind: 'portal', expires_at: made.expires_at },
        });
        const stored = (await service.store.listTokens()).find((t) => t.id === made.id);
        expect(stored).toMatchObject({ kind: 'portal', accountId: service.accountId, expiresAt });
      });

      it('builds the link on COUNTERSIGN_PUBLIC_URL when it is set', async () => {
        const { service } = await start({ publicUrl: 'https://webhooks.example.com' });
        const made = await session(service, { expires_in_seconds: 600 });
        expect(made.url).toMatch(/^https:\/\/webhooks\.example\.com\/ui\/#token=cst_/);
        expect(Date.parse(made.expires_at) - Date.now()).toBeGreaterThan(590_000);
        expect(Date.parse(made.expires_at) - Date.now()).toBeLessThanOrEqual(600_000);
      });

      it('never builds a link on a Host header that is not on COUNTERSIGN_PUBLIC_HOSTS', async () => {
        const { service } = await start({ publicHosts: ['portal.example.com', 'api.example.com:8443'] });
        const made = async (host: string) =>
          (await service.request({ method: 'POST', url: SESSIONS, headers: { host } })).json().url as string;
        expect(await made('attacker.example')).toMatch(/^http:\/\/localhost\/ui\/#token=cst_/);
        expect(await made('portal.example.com.attacker.example')).toMatch(/^http:\/\/localhost\/ui\//);
        expect(await made('Portal.Example.com')).toMatch(/^http:\/\/portal\.example\.com\/ui\/#token=cst_/);
        expect(await made('api.example.com:8443')).toMatch(/^http:\/\/api\.example\.com:8443\/ui\//);
        expect(await made('api.example.com')).toMatch(/^http:\/\/localhost\/ui\//);
        // COUNTERSIGN_PUBLIC_URL wins over any Host.
        await service.close();
        const { service: fixed } = await start({
          publicUrl: 'https://webhooks.example.com',
          publicHosts: ['portal.example.com'],
        });
        const res = await fixed.request({ method: 'POST', url: SESSIONS, headers: { host: 'portal.example.com' } });
        expect(res.json().url).toMatch(/^https:\/\/webhooks\.example\.com\/ui\//);
      });

      it('never writes the link’s token to the log', async () => {
        const logs = captureLogs('debug');
        const { service } = await start({ logger: logs.logger });
        const token = tokenOf((await session(service)).url);
        expect((await service.request({ method: 'GET', url: SUBSCRIPTIONS, token })).statusCode).toBe(200);
        expect(logs.matching(`POST ${SESSIONS} 201`)).toHaveLength(1);
        expect(JSON.stringify(logs.lines())).not.toContain(token);
        expect(JSON.stringify(logs.lines())).not.toContain(token.slice(0, 16));
      });

      it('lets the link’s token read and change its own account at once, and nothing of another', async () => {
        const { service } = await start();
        const token = tokenOf((await session(service)).url);
        const created = await service.request({
          method: 'POST',
          url: SUBSCRIPTIONS,
          token,
          payload: { target_url: 'https://your-app.com/portal', event_type: 'document.signed' },
        });
        expect(created.statusCode, created.body).toBe(200);
        const own = created.json().subscriptions[0].id as string;
        const patched = await service.request({
          method: 'PATCH',
          url: `${SUBSCRIPTIONS}/${own}`,
          token,
          payload: { status: 'paused' },
        });
        expect(patched.json().subscriptions[0].status).toBe('paused');
        const listed = await service.request({ method: 'GET', url: SUBSCRIPTIONS, token });
        expect(listed.json().subscriptions.map((s: { id: string }) => s.id)).toEqual([own]);
        expect((await service.request({ method: 'GET', url: '/v1/deliveries', token })).statusCode).toBe(200);

        const globex = await service.tokenFor('globex');
        const theirs = await service.request({
          method: 'POST',
          url: SUBSCRIPTIONS,
          token: globex.token,
          payload: { target_url: 'https://globex.example/hook', event_type: 'document.sent' },
        });
        const theirId = theirs.json().subscriptions[0].id as string;
        expectError(
          await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${theirId}`, token }),
          404,
          'not_found',
        );
        expectError(
          await service.request({
            method: 'PATCH',
            url: `${SUBSCRIPTIONS}/${theirId}`,
            token,
            payload: { status: 'paused' },
          }),
          404,
          'not_found',
        );
        expectError(
          await service.request({ method: 'DELETE', url: `${SUBSCRIPTIONS}/${theirId}`, token }),
          404,
          'not_found',
        );
      });

      it('refuses the link’s token with 403 to publish and to make or end portal sessions', async () => {
        const { service } = await start();
        const made = await session(service);
        const token = tokenOf(made.url);
        const publish = await service.request({
          method: 'POST',
          url: '/v1/events',
          token,
          payload: { event: 'document.signed', data: SIGNED_DATA },
        });
        expect(expectError(publish, 403, 'forbidden').message).toContain('"publish" scope');
        const another = await service.request({ method: 'POST', url: SESSIONS, token, payload: {} });
        expect(expectError(another, 403, 'forbidden').message).toContain('"admin" scope');
        expectError(
          await service.request({ method: 'DELETE', url: `${SESSIONS}/${made.id}`, token }),
          403,
          'forbidden',
        );
        expect((await service.store.listTokens()).filter((t) => t.kind === 'portal')).toHaveLength(1);
      });

      it('documents every route’s scope; a portal token is refused exactly on those needing publish or admin', async () => {
        const { service } = await start();
        const token = tokenOf((await session(service)).url);
        const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
        const needs: Record<string, string[]> = {};
        let walked = 0;
        for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
          for (const [method, op] of Object.entries(item)) {
            const security = (op as { security?: { bearer?: string[] }[] }).security;
            // Unauthenticated (health) routes say so with an empty list.
            if (security !== undefined && security.length === 0) continue;
            const scopes = security?.[0]?.bearer ?? [];
            const operation = `${method.toUpperCase()} ${path}`;
            if (path !== '/v1/me') expect(scopes, operation).toHaveLength(1);
            for (const scope of scopes) needs[scope] = [...(needs[scope] ?? []), operation];
            const res = await service.request({
              method: method.toUpperCase() as 'GET',
              url: path.replace('{id}', 'xyz_01J0000000000000000000000'),
              token,
              ...(method === 'get' || method === 'delete' ? {} : { payload: {} }),
            });
            const refused = scopes.includes('publish') || scopes.includes('admin');
            if (refused) expectError(res, 403, 'forbidden');
            else expect(res.statusCode, `${operation}: ${res.body}`).not.toBe(403);
            walked++;
          }
        }
        expect(walked).toBeGreaterThan(20);
        expect(needs.publish?.sort()).toEqual([
          'POST /v1/documents',
          'POST /v1/documents/{id}/audit-link/revoke',
          'POST /v1/documents/{id}/send',
          'POST /v1/documents/{id}/signers/{signer_id}/decline',
          'POST /v1/documents/{id}/signers/{signer_id}/sign',
          'POST /v1/events',
          'POST /v1/events/batch',
        ]);
        expect(needs.admin?.sort()).toEqual([`DELETE ${SESSIONS}/{id}`, 'POST /v1/erasure', `POST ${SESSIONS}`]);
        expect(Object.keys(needs).sort()).toEqual(['admin', 'publish', 'read', 'write']);
      });

      it('refuses a portal token once it has expired, and admits it until then', async () => {
        const { service } = await start();
        const issued = issueToken();
        // A session that lasts 1.5 s, made in the store as POST /v1/portal/sessions makes one (the
        // route gives 60 s at the least).
        const now = Date.now();
        const expiresAt = now + 1_500;
        await service.store.createToken({
          accountId: service.accountId,
          lookup: issued.lookup,
          hash: issued.hash,
          scopes: ['read', 'write'],
          expiresAt,
          now,
          kind: 'portal',
        });
        const me = await service.request({ method: 'GET', url: '/v1/me', token: issued.token });
        expect(me.statusCode, me.body).toBe(200);
        expect(me.json().token).toMatchObject({ kind: 'portal', expires_at: new Date(expiresAt).toISOString() });
        const listed = await service.request({ method: 'GET', url: SUBSCRIPTIONS, token: issued.token });
        expect(listed.statusCode, listed.body).toBe(200);
        // The server reads this process's clock: past the expiry, the same token is refused.
        while (Date.now() < expiresAt) await sleep(expiresAt - Date.now());
        expectUnauthorized(await service.request({ method: 'GET', url: '/v1/me', token: issued.token }));
        expectUnauthorized(await service.request({ method: 'GET', url: SUBSCRIPTIONS, token: issued.token }));
      });

      it('ends a session with DELETE: 204, and its token is refused from the next request', async () => {
        const { service } = await start();
        const made = await session(service);
        const token = tokenOf(made.url);
        expect((await service.request({ method: 'GET', url: SUBSCRIPTIONS, token })).statusCode).toBe(200);
        const ended = await service.request({ method: 'DELETE', url: `${SESSIONS}/${made.id}` });
        expect(ended.statusCode, ended.body).toBe(204);
        expect(ended.body).toBe('');
        expectUnauthorized(await service.request({ method: 'GET', url: SUBSCRIPTIONS, token }));
        expectError(await service.request({ method: 'DELETE', url: `${SESSIONS}/${made.id}` }), 404, 'not_found');
      });

      it('answers 404 to DELETE for an API token and for another account’s session', async () => {
        const { service } = await start();
        const api = await service.tokenFor('acme', { scopes: ['read'] });
        expectError(await service.request({ method: 'DELETE', url: `${SESSIONS}/${api.id}` }), 404, 'not_found');
        expect((await service.request({ method: 'GET', url: '/v1/me', token: api.token })).statusCode).toBe(200);
        const globex = await service.tokenFor('globex');
        const theirs = await session(service, undefined, globex.token);
        expectError(await service.request({ method: 'DELETE', url: `${SESSIONS}/${theirs.id}` }), 404, 'not_found');
        const theirToken = tokenOf(theirs.url);
        expect((await service.request({ method: 'GET', url: '/v1/me', token: theirToken })).statusCode).toBe(200);
      });

      it('takes expires_in_seconds from 60 to 86400 and refuses anything else with a 400 naming it', async () => {
        const { service } = await start();
        for (const seconds of [60, 86_400]) {
          const made = await session(service, { expires_in_seconds: seconds });
          expect(Date.parse(made.expires_at) - Date.now()).toBeGreaterThan(seconds * 1000 - 5000);
        }
        for (const bad of [59, 86_401, 0, -1, 1.5, '3600', null]) {
          const res = await service.request({ method: 'POST', url: SESSIONS, payload: { expires_in_seconds: bad } });
          expectFieldError(res, 'expires_in_seconds');
        }
        expectFieldError(
          await service.request({ method: 'POST', url: SESSIONS, payload: { scopes: ['admin'] } }),
          'scopes',
        );
        expect((await service.store.listTokens()).filter((t) => t.kind === 'portal')).toHaveLength(2);
      });
    });

    describe('stats', () => {
      it('counts deliveries by status and attempts per minute, a receiver answering 500 as failed', async () => {
        const { service, api } = await start({ dispatcher: { retrySchedule: [0, 50, 100] } });
        const ok = await receiver();
        const broken = await receiver(() => ({ status: 500, body: 'down' }));
        await api.subscribe(`${ok.url}/hook`, 'document.signed');
        const failing = await api.subscribe(`${broken.url}/hook`, 'document.sent');
        const signed = [await api.published('document.signed'), await api.published('document.signed')];
        const sent = await api.published('document.sent');
        for (const e of signed) await api.settled(e.id, 'delivered', 1);
        await api.settled(sent.id, 'failed', 3);

        const portal = tokenOf((await session(service)).url);
        const res = await service.request({ method: 'GET', url: '/v1/stats/overview', token: portal });
        expect(res.statusCode, res.body).toBe(200);
        const overview = res.json();
        expect(overview.deliveries).toEqual({
          pending: 0,
          sending: 0,
          delivered: 2,
          failed: 1,
          held: 0,
          cancelled: 0,
          waiting: 0,
          postponed: 0,
        });
        expect(overview.complete).toBe(true);
        expect(Date.parse(overview.until) - Date.parse(overview.since)).toBe(24 * 3_600_000);
        expect(overview.attention).toEqual({
          total: 1,
          subscriptions: [
            {
              id: failing.id,
              target_url: `${broken.url}/hook`,
              status: 'active',
              failing_since: expect.stringMatching(/Z$/),
              disabled_reason: null,
              // Three faults in a row, short of opening the breaker (ten by default).
              circuit: {
                state: 'closed',
                consecutive_failures: 3,
                reason: 'HTTP 500',
                opened_at: null,
                next_probe_at: null,
              },
            },
          ],
        });

        const perMinute = await service.request({ method: 'GET', url: '/v1/stats/attempts?minutes=5', token: portal });
        expect(perMinute.statusCode, perMinute.body).toBe(200);
        const minutes = perMinute.json().minutes as { start: string; delivered: number; failed: number }[];
        expect(minutes).toHaveLength(5);
        const starts = minutes.map((m) => Date.parse(m.start));
        for (let i = 1; i < starts.length; i++) expect(starts[i]).toBe((starts[i - 1] as number) + MINUTE);
        const now = Date.now();
        expect(starts[4]).toBe(now - (now % MINUTE));
        // Two successes; the failing delivery's three attempts each count.
        expect(minutes.reduce((n, m) => n + m.delivered, 0)).toBe(2);
        expect(minutes.reduce((n, m) => n + m.failed, 0)).toBe(3);

        // Another account sees none of it.
        const globex = await service.tokenFor('globex');
        const theirs = (
          await service.request({ method: 'GET', url: '/v1/stats/overview', token: globex.token })
        ).json();
        expect(theirs.deliveries).toEqual({
          pending: 0,
          sending: 0,
          delivered: 0,
          failed: 0,
          held: 0,
          cancelled: 0,
          waiting: 0,
          postponed: 0,
        });
        expect(theirs.attention).toEqual({ total: 0, subscriptions: [] });
        const theirMinutes = await service.request({ method: 'GET', url: '/v1/stats/attempts', token: globex.token });
        const sixty = theirMinutes.json().minutes as { delivered: number; failed: number }[];
        expect(sixty).toHaveLength(60);
        expect(sixty.every((m) => m.delivered === 0 && m.failed === 0)).toBe(true);
      });

      it('answers the overview from its 5 s cache for the same account and window', async () => {
        const { service, api } = await start({ dispatcher: true });
        const ok = await receiver();
        await api.subscribe(`${ok.url}/hook`);
        const first = (await service.request({ method: 'GET', url: '/v1/stats/overview?hours=2' })).json();
        expect(first.deliveries.delivered).toBe(0);
        const event = await api.published();
        await api.settled(event.id, 'delivered');
        const again = (await service.request({ method: 'GET', url: '/v1/stats/overview?hours=2' })).json();
        expect(again).toEqual(first);
        const fresh = (await service.request({ method: 'GET', url: '/v1/stats/overview?hours=3' })).json();
        expect(fresh.deliveries.delivered).toBe(1);
        expect(Date.parse(fresh.until) - Date.parse(fresh.since)).toBe(3 * 3_600_000);
      });

      it('refuses hours and minutes out of range, and unknown query parameters, with a 400 naming them', async () => {
        const { service } = await start();
        for (const hours of ['0', '169', '1.5', 'x'])
          expectFieldError(await service.request({ method: 'GET', url: `/v1/stats/overview?hours=${hours}` }), 'hours');
        for (const minutes of ['0', '1441', 'x'])
          expectFieldError(
            await service.request({ method: 'GET', url: `/v1/stats/attempts?minutes=${minutes}` }),
            'minutes',
          );
        expectFieldError(await service.request({ method: 'GET', url: '/v1/stats/overview?days=1' }), 'days');
        const most = await service.request({ method: 'GET', url: '/v1/stats/attempts?minutes=1440' });
        expect(most.json().minutes).toHaveLength(1440);
        const week = await service.request({ method: 'GET', url: '/v1/stats/overview?hours=168' });
        expect(week.statusCode, week.body).toBe(200);
      });
    });

    describe('last_delivery on subscription views', () => {
      it('shows each subscription’s latest delivery and its latest attempt in GET one and the list', async () => {
        const { service, api } = await start({ dispatcher: { retrySchedule: [0] } });
        const ok = await receiver();
        const broken = await receiver(() => ({ status: 500, body: 'down' }));
        const made = await service.request({
          method: 'POST',
          url: SUBSCRIPTIONS,
          payload: { target_url: `${ok.url}/hook`, event_type: 'document.signed' },
        });
        // The POST answer stays as the seed documents it.
        expect(made.json().subscriptions[0]).not.toHaveProperty('last_delivery');
        const good = made.json().subscriptions[0].id as string;
        const bad = (await api.subscribe(`${broken.url}/hook`, 'document.sent')).id;
        const quiet = (await api.subscribe(`${ok.url}/quiet`, 'document.declined')).id;
        const one = async (id: string) =>
          (await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}/${id}` })).json().subscriptions[0];
        expect((await one(good)).last_delivery).toBeNull();

        await api.settled((await api.published('document.signed')).id, 'delivered');
        const latest = await api.published('document.signed');
        const delivered = await api.settled(latest.id, 'delivered');
        const failed = await api.settled((await api.published('document.sent')).id, 'failed', 1);

        expect((await one(good)).last_delivery).toEqual({
          id: delivered.id,
          status: 'delivered',
          created_at: expect.stringMatching(/Z$/),
          last_attempt: {
            started_at: delivered.attempts?.[0]?.started_at,
            status_code: 200,
            error: null,
          },
        });
        const listed = (await service.request({ method: 'GET', url: SUBSCRIPTIONS })).json().subscriptions as {
          id: string;
          last_delivery: { id: string; status: string; last_attempt: { status_code: number | null } | null } | null;
        }[];
        const byId = new Map(listed.map((s) => [s.id, s.last_delivery]));
        expect(byId.get(good)?.id).toBe(delivered.id);
        expect(byId.get(bad)).toMatchObject({ id: failed.id, status: 'failed', last_attempt: { status_code: 500 } });
        expect(byId.get(quiet)).toBeNull();

        // A delivery not attempted yet (held while its subscription is paused) has no last attempt.
        await api.patch(quiet, { status: 'paused' });
        const held = await api.published('document.declined');
        const waiting = await eventually('the held delivery', async () => {
          const [d] = await api.deliveriesOf(`event_id=${held.id}`);
          return d?.status === 'held' ? d : undefined;
        });
        expect((await one(quiet)).last_delivery).toEqual({
          id: waiting.id,
          status: 'held',
          created_at: expect.stringMatching(/Z$/),
          last_attempt: null,
        });
      });
    });
  });
});
