// Tokens, scopes, limits, signing-secret rotation and tenant isolation, on every dialect.
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { type Receiver, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';

const DATA = { document_id: 'doc_1', signer_email: 'client@example.com', audit_url: 'https://congasign.com/audit/1' };

function headersOf(r: { headers: Record<string, unknown> }) {
  return {
    'webhook-id': r.headers['webhook-id'] as string,
    'webhook-timestamp': r.headers['webhook-timestamp'] as string,
    'webhook-signature': r.headers['webhook-signature'] as string,
  };
}

describe.each(DIALECTS)('security on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService;
    let receiver: Receiver;
    beforeAll(async () => {
      service = await startTestService(dialect, { dispatcher: true });
      receiver = await startReceiver();
    });
    afterAll(async () => {
      await service?.close();
      await receiver?.close();
    });

    async function subscribe(path: string, token?: string) {
      const res = await service.request({
        method: 'POST',
        url: '/v1/webhooks/subscriptions',
        payload: { target_url: `${receiver.url}${path}`, event_type: 'document.signed' },
        ...(token ? { token } : {}),
      });
      expect(res.statusCode).toBe(200);
      return res.json().subscriptions[0] as { id: string; signing_secret: string };
    }

    it('signs with both the old and the new secret during a rotation grace period, and keeps each until its own expiry', async () => {
      const sub = await subscribe('/rotation');
      const rotated = await service.request({
        method: 'POST',
        url: `/v1/webhooks/subscriptions/${sub.id}/rotate-secret`,
        payload: {},
      });
      expect(rotated.statusCode).toBe(200);
      const entry = rotated.json().subscriptions[0];
      expect(entry.signing_secret).toMatch(/^whsec_/);
      expect(entry.signing_secret).not.toBe(sub.signing_secret);
      const grace = Date.parse(entry.previous_secret_expires_at) - Date.now();
      expect(grace).toBeGreaterThan(23 * 3600_000);
      expect(grace).toBeLessThanOrEqual(24 * 3600_000);

      const before = receiver.requests.length;
      await service.request({ method: 'POST', url: '/v1/events', payload: { event: 'document.signed', data: DATA } });
      const got = (await receiver.waitFor(before + 1)).filter((r) => r.url === '/rotation');
      const last = got[got.length - 1];
      if (!last) throw new Error('nothing received');
      expect((last.headers['webhook-signature'] as string).split(' ')).toHaveLength(2);
      expect(new Webhook(sub.signing_secret).verify(last.body, headersOf(last))).toMatchObject({
        event: 'document.signed',
      });
      expect(new Webhook(entry.signing_secret).verify(last.body, headersOf(last))).toMatchObject({
        event: 'document.signed',
      });

      const immediate = await service.request({
        method: 'POST',
        url: `/v1/webhooks/subscriptions/${sub.id}/rotate-secret`,
        payload: { grace_period_seconds: 0 },
      });
      const newest = immediate.json().subscriptions[0];
      // The secret this rotation replaced stops at once; the first one keeps its announced expiry.
      expect(newest.previous_secret_expires_at).toBeNull();
      expect(newest.previous_secrets_expire_at).toEqual([entry.previous_secret_expires_at]);
      const count = receiver.requests.length;
      await service.request({ method: 'POST', url: '/v1/events', payload: { event: 'document.signed', data: DATA } });
      const after = (await receiver.waitFor(count + 1)).filter((r) => r.url === '/rotation');
      const final = after[after.length - 1];
      if (!final) throw new Error('nothing received');
      expect((final.headers['webhook-signature'] as string).split(' ')).toHaveLength(2);
      expect(() => new Webhook(entry.signing_secret).verify(final.body, headersOf(final))).toThrow();
      expect(new Webhook(newest.signing_secret).verify(final.body, headersOf(final))).toBeTruthy();
      expect(new Webhook(sub.signing_secret).verify(final.body, headersOf(final))).toBeTruthy();
    });

    it('refuses a grace period longer than 7 days or of the wrong type', async () => {
      const sub = await subscribe('/rotation-bad');
      for (const body of [{ grace_period_seconds: 8 * 86_400 }, { grace_period_seconds: '1h' }, { grace: 1 }]) {
        const res = await service.request({
          method: 'POST',
          url: `/v1/webhooks/subscriptions/${sub.id}/rotate-secret`,
          payload: body,
        });
        expect(res.statusCode).toBe(400);
      }
    });

    it('records when a token was last used', async () => {
      const fresh = await service.tokenFor('acme');
      const before = (await service.store.listTokens()).find((t) => t.id === fresh.id);
      expect(before?.lastUsedAt).toBeNull();
      await service.request({ method: 'GET', url: '/v1/webhooks/subscriptions', token: fresh.token });
      await expect
        .poll(async () => (await service.store.listTokens()).find((t) => t.id === fresh.id)?.lastUsedAt, {
          timeout: 5000,
        })
        .toBeGreaterThan(Date.now() - 60_000);
    });

    it('refuses a revoked token at once and an expiring one from its expiry on, each admitted until then', async () => {
      const t = await service.tokenFor('acme');
      expect((await service.request({ method: 'GET', url: '/v1/events', token: t.token })).statusCode).toBe(200);
      await service.store.revokeToken(t.id, Date.now());
      const res = await service.request({ method: 'GET', url: '/v1/events', token: t.token });
      expect(res.statusCode).toBe(401);
      expect(res.json().error.message).toContain('invalid or expired');
      // The same token admitted until its expiry and refused from then on, by the server's clock (this
      // process's): nothing else changes between the two requests.
      const expiresAt = Date.now() + 1_500;
      const expiring = await service.tokenFor('acme', { expiresAt });
      const before = await service.request({ method: 'GET', url: '/v1/events', token: expiring.token });
      expect(before.statusCode, before.body).toBe(200);
      while (Date.now() < expiresAt) await sleep(expiresAt - Date.now());
      const after = await service.request({ method: 'GET', url: '/v1/events', token: expiring.token });
      expect(after.statusCode).toBe(401);
      expect(after.json().error.message).toContain('invalid or expired');
    });

    it('refuses JSON nested deeper than 32 levels with a 400 and stores nothing', async () => {
      let data: Record<string, unknown> = { ...DATA };
      for (let i = 0; i < 40; i++) data = { ...DATA, nested: data };
      const before = (await service.request({ method: 'GET', url: '/v1/events?limit=100' })).json().events.length;
      const res = await service.request({
        method: 'POST',
        url: '/v1/events',
        payload: { event: 'document.signed', data },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toContain('nested deeper');
      // Depth is what is reported when a body is both too deep and holds a NUL before the deep part.
      const both = await service.request({
        method: 'POST',
        url: '/v1/events',
        payload: { event: 'document.signed', data: { note: 'x\u0000', ...data } },
      });
      expect(both.json().error.message).toContain('nested deeper');
      const after = (await service.request({ method: 'GET', url: '/v1/events?limit=100' })).json().events.length;
      expect(after).toBe(before);
    });

    it('refuses a body nested too deep from its text, before parsing it', async () => {
      // Deep and broken at its end: were it parsed first, the answer would be that it is not JSON.
      const before = (await service.request({ method: 'GET', url: '/v1/events?limit=100' })).json().events.length;
      const broken = `{"event":"document.signed","data":${'['.repeat(100)}`;
      const res = await service.request({
        method: 'POST',
        url: '/v1/events',
        headers: { 'content-type': 'application/json' },
        payload: broken,
      });
      expect(res.statusCode).toBe(400);
      expect(res.json().error.message).toContain('nested deeper than 32 levels');
      // Two million levels, 3.8 MiB, on the route that takes the largest bodies.
      const deep = `{"events":${'['.repeat(2_000_000)}${']'.repeat(2_000_000)}}`;
      const batch = await service.request({
        method: 'POST',
        url: '/v1/events/batch',
        headers: { 'content-type': 'application/json' },
        payload: deep,
      });
      expect(batch.statusCode).toBe(400);
      expect(batch.json().error.message).toContain('nested deeper than 32 levels');
      const after = (await service.request({ method: 'GET', url: '/v1/events?limit=100' })).json().events.length;
      expect(after).toBe(before);
    });

    it('refuses U+0000 anywhere in a request with a 400 naming the field, on both dialects alike', async () => {
      const cases = [
        { method: 'GET', url: '/v1/deliveries?event_id=%00', field: 'event_id' },
        { method: 'GET', url: '/v1/webhooks/subscriptions/sub%00x', field: 'id' },
        {
          method: 'PUT',
          url: '/api/sign/v1/callback/register',
          payload: { callbackUrl: 'https://example.com/cb', authType: 'Basic', username: 'a\u0000b', password: 'p' },
          field: 'username',
        },
        {
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.signed', data: { ...DATA, note: 'x\u0000' } },
          field: 'data.note',
        },
        {
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.signed', data: { ...DATA, context: { tags: ['ok', 'x\u0000'] } } },
          field: 'data.context.tags.1',
        },
        {
          method: 'POST',
          url: '/v1/events',
          payload: { event: 'document.signed', data: { ...DATA, 'k\u0000': 1 } },
          field: 'data.k\u0000',
        },
      ] as const;
      for (const { field, ...probe } of cases) {
        const res = await service.request(probe as Parameters<TestService['request']>[0]);
        expect(res.statusCode, probe.url).toBe(400);
        expect(res.json().error.message).toBe(`${field}: must not contain NUL characters`);
      }
    });

    describe('tenant isolation', () => {
      it("answers 404 for another account's ids on every route that takes one, and changes nothing", async () => {
        const other = await service.tokenFor('globex');
        const theirSub = (
          await service.request({
            method: 'POST',
            url: '/v1/webhooks/subscriptions',
            token: other.token,
            payload: {
              target_url: `${receiver.url}/globex`,
              event_type: 'document.signed',
              secret_token: 'globex-secret',
            },
          })
        ).json().subscriptions[0];
        const before = receiver.requests.length;
        const published = (
          await service.request({
            method: 'POST',
            url: '/v1/events',
            token: other.token,
            payload: { event: 'document.signed', data: DATA },
          })
        ).json();
        await receiver.waitFor(before + 1);
        const theirDelivery = (
          await service.request({ method: 'GET', url: `/v1/deliveries?event_id=${published.id}`, token: other.token })
        ).json().deliveries[0];
        expect(theirDelivery).toBeDefined();

        const probes = [
          { method: 'GET', url: `/v1/webhooks/subscriptions/${theirSub.id}` },
          { method: 'PATCH', url: `/v1/webhooks/subscriptions/${theirSub.id}`, payload: { status: 'paused' } },
          { method: 'DELETE', url: `/v1/webhooks/subscriptions/${theirSub.id}` },
          {
            method: 'POST',
            url: `/v1/webhooks/subscriptions/${theirSub.id}/replay`,
            payload: { since: '2020-01-01T00:00:00Z' },
          },
          { method: 'POST', url: `/v1/webhooks/subscriptions/${theirSub.id}/test` },
          { method: 'POST', url: `/v1/webhooks/subscriptions/${theirSub.id}/rotate-secret`, payload: {} },
          { method: 'GET', url: `/v1/events/${published.id}` },
          { method: 'GET', url: `/v1/deliveries/${theirDelivery.id}` },
          { method: 'POST', url: `/v1/deliveries/${theirDelivery.id}/redeliver` },
        ] as const;
        for (const probe of probes) {
          const res = await service.request({ ...probe } as Parameters<TestService['request']>[0]);
          expect(res.statusCode, `${probe.method} ${probe.url}`).toBe(404);
          expect(res.body).not.toContain('globex');
          expect(res.json().error.code).toBe('not_found');
        }
        const lists = await Promise.all(
          [
            `/v1/webhooks/subscriptions`,
            `/v1/events?limit=100`,
            `/v1/deliveries?limit=100`,
            `/v1/deliveries?event_id=${published.id}`,
          ].map((url) => service.request({ method: 'GET', url })),
        );
        for (const list of lists) {
          expect(list.statusCode).toBe(200);
          expect(list.body).not.toContain(theirSub.id);
          expect(list.body).not.toContain(published.id);
        }
        const theirs = await service.request({
          method: 'GET',
          url: `/v1/webhooks/subscriptions/${theirSub.id}`,
          token: other.token,
        });
        expect(theirs.json().subscriptions[0]).toMatchObject({ status: 'active', updated_at: theirSub.updated_at });
        const delivery = await service.request({
          method: 'GET',
          url: `/v1/deliveries/${theirDelivery.id}`,
          token: other.token,
        });
        expect(delivery.json().attempts.every((a: { trigger: string }) => a.trigger === 'scheduled')).toBe(true);
      });
    });
  });
});

