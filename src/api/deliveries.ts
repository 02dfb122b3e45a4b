// The delivery log and the recovery tools: list and inspect deliveries with every attempt,
// redeliver one now, replay a subscription's failures over a window, and send a test event.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { toIsoMillis } from '../domain/time.js';
import { CountersignError, notFound } from '../errors.js';
import type { Attempt, Delivery } from '../store/store.js';
import type { AppContext } from './context.js';
import { errors, IdParams, NextCursor, PageQuery } from './schemas.js';
import { parseWindow, timestampField } from './window.js';

const DeliveryStatus = Type.String({ enum: ['pending', 'sending', 'delivered', 'failed', 'held', 'cancelled'] });

const AttemptView = Type.Object({
  number: Type.Integer(),
  trigger: Type.String({ enum: ['scheduled', 'manual'] }),
  started_at: Type.String({ format: 'date-time' }),
  duration_ms: Type.Integer(),
  status_code: Type.Union([Type.Integer(), Type.Null()]),
  error: Type.Union([Type.String(), Type.Null()]),
  response_excerpt: Type.Union([Type.String(), Type.Null()], { description: 'first 4 KiB of the response body' }),
});

const DeliveryView = Type.Object({
  id: Type.String(),
  event_id: Type.String(),
  subscription_id: Type.Union([Type.String(), Type.Null()]),
  target: Type.String({ enum: ['subscription', 'callback'] }),
  status: DeliveryStatus,
  attempt_count: Type.Integer(),
  next_attempt_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  delivered_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  last_attempt: Type.Optional(Type.Union([AttemptView, Type.Null()])),
  attempts: Type.Optional(Type.Array(AttemptView)),
});

const ListQuery = Type.Object(
  {
    ...PageQuery,
    subscription_id: Type.Optional(Type.String({ maxLength: 64 })),
    event_id: Type.Optional(Type.String({ maxLength: 64 })),
    status: Type.Optional(DeliveryStatus),
    since: Type.Optional(Type.String({ description: 'RFC 3339; created at or after' })),
    until: Type.Optional(Type.String({ description: 'RFC 3339; created before' })),
  },
  { additionalProperties: false },
);

const ReplayBody = Type.Object(
  {
    since: Type.String({ description: 'RFC 3339' }),
    until: Type.Optional(Type.String({ description: 'RFC 3339; default now' })),
  },
  { additionalProperties: false },
);

function presentAttempt(a: Attempt): Static<typeof AttemptView> {
  return {
    number: a.number,
    trigger: a.trigger,
    started_at: toIsoMillis(a.started_at),
    duration_ms: a.duration_ms,
    status_code: a.status_code,
    error: a.error,
    response_excerpt: a.response_excerpt,
  };
}

function presentDelivery(d: Delivery): Static<typeof DeliveryView> {
  return {
    id: d.id,
    event_id: d.event_id,
    subscription_id: d.subscription_id,
    target: d.subscription_id === null ? 'callback' : 'subscription',
    status: d.status,
    attempt_count: d.attempt_count,
    next_attempt_at: d.status === 'pending' ? toIsoMillis(d.next_attempt_at) : null,
    created_at: toIsoMillis(d.created_at),
    updated_at: toIsoMillis(d.updated_at),
    delivered_at: d.delivered_at === null ? null : toIsoMillis(d.delivered_at),
  };
}

const TEST_DATA = {
  document_id: 'doc_test',
  signer_email: 'signer@example.com',
  audit_url: 'https://example.com/audit/doc_test',
  test: true,
};

export function deliveryRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/deliveries',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['deliveries'],
          summary: 'The delivery log, newest first, each with its latest attempt',
          querystring: ListQuery,
          response: {
            200: Type.Object({ deliveries: Type.Array(DeliveryView), next_cursor: NextCursor }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await ctx.store.listDeliveries(request.principal.accountId, {
          limit: q.limit ?? 20,
          cursor: q.cursor,
          subscriptionId: q.subscription_id,
          eventId: q.event_id,
          status: q.status as Delivery['status'] | undefined,
          ...parseWindow(q.since, q.until),
        });
        const attempts = await ctx.store.listAttempts(page.items.map((d) => d.id));
        const latest = new Map<string, Attempt>();
        for (const a of attempts) latest.set(a.delivery_id, a);
        return {
          deliveries: page.items.map((d) => {
            const last = latest.get(d.id);
            return { ...presentDelivery(d), last_attempt: last ? presentAttempt(last) : null };
          }),
          next_cursor: page.nextCursor,
        };
      },
    );

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/deliveries/:id',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['deliveries'],
          summary: 'One delivery with every attempt',
          params: IdParams,
          response: { 200: DeliveryView, ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const delivery = await ctx.store.getDelivery(request.principal.accountId, request.params.id);
        if (!delivery) throw notFound('delivery');
        const attempts = await ctx.store.listAttempts([delivery.id]);
        return { ...presentDelivery(delivery), attempts: attempts.map(presentAttempt) };
      },
    );

    app.post<{ Params: Static<typeof IdParams> }>(
      '/v1/deliveries/:id/redeliver',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['deliveries'],
          summary: 'Queue one manual attempt now',
          params: IdParams,
          response: { 202: DeliveryView, ...errors(401, 403, 404, 409) },
        },
      },
      async (request, reply) => {
        const outcome = await ctx.store.requestRedelivery(request.principal.accountId, request.params.id, Date.now());
        if (outcome === undefined) throw notFound('delivery');
        if (outcome === 'in_flight')
          throw new CountersignError('delivery_in_flight', 'this delivery is being sent right now; try again shortly');
        if (outcome === 'cancelled')
          throw new CountersignError('conflict', 'this delivery was cancelled with its subscription');
        return reply.code(202).send(presentDelivery(outcome));
      },
    );

    app.post<{ Params: Static<typeof IdParams>; Body: Static<typeof ReplayBody> }>(
      '/v1/webhooks/subscriptions/:id/replay',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Re-queue every failed delivery created in [since, until)',
          params: IdParams,
          body: ReplayBody,
          response: { 202: Type.Object({ requeued: Type.Integer() }), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        const now = Date.now();
        const since = timestampField('since', request.body.since);
        const until = request.body.until === undefined ? now + 1 : timestampField('until', request.body.until);
        parseWindow(request.body.since, request.body.until);
        const sub = await ctx.store.getSubscription(request.principal.accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        const requeued = await ctx.store.replayFailed(request.principal.accountId, sub.id, since, until, now);
        return reply.code(202).send({ requeued });
      },
    );

    app.post<{ Params: Static<typeof IdParams> }>(
      '/v1/webhooks/subscriptions/:id/test',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Send a test event to this subscription only; it shows in the log',
          params: IdParams,
          response: {
            202: Type.Object({ event_id: Type.String(), deliveries: Type.Integer() }),
            ...errors(401, 403, 404),
          },
        },
      },
      async (request, reply) => {
        const sub = await ctx.store.getSubscription(request.principal.accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        const result = await ctx.publisher.add({
          accountId: sub.account_id,
          type: sub.event_type,
          dataJson: JSON.stringify(TEST_DATA),
          occurredAt: Date.now(),
          onlySubscriptionId: sub.id,
        });
        if (!result.ok) throw new CountersignError('internal_error', 'test event was not queued');
        return reply.code(202).send({ event_id: result.event.id, deliveries: result.event.deliveryCount });
      },
    );
  };
}
