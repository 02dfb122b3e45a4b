// The API of the operability work, end to end on every dialect with real receivers: event_types
// on subscriptions, rotations that keep each secret to its own expiry, the callback's signing
// secret, recovering what a disabled subscription missed, delivering one event again, test events
// that name their type, the richer delivery log, and /openapi.json describing the webhooks.
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { apiOf, eventually, headerOf, payloadOf, SIGNED_DATA } from './helpers/api-client.js';
import { DIALECTS, dialectLabel } from './helpers/databases.js';
import { type Receiver, type Responder, startReceiver } from './helpers/receiver.js';
import { startTestService, type TestService } from './helpers/service.js';

const SUBSCRIPTIONS = '/v1/webhooks/subscriptions';

describe.each(DIALECTS)('operability API on $name', (dialect) => {
  describe.skipIf(!dialect.available)(dialectLabel(dialect), () => {
    let service: TestService | undefined;
    const receivers: Receiver[] = [];

    async function start() {
      service = await startTestService(dialect, { dispatcher: { retrySchedule: [0, 100, 200] } });
      return { service, api: apiOf(service) };
    }

    async function receiver(responder?: Responder): Promise<Receiver> {
      const r = await startReceiver(responder);
      receivers.push(r);
      return r;
    }

    afterEach(async () => {
      await service?.close();
      service = undefined;
      await Promise.all(receivers.splice(0).map((r) => r.close()));
    });

    describe('event_types', () => {
      it('takes event_type or event_types, not both and not neither, and changes them with PATCH', async () => {
        const { service } = await start();
        const create = (payload: Record<string, unknown>) =>
          service.request({
            method: 'POST',
            url: SUBSCRIPTIONS,
            payload: { target_url: 'https://x.test/h', ...payload },
          });
        const both = await create({ event_type: 'document.sent', event_types: ['document.sent'] });
        expect(both.statusCode).toBe(400);
        expect(both.json().error.message).toBe('event_types: give event_type or event_types, not both');
        const neither = await create({});
        expect(neither.statusCode).toBe(400);
        expect(neither.json().error.message).toContain('event_type: is required');
        expect((await create({ event_types: [] })).statusCode).toBe(400);
        expect((await create({ event_types: ['document.sent', 'document.sent'] })).statusCode).toBe(400);
        expect((await create({ event_types: ['document.opened'] })).statusCode).toBe(400);
        expect((await service.request({ method: 'GET', url: SUBSCRIPTIONS })).json().subscriptions).toEqual([]);

        const made = await create({ event_types: ['document.sent', 'document.signed'] });
        expect(made.statusCode, made.body).toBe(200);
        const sub = made.json().subscriptions[0];
        const clash = await create({ event_type: 'document.signed' });
        expect(clash.statusCode).toBe(409);
        expect(clash.json().error).toMatchObject({
          code: 'subscription_exists',
          message: expect.stringContaining('a subscription with this target_url and event_type already exists'),
        });
        const patched = await service.request({
          method: 'PATCH',
          url: `${SUBSCRIPTIONS}/${sub.id}`,
          payload: { event_type: 'document.declined' },
        });
        expect(patched.json().subscriptions[0]).toMatchObject({
          event_type: 'document.declined',
          event_types: ['document.declined'],
        });
        // Its old types are free again at that URL.
        expect((await create({ event_types: ['document.sent', 'document.signed'] })).statusCode).toBe(200);
        const listed = await service.request({ method: 'GET', url: `${SUBSCRIPTIONS}?event_type=document.signed` });
        expect(listed.json().subscriptions).toHaveLength(1);
      });
    });

    describe('rotations', () => {
      it('keeps the first secret signing until its own expiry when rotated again within its grace period', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const sub = await api.subscribe(`${rx.url}/hook`);
        const rotate = async (grace: number) =>
          (
            await service.request({
              method: 'POST',
              url: `${SUBSCRIPTIONS}/${sub.id}/rotate-secret`,
              payload: { grace_period_seconds: grace },
            })
          ).json().subscriptions[0];
        const second = await rotate(3600);
        const third = await rotate(7200);
        expect(third.previous_secrets_expire_at).toEqual([
          third.previous_secret_expires_at,
          second.previous_secret_expires_at,
        ]);
        await api.published();
        const [got] = await rx.waitFor(1);
        if (!got) throw new Error('nothing received');
        expect((headerOf(got, 'webhook-signature') ?? '').split(' ')).toHaveLength(3);
        for (const secret of [sub.secret, second.signing_secret, third.signing_secret]) {
          expect(new Webhook(secret).verify(got.body, got.headers as Record<string, string>)).toBeTruthy();
        }
      });

      it('makes the callback signing secret with an optional body, and says the callback is signed', async () => {
        const { service } = await start();
        const before = await service.request({ method: 'GET', url: '/api/sign/v1/callback' });
        expect(before.json()).toMatchObject({ signed: false });
        const first = await service.request({ method: 'POST', url: '/api/sign/v1/callback/rotate-secret' });
        expect(first.json()).toEqual({
          signing_secret: expect.stringMatching(/^whsec_/),
          previous_secret_expires_at: null,
          previous_secrets_expire_at: [],
        });
        const second = await service.request({
          method: 'POST',
          url: '/api/sign/v1/callback/rotate-secret',
          payload: { grace_period_seconds: 60 },
        });
        expect(second.json().previous_secret_expires_at).toEqual(expect.stringMatching(/Z$/));
        expect(second.json().signing_secret).not.toBe(first.json().signing_secret);
        expect((await service.request({ method: 'GET', url: '/api/sign/v1/callback' })).json()).toMatchObject({
          callbackUrl: '',
          enabled: false,
          signed: true,
        });
        const tooLong = await service.request({
          method: 'POST',
          url: '/api/sign/v1/callback/rotate-secret',
          payload: { grace_period_seconds: 8 * 86400 },
        });
        expect(tooLong.statusCode).toBe(400);
      });
    });

    describe('recover and deliver', () => {
      it('recovers what a subscription missed while disabled, once it is active again', async () => {
        const { service, api } = await start();
        let gone = true;
        const rx = await receiver(() => (gone ? { status: 410, body: 'gone' } : { status: 200, body: 'ok' }));
        const sub = await api.subscribe(`${rx.url}/hook`);
        const since = new Date().toISOString();
        const first = await api.published();
        await api.settled(first.id, 'failed', 1);
        expect((await api.subscription(sub.id)).status).toBe('disabled');
        const missed = [await api.published(), await api.published()];
        expect(missed.map((e) => e.deliveries)).toEqual([0, 0]);

        gone = false;
        await api.patch(sub.id, { status: 'active' });
        const res = await service.request({
          method: 'POST',
          url: `${SUBSCRIPTIONS}/${sub.id}/recover`,
          payload: { since },
        });
        expect(res.statusCode, res.body).toBe(202);
        expect(res.json()).toEqual({ recovered: 2, complete: true, next_since: null });
        for (const event of missed) await api.settled(event.id, 'delivered', 1);
        expect(rx.requests.map((r) => payloadOf(r).id)).toEqual(expect.arrayContaining(missed.map((e) => e.id)));
        const again = await service.request({
          method: 'POST',
          url: `${SUBSCRIPTIONS}/${sub.id}/recover`,
          payload: { since },
        });
        expect(again.json()).toEqual({ recovered: 0, complete: true, next_since: null });

        const bad = await service.request({
          method: 'POST',
          url: `${SUBSCRIPTIONS}/${sub.id}/recover`,
          payload: { since: '2025-02-30T00:00:00Z' },
        });
        expect(bad.statusCode).toBe(400);
      });

      it('delivers one event to one subscription again, even after it was delivered', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        const sub = await api.subscribe(`${rx.url}/hook`);
        const event = await api.published();
        await api.settled(event.id, 'delivered', 1);
        const res = await service.request({
          method: 'POST',
          url: `/v1/events/${event.id}/deliver`,
          payload: { subscription_id: sub.id },
        });
        expect(res.statusCode, res.body).toBe(202);
        expect(res.json()).toMatchObject({ event_id: event.id, subscription_id: sub.id, target_url: `${rx.url}/hook` });
        await rx.waitFor(2);
        expect(rx.requests.map((r) => headerOf(r, 'webhook-id'))).toEqual([event.id, event.id]);
        const other = await api.subscribe(`${rx.url}/sent`, 'document.sent');
        const wrongType = await service.request({
          method: 'POST',
          url: `/v1/events/${event.id}/deliver`,
          payload: { subscription_id: other.id },
        });
        expect(wrongType.statusCode).toBe(409);
        const unknown = await service.request({
          method: 'POST',
          url: '/v1/events/evt_01JZZZZZZZZZZZZZZZZZZZZZZZ/deliver',
          payload: { subscription_id: sub.id },
        });
        expect(unknown.statusCode).toBe(404);
      });
    });

    describe('test events', () => {
      it('sends the event type asked for, refuses one the subscription does not take', async () => {
        const { service } = await start();
        const rx = await receiver();
        const made = await service.request({
          method: 'POST',
          url: SUBSCRIPTIONS,
          payload: { target_url: `${rx.url}/all`, event_types: ['document.sent', 'document.declined'] },
        });
        const sub = made.json().subscriptions[0];
        const test = (payload?: Record<string, unknown>) =>
          service.request({ method: 'POST', url: `${SUBSCRIPTIONS}/${sub.id}/test`, ...(payload ? { payload } : {}) });
        expect((await test()).json()).toMatchObject({ event_type: 'document.sent', deliveries: 1 });
        expect((await test({ event_type: 'document.declined' })).json()).toMatchObject({
          event_type: 'document.declined',
        });
        const refused = await test({ event_type: 'document.signed' });
        expect(refused.statusCode).toBe(400);
        expect(refused.json().error.message).toContain('event_type: this subscription does not take document.signed');
        expect((await test({ event_type: 'document.sent', extra: 1 })).statusCode).toBe(400);
        const got = await rx.waitFor(2);
        expect(got.map((r) => [payloadOf(r).event, payloadOf(r).test])).toEqual(
          expect.arrayContaining([
            ['document.sent', true],
            ['document.declined', true],
          ]),
        );
      });
    });

    describe('the delivery log', () => {
      it('filters by document and by target kind, and masks the callback Authorization', async () => {
        const { service, api } = await start();
        const rx = await receiver();
        await api.subscribe(`${rx.url}/hook`, 'document.signed', 'shhh_its_a_secret');
        await api.registerCallback({
          callbackUrl: `${rx.url}/cb`,
          authType: 'Bearer',
          bearerToken: 'the-callback-token',
        });
        const a = await api.published('document.signed', { ...SIGNED_DATA, document_id: 'doc_a' });
        const b = await api.published('document.signed', { ...SIGNED_DATA, document_id: 'doc_b' });
        await eventually('four deliveries', async () => {
          const all = await api.deliveriesOf('status=delivered');
          return all.length === 4 ? all : undefined;
        });
        const ofA = await api.deliveriesOf('document_id=doc_a');
        expect(ofA.map((d) => d.event_id)).toEqual([a.id, a.id]);
        const toCallback = await api.deliveriesOf('target=callback');
        expect(toCallback.map((d) => d.target)).toEqual(['callback', 'callback']);
        expect(toCallback.map((d) => d.event_id).sort()).toEqual([a.id, b.id].sort());
        const toSubs = await api.deliveriesOf('target=subscription&document_id=doc_b');
        expect(toSubs.map((d) => [d.target, d.event_id])).toEqual([['subscription', b.id]]);
        expect((await service.request({ method: 'GET', url: '/v1/deliveries?target=webhook' })).statusCode).toBe(400);

        const detail = await api.delivery(toCallback[0]?.id ?? '');
        expect(detail.target_url).toBe(`${rx.url}/cb`);
        expect(detail.request?.headers.authorization).toBe('Bearer ********');
        expect(detail.attempts?.[0]?.request_headers?.authorization).toBe('Bearer ********');
        expect(JSON.stringify(detail)).not.toContain('the-callback-token');
        const toSub = (await api.deliveriesOf(`target=subscription&event_id=${a.id}`))[0];
        const subDetail = await api.delivery(toSub?.id ?? '');
        expect(JSON.parse(subDetail.request?.body ?? '{}')).toMatchObject({ id: a.id, secret_token: '********' });
        expect(JSON.stringify(subDetail)).not.toContain('shhh_its_a_secret');
      });
    });

    describe('/openapi.json', () => {
      it('is valid and describes every webhook: its payload, which real deliveries match, and every header', async () => {
        const { service, api } = await start();
        const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
        const validation = await new Validator().validate(doc);
        expect(validation.errors ?? []).toEqual([]);
        expect(Object.keys(doc.webhooks).sort()).toEqual([
          'delivery.failed',
          'document.completed',
          'document.declined',
          'document.sent',
          'document.signed',
          'endpoint.circuit_closed',
          'endpoint.circuit_opened',
          'subscription.disabled',
        ]);
        const rx = await receiver();
        await api.subscribe(`${rx.url}/hook`, 'document.declined', 'shhh');
        await api.published('document.declined', { ...SIGNED_DATA, reason: 'typo' });
        const [got] = await rx.waitFor(1);
        if (!got) throw new Error('nothing received');
        const hook = doc.webhooks['document.declined'].post;
        const ajv = addFormats.default(new Ajv2020({ strict: false }));
        const schema = hook.requestBody.content['application/json'].schema;
        expect(ajv.validate(schema, payloadOf(got)), JSON.stringify(ajv.errors)).toBe(true);
        expect(ajv.validate(schema, { ...payloadOf(got), event: 'document.sent' })).toBe(false);
        const documentedHeaders = hook.parameters.map((p: { name: string }) => p.name);
        for (const name of [
          'content-type',
          'user-agent',
          'webhook-id',
          'webhook-timestamp',
          'webhook-signature',
          'webhook-subscription-id',
        ]) {
          expect(got.headers[name], name).toBeDefined();
          expect(documentedHeaders).toContain(name);
        }
        expect(documentedHeaders).toContain('authorization');

        // An operational event, as a real one arrives, matches its own schema (and not another's).
        const ops = await receiver();
        const gone = await receiver(() => ({ status: 410 }));
        await api.subscribe(`${ops.url}/ops`, 'delivery.failed');
        await api.subscribe(`${gone.url}/gone`, 'document.signed');
        await api.published('document.signed', SIGNED_DATA);
        const [failed] = await ops.waitFor(1);
        if (!failed) throw new Error('no delivery.failed received');
        const opsSchema = doc.webhooks['delivery.failed'].post.requestBody.content['application/json'].schema;
        expect(ajv.validate(opsSchema, payloadOf(failed)), JSON.stringify(ajv.errors)).toBe(true);
        expect(ajv.validate(schema, payloadOf(failed))).toBe(false);
        const disabledSchema =
          doc.webhooks['subscription.disabled'].post.requestBody.content['application/json'].schema;
        expect(ajv.validate(disabledSchema, payloadOf(failed))).toBe(false);
      });

      it('documents on every route the answers any route can give, 413 and 415 included', async () => {
        const { service } = await start();
        const doc = (await service.request({ method: 'GET', url: '/openapi.json', token: null })).json();
        const operations = Object.entries(doc.paths as Record<string, Record<string, { responses: object }>>).flatMap(
          ([path, item]) =>
            Object.entries(item).map(([method, op]) => ({ path, method, statuses: Object.keys(op.responses) })),
        );
        expect(operations.length).toBeGreaterThan(20);
        for (const { path, method, statuses } of operations) {
          const common = ['/healthz', '/readyz'].includes(path)
            ? ['413', '415', '500']
            : ['400', '401', '403', '413', '415', '429', '500', '503'];
          expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(common));
        }
      });
    });
  });
});
