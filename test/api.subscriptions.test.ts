// Seed API 2, webhook subscriptions, held to the seed's letter (POST answers 200 with a
// `subscriptions` array; 400 / 401 / 409 as its status table says) plus the rest of the resource:
// list with cursor pagination and filters, get, patch, delete, and isolation between accounts.
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../src/domain/tokens.js';
import { sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { expectError, expectFieldError, expectUnauthorized } from './helpers/expect-error.js';
import { startTestService, type TestService } from './helpers/service.js';

const PATH = '/v1/webhooks/subscriptions';
const SEED_REQUEST = {
  target_url: 'https://your-app.com/webhooks/conga',
  event_type: 'document.signed',
  secret_token: 'shhh_its_a_secret',
};
const ISO_SECONDS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

interface SubscriptionView {
  id: string;
  target_url: string;
  event_type: string;
  event_types: string[];
  status: string;
  created_at: string;
  updated_at: string;
  has_secret_token: boolean;
  disabled_reason: string | null;
}

describe.each(DIALECTS)('subscriptions API on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    beforeAll(async () => {
      service = await startTestService(dialect, { allowInsecureTargets: false });
    });
    afterAll(async () => {
      await service?.close();
    });

    /** Each test works in an account of its own, so lists and conflicts see only its own rows. */
    async function freshAccount(): Promise<string> {
      return (await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`)).token;
    }

    function create(token: string | null, payload: unknown): Promise<LightMyRequestResponse> {
      return service.request({
        method: 'POST',
        url: PATH,
        token,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
    }

    async function created(token: string, payload: Record<string, unknown>): Promise<SubscriptionView> {
      const res = await create(token, payload);
      expect(res.statusCode, res.body).toBe(200);
      return res.json().subscriptions[0];
    }

    function get(token: string | null, id: string): Promise<LightMyRequestResponse> {
      return service.request({ method: 'GET', url: `${PATH}/${id}`, token });
    }

    function patch(token: string | null, id: string, payload: unknown): Promise<LightMyRequestResponse> {
      return service.request({
        method: 'PATCH',
        url: `${PATH}/${id}`,
        token,
        headers: { 'content-type': 'application/json' },
        payload: JSON.stringify(payload),
      });
    }

    function list(token: string, query = ''): Promise<LightMyRequestResponse> {
      return service.request({ method: 'GET', url: `${PATH}${query}`, token });
    }

    describe('POST: the seed example', () => {
      it('answers 200 with the documented subscriptions array, plus event_type and a signing secret', async () => {
        const token = await freshAccount();
        const res = await create(token, SEED_REQUEST);
        expect(res.statusCode, res.body).toBe(200);
        expect(res.headers['content-type']).toMatch(/^application\/json/);
        const body = res.json();
        expect(Object.keys(body)).toEqual(['subscriptions']);
        expect(body.subscriptions).toHaveLength(1);
        const [sub] = body.subscriptions;
        expect(sub).toMatchObject({
          target_url: 'https://your-app.com/webhooks/conga',
          status: 'active',
          event_type: 'document.signed',
        });
        expect(sub.id).toMatch(/^sub_[0-9A-Z]{26}$/);
        expect(sub.created_at).toMatch(ISO_SECONDS);
        expect(Math.abs(Date.parse(sub.created_at) - Date.now())).toBeLessThan(5 * 60_000);
        expect(sub.signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]+={0,2}$/);
        const key = Buffer.from(sub.signing_secret.slice('whsec_'.length), 'base64');
        expect(key.length).toBeGreaterThanOrEqual(24);
        expect(key.length).toBeLessThanOrEqual(32);
      });

      it('never echoes the secret_token, in POST, GET, list or PATCH responses', async () => {
        const token = await freshAccount();
        const secret = `tok-${randomBytes(12).toString('hex')}`;
        const res = await create(token, { ...SEED_REQUEST, secret_token: secret });
        expect(res.statusCode).toBe(200);
        expect(res.body).not.toContain(secret);
        const sub = res.json().subscriptions[0] as SubscriptionView;
        expect(sub).not.toHaveProperty('secret_token');
        expect(sub.has_secret_token).toBe(true);

        const one = await get(token, sub.id);
        expect(one.statusCode).toBe(200);
        expect(one.body).not.toContain(secret);
        const all = await list(token);
        expect(all.statusCode).toBe(200);
        expect(all.body).not.toContain(secret);

        const newSecret = `tok-${randomBytes(12).toString('hex')}`;
        const patched = await patch(token, sub.id, { secret_token: newSecret });
        expect(patched.statusCode).toBe(200);
        expect(patched.body).not.toContain(newSecret);
        expect(patched.body).not.toContain(secret);
      });

      it('shows the signing secret only in the create response', async () => {
        const token = await freshAccount();
        const res = await create(token, SEED_REQUEST);
        const { id, signing_secret } = res.json().subscriptions[0];
        const one = await get(token, id);
        expect(one.body).not.toContain(signing_secret);
        expect(one.json().subscriptions[0]).not.toHaveProperty('signing_secret');
        expect((await list(token)).body).not.toContain(signing_secret);
      });

      it('accepts a subscription without a secret_token and says it has none', async () => {
        const token = await freshAccount();
        const sub = await created(token, { target_url: SEED_REQUEST.target_url, event_type: 'document.sent' });
        expect(sub.has_secret_token).toBe(false);
      });

      it.each(['document.signed', 'document.declined', 'document.sent'])('accepts event_type %s', async (eventType) => {
        const token = await freshAccount();
        const sub = await created(token, { target_url: SEED_REQUEST.target_url, event_type: eventType });
        expect(sub.event_type).toBe(eventType);
      });
    });

    describe('POST: 400 validation errors name the field', () => {
      const cases: [string, unknown, string][] = [
        ['target_url is missing', { event_type: 'document.signed' }, 'target_url'],
        ['event_type is missing', { target_url: SEED_REQUEST.target_url }, 'event_type'],
        ['event_type is unsupported', { ...SEED_REQUEST, event_type: 'document.viewed' }, 'event_type'],
        ['event_type differs in case', { ...SEED_REQUEST, event_type: 'Document.Signed' }, 'event_type'],
        ['target_url is relative', { ...SEED_REQUEST, target_url: '/webhooks/conga' }, 'target_url'],
        ['target_url has no scheme', { ...SEED_REQUEST, target_url: 'your-app.com/webhooks' }, 'target_url'],
        [
          'target_url is plain http',
          { ...SEED_REQUEST, target_url: 'http://your-app.com/webhooks/conga' },
          'target_url',
        ],
        ['target_url is empty', { ...SEED_REQUEST, target_url: '' }, 'target_url'],
        ['target_url is loopback', { ...SEED_REQUEST, target_url: 'https://127.0.0.1/hook' }, 'target_url'],
        ['target_url is a number', { ...SEED_REQUEST, target_url: 42 }, 'target_url'],
        ['target_url is null', { ...SEED_REQUEST, target_url: null }, 'target_url'],
        ['event_type is a number', { ...SEED_REQUEST, event_type: 7 }, 'event_type'],
        ['event_type is an array', { ...SEED_REQUEST, event_type: ['document.signed'] }, 'event_type'],
        ['secret_token is a number', { ...SEED_REQUEST, secret_token: 12345 }, 'secret_token'],
        ['secret_token is empty', { ...SEED_REQUEST, secret_token: '' }, 'secret_token'],
        ['an unknown field is sent', { ...SEED_REQUEST, callback: 'x' }, 'callback'],
        ['the body is an array', [SEED_REQUEST], 'body'],
        ['the body is a string', 'document.signed', 'body'],
        ['the body is null', null, 'body'],
      ];
      it.each(cases)('answers 400 when %s', async (_label, payload, field) => {
        const token = await freshAccount();
        expectFieldError(await create(token, payload), field);
        // Nothing was created.
        expect((await list(token)).json().subscriptions).toEqual([]);
      });
    });

    describe('POST: 401 when the API token is invalid or expired', () => {
      it('answers 401 without a token', async () => {
        expectUnauthorized(await create(null, SEED_REQUEST));
      });

      it('answers 401 for a token that was never issued', async () => {
        expectUnauthorized(await create(issueToken().token, SEED_REQUEST));
        expectUnauthorized(await create('cst_short', SEED_REQUEST));
      });

      it('answers 401 for a revoked token', async () => {
        const issued = await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`);
        expect((await create(issued.token, SEED_REQUEST)).statusCode).toBe(200);
        await service.store.revokeToken(issued.id, Date.now());
        expectUnauthorized(await create(issued.token, { ...SEED_REQUEST, event_type: 'document.sent' }));
        expectUnauthorized(await list(issued.token));
      });

      it('answers 401 for a token from its expiry on, and 200 until then', async () => {
        const expiresAt = Date.now() + 1_500;
        const issued = await service.tokenFor(`acct-${randomBytes(6).toString('hex')}`, { expiresAt });
        expect((await create(issued.token, SEED_REQUEST)).statusCode).toBe(200);
        // The server reads this process's clock: past the expiry, the same token is refused.
        while (Date.now() < expiresAt) await sleep(expiresAt - Date.now());
        expectUnauthorized(await create(issued.token, { ...SEED_REQUEST, event_type: 'document.sent' }));
        expectUnauthorized(await list(issued.token));
      });

      it('answers 401, not 400, to an invalid body without a valid token', async () => {
        expectUnauthorized(await create(null, { nonsense: true }));
      });
    });

    describe('POST: 409 for a duplicate', () => {
      it('returns 409 when the same target_url and event_type already exist', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        const res = await create(token, SEED_REQUEST);
        const error = expectError(res, 409, 'subscription_exists');
        expect(error.message).toContain('target_url');
        expect((await list(token)).json().subscriptions).toHaveLength(1);
      });

      it('returns 409 when the duplicate differs only in how the URL is spelled', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        const res = await create(token, { ...SEED_REQUEST, target_url: 'HTTPS://YOUR-APP.com:443/webhooks/conga' });
        expectError(res, 409, 'subscription_exists');
      });

      it('returns 409 regardless of the secret_token', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        expectError(await create(token, { ...SEED_REQUEST, secret_token: 'other' }), 409, 'subscription_exists');
        const { secret_token: _omitted, ...withoutSecret } = SEED_REQUEST;
        expectError(await create(token, withoutSecret), 409, 'subscription_exists');
      });

      it('returns 200 for the same target_url and event_type in another account', async () => {
        const first = await freshAccount();
        const second = await freshAccount();
        const a = await created(first, SEED_REQUEST);
        const b = await created(second, SEED_REQUEST);
        expect(b.id).not.toBe(a.id);
      });

      it('returns 200 for the same target_url with another event_type', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        await created(token, { ...SEED_REQUEST, event_type: 'document.declined' });
        expect((await list(token)).json().subscriptions).toHaveLength(2);
      });

      it('returns 200 again once the earlier subscription was deleted', async () => {
        const token = await freshAccount();
        const first = await created(token, SEED_REQUEST);
        const del = await service.request({ method: 'DELETE', url: `${PATH}/${first.id}`, token });
        expect(del.statusCode).toBe(204);
        const again = await created(token, SEED_REQUEST);
        expect(again.id).not.toBe(first.id);
      });
    });

    describe('GET list', () => {
      it('walks every page with the cursor, newest first, without duplicates', async () => {
        const token = await freshAccount();
        const ids: string[] = [];
        for (let i = 0; i < 7; i++) {
          ids.push(
            (await created(token, { target_url: `https://your-app.com/hooks/${i}`, event_type: 'document.sent' })).id,
          );
        }
        const seen: string[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const query: string = `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
          const res = await list(token, query);
          expect(res.statusCode, res.body).toBe(200);
          const body = res.json();
          expect(body.subscriptions.length).toBeLessThanOrEqual(3);
          seen.push(...body.subscriptions.map((s: SubscriptionView) => s.id));
          cursor = body.next_cursor;
          pages += 1;
          expect(pages).toBeLessThan(10);
        } while (cursor !== null);
        expect(pages).toBe(3);
        expect(new Set(seen).size).toBe(seen.length);
        expect(seen).toEqual([...ids].reverse());
      });

      it('answers next_cursor null when everything fits on one page', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        const body = (await list(token, '?limit=3')).json();
        expect(body.subscriptions).toHaveLength(1);
        expect(body.next_cursor).toBeNull();
      });

      it('filters by event_type and by status', async () => {
        const token = await freshAccount();
        const signed = await created(token, SEED_REQUEST);
        const sent = await created(token, { ...SEED_REQUEST, event_type: 'document.sent' });
        const declined = await created(token, { ...SEED_REQUEST, event_type: 'document.declined' });
        expect((await patch(token, sent.id, { status: 'paused' })).statusCode).toBe(200);

        const bySent = (await list(token, '?event_type=document.sent')).json().subscriptions as SubscriptionView[];
        expect(bySent.map((s) => s.id)).toEqual([sent.id]);
        const paused = (await list(token, '?status=paused')).json().subscriptions as SubscriptionView[];
        expect(paused.map((s) => s.id)).toEqual([sent.id]);
        const active = (await list(token, '?status=active')).json().subscriptions as SubscriptionView[];
        expect(active.map((s) => s.id)).toEqual([declined.id, signed.id]);
        const both = (await list(token, '?status=active&event_type=document.signed')).json().subscriptions;
        expect(both.map((s: SubscriptionView) => s.id)).toEqual([signed.id]);
      });

      it('shows only the calling account’s subscriptions', async () => {
        const mine = await freshAccount();
        const theirs = await freshAccount();
        const own = await created(mine, SEED_REQUEST);
        await created(theirs, { ...SEED_REQUEST, target_url: 'https://other.example/hook' });
        const body = (await list(mine)).json();
        expect(body.subscriptions.map((s: SubscriptionView) => s.id)).toEqual([own.id]);
      });

      it.each([
        ['limit=0', 'limit'],
        ['limit=101', 'limit'],
        ['limit=abc', 'limit'],
        ['event_type=document.viewed', 'event_type'],
        ['status=deleted', 'status'],
        ['colour=blue', 'colour'],
      ])('answers 400 for the query %s', async (query, field) => {
        const token = await freshAccount();
        expectFieldError(await list(token, `?${query}`), field);
      });
    });

    it('gives ids that sort in creation order', async () => {
      const token = await freshAccount();
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        ids.push(
          (await created(token, { target_url: `https://your-app.com/order/${i}`, event_type: 'document.sent' })).id,
        );
      }
      expect([...ids].sort()).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
    });

    describe('GET one', () => {
      it('answers the subscription in a subscriptions array', async () => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        const res = await get(token, sub.id);
        expect(res.statusCode).toBe(200);
        expect(res.json()).toEqual({
          subscriptions: [
            {
              id: sub.id,
              target_url: SEED_REQUEST.target_url,
              event_type: 'document.signed',
              event_types: ['document.signed'],
              status: 'active',
              created_at: sub.created_at,
              updated_at: sub.updated_at,
              has_secret_token: true,
              disabled_reason: null,
              rate_limit_per_second: null,
              ordering: 'none',
              last_delivery: null,
              circuit: { state: 'closed', consecutive_failures: 0, reason: null, opened_at: null, next_probe_at: null },
            },
          ],
        });
      });

      it.each(['sub_01ARZ3NDEKTSV4RRFFQ69G5FAV', 'nope', 'evt_01ARZ3NDEKTSV4RRFFQ69G5FAV'])(
        'answers 404 for an unknown id %s',
        async (id) => {
          const token = await freshAccount();
          expectError(await get(token, id), 404, 'not_found');
        },
      );

      it('answers 401 without a valid token', async () => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        expectUnauthorized(await get(null, sub.id));
      });
    });

    describe('PATCH', () => {
      it('changes target_url', async () => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        const res = await patch(token, sub.id, { target_url: 'https://your-app.com/webhooks/v2' });
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json().subscriptions[0]).toMatchObject({
          id: sub.id,
          target_url: 'https://your-app.com/webhooks/v2',
          event_type: 'document.signed',
          status: 'active',
          created_at: sub.created_at,
        });
        expect((await get(token, sub.id)).json().subscriptions[0].target_url).toBe('https://your-app.com/webhooks/v2');
      });

      it('pauses and resumes', async () => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        expect((await patch(token, sub.id, { status: 'paused' })).json().subscriptions[0].status).toBe('paused');
        expect((await get(token, sub.id)).json().subscriptions[0].status).toBe('paused');
        expect((await patch(token, sub.id, { status: 'active' })).json().subscriptions[0].status).toBe('active');
        expect((await get(token, sub.id)).json().subscriptions[0].status).toBe('active');
      });

      it('sets and removes the secret_token, and has_secret_token follows', async () => {
        const token = await freshAccount();
        const sub = await created(token, { target_url: SEED_REQUEST.target_url, event_type: 'document.sent' });
        expect(sub.has_secret_token).toBe(false);
        const set = await patch(token, sub.id, { secret_token: 'new-secret' });
        expect(set.json().subscriptions[0].has_secret_token).toBe(true);
        expect((await get(token, sub.id)).json().subscriptions[0].has_secret_token).toBe(true);
        const removed = await patch(token, sub.id, { secret_token: null });
        expect(removed.statusCode).toBe(200);
        expect(removed.json().subscriptions[0].has_secret_token).toBe(false);
        expect((await get(token, sub.id)).json().subscriptions[0].has_secret_token).toBe(false);
      });

      it('answers 409 when the new target_url conflicts with another subscription of the same event_type', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        const other = await created(token, { ...SEED_REQUEST, target_url: 'https://your-app.com/other' });
        expectError(await patch(token, other.id, { target_url: SEED_REQUEST.target_url }), 409, 'subscription_exists');
        expect((await get(token, other.id)).json().subscriptions[0].target_url).toBe('https://your-app.com/other');
      });

      it('allows the target_url of a subscription with another event_type', async () => {
        const token = await freshAccount();
        await created(token, SEED_REQUEST);
        const other = await created(token, { target_url: 'https://your-app.com/other', event_type: 'document.sent' });
        const res = await patch(token, other.id, { target_url: SEED_REQUEST.target_url });
        expect(res.statusCode, res.body).toBe(200);
      });

      it.each([
        ['an empty body', {}, 'body'],
        ['status "disabled"', { status: 'disabled' }, 'status'],
        ['status "bogus"', { status: 'bogus' }, 'status'],
        ['a relative target_url', { target_url: '/hooks' }, 'target_url'],
        ['an http target_url', { target_url: 'http://your-app.com/hooks' }, 'target_url'],
        ['a numeric secret_token', { secret_token: 5 }, 'secret_token'],
        ['an unknown field', { events: ['document.sent'] }, 'events'],
      ])('answers 400 for %s', async (_label, payload, field) => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        const res = await patch(token, sub.id, payload);
        expectError(res, 400, 'validation_failed');
        expect(res.json().error.message).toContain(field);
        expect((await get(token, sub.id)).json().subscriptions[0]).toMatchObject({
          target_url: SEED_REQUEST.target_url,
          status: 'active',
          event_type: 'document.signed',
        });
      });

      it('answers 404 for an unknown id', async () => {
        const token = await freshAccount();
        expectError(await patch(token, 'sub_01ARZ3NDEKTSV4RRFFQ69G5FAV', { status: 'paused' }), 404, 'not_found');
      });
    });

    describe('delivery controls and operational event types', () => {
      it('takes rate_limit_per_second and ordering at creation, shows them, and changes or lifts them with PATCH', async () => {
        const token = await freshAccount();
        const plain = await created(token, SEED_REQUEST);
        expect(plain).toMatchObject({ rate_limit_per_second: null, ordering: 'none' });
        const sub = await created(token, {
          target_url: 'https://your-app.com/controlled',
          event_type: 'document.sent',
          rate_limit_per_second: 10_000,
          ordering: 'document',
        });
        expect(sub).toMatchObject({ rate_limit_per_second: 10_000, ordering: 'document' });
        expect((await get(token, sub.id)).json().subscriptions[0]).toMatchObject({
          rate_limit_per_second: 10_000,
          ordering: 'document',
        });
        const listed = await service.request({ method: 'GET', url: PATH, token });
        expect(listed.json().subscriptions.find((s: SubscriptionView) => s.id === sub.id)).toMatchObject({
          rate_limit_per_second: 10_000,
        });
        const changed = await patch(token, sub.id, { rate_limit_per_second: 1, ordering: 'none' });
        expect(changed.json().subscriptions[0]).toMatchObject({ rate_limit_per_second: 1, ordering: 'none' });
        const lifted = await patch(token, sub.id, { rate_limit_per_second: null });
        expect(lifted.json().subscriptions[0]).toMatchObject({ rate_limit_per_second: null, ordering: 'none' });
      });

      it.each([
        ['a rate limit of 0', { rate_limit_per_second: 0 }, 'rate_limit_per_second'],
        ['a rate limit over 10,000', { rate_limit_per_second: 10_001 }, 'rate_limit_per_second'],
        ['a fractional rate limit', { rate_limit_per_second: 2.5 }, 'rate_limit_per_second'],
        ['a rate limit as text', { rate_limit_per_second: '20' }, 'rate_limit_per_second'],
        ['an unknown ordering', { ordering: 'fifo' }, 'ordering'],
        ['an unknown event type', { event_type: 'delivery.lost' }, 'event_type'],
      ])('answers 400 for %s, at creation and in PATCH, and changes nothing', async (_label, fields, field) => {
        const token = await freshAccount();
        expectFieldError(await create(token, { ...SEED_REQUEST, ...fields }), field);
        expect((await service.request({ method: 'GET', url: PATH, token })).json().subscriptions).toEqual([]);
        const sub = await created(token, SEED_REQUEST);
        expectFieldError(await patch(token, sub.id, fields), field);
        expect((await get(token, sub.id)).json().subscriptions[0]).toMatchObject({
          rate_limit_per_second: null,
          ordering: 'none',
          event_type: 'document.signed',
        });
      });

      it('subscribes to the operational events, alone or beside document events, and filters by them', async () => {
        const token = await freshAccount();
        const ops = await created(token, {
          target_url: 'https://ops.example.com/hooks',
          event_types: ['subscription.disabled', 'delivery.failed'],
        });
        expect(ops.event_types).toEqual(['subscription.disabled', 'delivery.failed']);
        const single = await created(token, {
          target_url: 'https://ops.example.com/one',
          event_type: 'delivery.failed',
        });
        expect(single.event_type).toBe('delivery.failed');
        const all = await created(token, {
          target_url: 'https://ops.example.com/all',
          event_types: [
            'document.sent',
            'document.signed',
            'document.declined',
            'subscription.disabled',
            'delivery.failed',
          ],
        });
        expect(all.event_types).toHaveLength(5);
        const filtered = await service.request({ method: 'GET', url: `${PATH}?event_type=delivery.failed`, token });
        expect(
          filtered
            .json()
            .subscriptions.map((s: SubscriptionView) => s.id)
            .sort(),
        ).toEqual([ops.id, single.id, all.id].sort());
      });

      it('refuses to publish an operational event through the API: countersign makes those itself', async () => {
        const token = await freshAccount();
        const res = await service.request({
          method: 'POST',
          url: '/v1/events',
          token,
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify({
            event: 'delivery.failed',
            data: { document_id: 'doc_1', signer_email: 'a@example.com', audit_url: 'https://example.com/a' },
          }),
        });
        expectFieldError(res, 'event');
      });
    });

    describe('DELETE', () => {
      it('answers 204, then the subscription is gone from GET and the list', async () => {
        const token = await freshAccount();
        const sub = await created(token, SEED_REQUEST);
        const res = await service.request({ method: 'DELETE', url: `${PATH}/${sub.id}`, token });
        expect(res.statusCode).toBe(204);
        expect(res.body).toBe('');
        expectError(await get(token, sub.id), 404, 'not_found');
        expect((await list(token)).json().subscriptions).toEqual([]);
        expectError(await patch(token, sub.id, { status: 'paused' }), 404, 'not_found');
        const again = await service.request({ method: 'DELETE', url: `${PATH}/${sub.id}`, token });
        expectError(again, 404, 'not_found');
      });
    });

    describe('isolation between accounts', () => {
      it('answers 404 to another account on GET, PATCH and DELETE, and leaves the subscription unchanged', async () => {
        const owner = await freshAccount();
        const stranger = await freshAccount();
        const sub = await created(owner, SEED_REQUEST);
        const before = (await get(owner, sub.id)).json();

        expectError(await get(stranger, sub.id), 404, 'not_found');
        expectError(
          await patch(stranger, sub.id, {
            target_url: 'https://evil.example/steal',
            status: 'paused',
            secret_token: null,
          }),
          404,
          'not_found',
        );
        expectError(
          await service.request({ method: 'DELETE', url: `${PATH}/${sub.id}`, token: stranger }),
          404,
          'not_found',
        );

        expect((await get(owner, sub.id)).json()).toEqual(before);
        expect(before.subscriptions[0]).toMatchObject({ status: 'active', has_secret_token: true });
      });
    });

    describe('token scopes', () => {
      it('answers 403 to a read-only token on POST, PATCH and DELETE, and 200 on GET', async () => {
        const name = `acct-${randomBytes(6).toString('hex')}`;
        const owner = await service.tokenFor(name);
        const reader = await service.tokenFor(name, { scopes: ['read'] });
        expect(reader.accountId).toBe(owner.accountId);
        const sub = await created(owner.token, SEED_REQUEST);
        expectError(await create(reader.token, { ...SEED_REQUEST, event_type: 'document.sent' }), 403, 'forbidden');
        expectError(await patch(reader.token, sub.id, { status: 'paused' }), 403, 'forbidden');
        expectError(
          await service.request({ method: 'DELETE', url: `${PATH}/${sub.id}`, token: reader.token }),
          403,
          'forbidden',
        );
        const res = await get(reader.token, sub.id);
        expect(res.statusCode).toBe(200);
        expect(res.json().subscriptions[0].status).toBe('active');
        expect((await list(reader.token)).json().subscriptions).toHaveLength(1);
      });
    });
  });
});