describe.each(DIALECTS)('rate limits on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    it('answers 429 with Retry-After once an account passes its limit, whichever of its tokens asks', async () => {
      const service = await startTestService(dialect, { rateLimit: { max: 5, windowMs: 60_000 } });
      try {
        const codes: number[] = [];
        const first = await service.request({ method: 'GET', url: '/v1/events' });
        codes.push(first.statusCode);
        expect(first.headers).toMatchObject({
          'x-ratelimit-limit': '5',
          'x-ratelimit-remaining': '4',
          'x-ratelimit-reset': '60',
        });
        // A request refused by validation counts too: bad requests are no way around the limit.
        const refused = await service.request({ method: 'POST', url: '/v1/events', payload: { event: 'nope' } });
        codes.push(refused.statusCode);
        expect(refused.headers['x-ratelimit-remaining']).toBe('3');
        for (let i = 0; i < 5; i++)
          codes.push((await service.request({ method: 'GET', url: '/v1/events' })).statusCode);
        expect(codes).toEqual([200, 400, 200, 200, 200, 429, 429]);
        const limited = await service.request({ method: 'GET', url: '/v1/events' });
        expect(limited.json().error.code).toBe('rate_limited');
        // The window the limit counts over, then how long until it lets this token in again.
        expect(limited.json().error.message).toMatch(
          /^rate limit of 5 requests per 1 minute exceeded; retry in \d+ (second|minute)s?$/,
        );
        expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
        // Another token of the account shares its window (a fresh token is no way around the limit);
        // another account has a window of its own.
        const sameAccount = await service.tokenFor('acme');
        expect((await service.request({ method: 'GET', url: '/v1/events', token: sameAccount.token })).statusCode).toBe(
          429,
        );
        const other = await service.tokenFor('globex');
        expect((await service.request({ method: 'GET', url: '/v1/events', token: other.token })).statusCode).toBe(200);
      } finally {
        await service.close();
      }
    });
  });
});