describe.each(DIALECTS)('the subscriptions quota on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    afterEach(async () => {
      await service?.close();
      service = undefined;
    });

    const body = (n: number) => ({ ...SEED_REQUEST, target_url: `https://your-app.com/hooks/${n}` });

    it('refuses a create past COUNTERSIGN_MAX_SUBSCRIPTIONS with a 409 that says so, even when creates race', async () => {
      const svc = await startTestService(dialect, { allowInsecureTargets: false, quotas: { subscriptions: 5 } });
      service = svc;
      const create = (n: number, token?: string) =>
        svc.request({ method: 'POST', url: PATH, payload: body(n), ...(token ? { token } : {}) });
      // Twelve at once: exactly five get a place, whatever the order.
      const answers = await Promise.all(Array.from({ length: 12 }, (_, n) => create(n)));
      expect(answers.filter((a) => a.statusCode === 200)).toHaveLength(5);
      const refused = answers.filter((a) => a.statusCode !== 200);
      expect(refused).toHaveLength(7);
      for (const res of refused) {
        expect(expectError(res, 409, 'quota_exceeded').message).toBe(
          'this account has 5 subscriptions, as many as it may (COUNTERSIGN_MAX_SUBSCRIPTIONS); delete one first',
        );
      }
      const listed = (await svc.request({ method: 'GET', url: PATH })).json().subscriptions as { id: string }[];
      expect(listed).toHaveLength(5);
      // Deleting one frees its place; another account has places of its own.
      expect((await svc.request({ method: 'DELETE', url: `${PATH}/${listed[0]?.id}` })).statusCode).toBe(204);
      expect((await create(100)).statusCode).toBe(200);
      expect((await create(101)).statusCode).toBe(409);
      const other = await svc.tokenFor('globex');
      expect((await create(102, other.token)).statusCode).toBe(200);
    });
  });
});
