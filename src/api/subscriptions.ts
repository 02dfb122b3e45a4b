// Seed API 2: webhook subscriptions. POST answers exactly as the seed documents (200, a
// `subscriptions` array) and adds event_type and the Standard Webhooks signing secret, which is
// shown in this one response only. secret_token is stored sealed and never echoed. Beyond the
// seed, a subscription may take several event types (`event_types`) at one target_url. GET
// (one, and the list) adds each subscription's last delivery.
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { joinEventTypes, SUBSCRIBABLE_EVENT_TYPES, splitEventTypes } from '../domain/events.js';
import { newId } from '../domain/ids.js';
import { subscriptionSeal } from '../domain/secret-box.js';
import { generateSigningSecret } from '../domain/signing.js';
import { toIsoSeconds } from '../domain/time.js';
import { invalidField, notFound } from '../errors.js';
import type { Subscription } from '../store/store.js';
import { CircuitView, circuitsFor } from './circuit.js';
import type { AppContext } from './context.js';
import { LastDeliveryView, lastDeliveries } from './last-delivery.js';
import { errors, IdParams, NextCursor, PageQuery, SubscribableEventTypeSchema } from './schemas.js';
import { checkTargetUrlResolved } from './target-guard.js';

const SecretToken = Type.String({
  minLength: 1,
  maxLength: 512,
  description: 'echoed in every payload as `secret_token`',
});
const Status = Type.String({ enum: ['active', 'paused', 'disabled'] });

const RateLimit = Type.Integer({
  minimum: 1,
  maximum: 10_000,
  description:
    'At most this many deliveries a second to this subscription, counted across every process. ' +
    'A delivery over the limit waits in the queue; it is not a failed attempt.',
});
const Ordering = Type.String({
  enum: ['none', 'document'],
  description:
    '`document`: deliveries for one data.document_id are sent one at a time, in publish order, each after the ' +
    'one before was delivered or finally failed. Default `none`.',
});

const EventTypes = Type.Array(SubscribableEventTypeSchema, {
  minItems: 1,
  maxItems: SUBSCRIBABLE_EVENT_TYPES.length,
  uniqueItems: true,
  description: 'Instead of event_type: every event type this subscription takes, at one target_url and one secret.',
});

const CreateBody = Type.Object(
  {
    target_url: Type.String({ maxLength: 2048, description: 'absolute https URL' }),
    event_type: Type.Optional({
      ...SubscribableEventTypeSchema,
      description: 'The event type (the seed). Required, unless event_types is given instead.',
    }),
    event_types: Type.Optional(EventTypes),
    secret_token: Type.Optional(SecretToken),
    rate_limit_per_second: Type.Optional(RateLimit),
    ordering: Type.Optional(Ordering),
  },
  { additionalProperties: false },
);

const PatchBody = Type.Object(
  {
    target_url: Type.Optional(Type.String({ maxLength: 2048 })),
    event_type: Type.Optional(SubscribableEventTypeSchema),
    event_types: Type.Optional(EventTypes),
    status: Type.Optional(Type.String({ enum: ['active', 'paused'] })),
    secret_token: Type.Optional(Type.Union([SecretToken, Type.Null()], { description: 'null removes it' })),
    rate_limit_per_second: Type.Optional(
      Type.Union([RateLimit, Type.Null()], { description: 'null removes the limit' }),
    ),
    ordering: Type.Optional(Ordering),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const SubscriptionView = Type.Object({
  id: Type.String(),
  target_url: Type.String(),
  event_type: Type.Optional(
    Type.String({ description: 'The event type, when the subscription takes exactly one (as the seed has it).' }),
  ),
  event_types: Type.Array(Type.String(), { description: 'Every event type the subscription takes.' }),
  status: Status,
  created_at: Type.String({ format: 'date-time' }),
  updated_at: Type.String({ format: 'date-time' }),
  has_secret_token: Type.Boolean(),
  disabled_reason: Type.Union([Type.String(), Type.Null()]),
  rate_limit_per_second: Type.Union([Type.Integer(), Type.Null()], { description: 'null: no limit' }),
  ordering: Ordering,
});

/** What GET answers: the subscription, how its latest delivery went, and its endpoint's circuit. */
const ShownView = Type.Composite([
  SubscriptionView,
  Type.Object({ last_delivery: LastDeliveryView, circuit: CircuitView }),
]);

/** What PATCH answers: the subscription and its endpoint's circuit. */
const UpdatedView = Type.Composite([SubscriptionView, Type.Object({ circuit: CircuitView })]);

const CreatedView = Type.Composite([
  SubscriptionView,
  Type.Object({
    signing_secret: Type.String({ description: 'whsec_… Standard Webhooks secret; shown only in this response' }),
  }),
]);

const ListQuery = Type.Object(
  { ...PageQuery, event_type: Type.Optional(SubscribableEventTypeSchema), status: Type.Optional(Status) },
  { additionalProperties: false },
);

/** event_type or event_types from a body that may hold either; undefined when it holds neither. */
function eventTypesFrom(body: { event_type?: string; event_types?: string[] }): string[] | undefined {
  if (body.event_type !== undefined && body.event_types !== undefined) {
    throw invalidField('event_types', 'give event_type or event_types, not both');
  }
  if (body.event_types !== undefined) return body.event_types;
  return body.event_type === undefined ? undefined : [body.event_type];
}

export function presentSubscription(s: Subscription): Static<typeof SubscriptionView> {
  const types = splitEventTypes(s.event_types);
  return {
    id: s.id,
    target_url: s.target_url,
    ...(types.length === 1 ? { event_type: types[0] as string } : {}),
    event_types: types,
    status: s.status,
    created_at: toIsoSeconds(s.created_at),
    updated_at: toIsoSeconds(s.updated_at),
    has_secret_token: s.secret_token_sealed !== null,
    disabled_reason: s.disabled_reason,
    rate_limit_per_second: s.rate_limit_per_second,
    ordering: s.ordering,
  };
}

export function subscriptionRoutes(ctx: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.post<{ Body: Static<typeof CreateBody> }>(
      '/v1/webhooks/subscriptions',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Create a subscription',
          body: CreateBody,
          response: { 200: Type.Object({ subscriptions: Type.Array(CreatedView) }), ...errors(400, 401, 403, 409) },
        },
      },
      async (request) => {
        const { target_url, secret_token, rate_limit_per_second, ordering } = request.body;
        const eventTypes = eventTypesFrom(request.body);
        if (eventTypes === undefined) throw invalidField('event_type', 'is required (or give event_types)');
        const targetUrl = await checkTargetUrlResolved(target_url, 'target_url', ctx.targetPolicy, ctx.resolve);
        const now = Date.now();
        const signingSecret = generateSigningSecret();
        const row = { id: newId('sub'), account_id: request.principal.accountId };
        const subscription: Subscription = {
          ...row,
          target_url: targetUrl,
          event_types: joinEventTypes(eventTypes),
          status: 'active',
          secret_token_sealed:
            secret_token === undefined ? null : ctx.secrets.seal(secret_token, subscriptionSeal('secret_token', row)),
          signing_secret_sealed: ctx.secrets.seal(signingSecret, subscriptionSeal('signing_secret', row)),
          retired_secrets: '[]',
          disabled_reason: null,
          failing_since: null,
          kind: 'webhook',
          listen_seen_at: null,
          rate_limit_per_second: rate_limit_per_second ?? null,
          ordering: (ordering ?? 'none') as Subscription['ordering'],
          created_at: now,
          updated_at: now,
          deleted_at: null,
        };
        await ctx.store.createSubscription(subscription, ctx.quotas.subscriptions);
        return { subscriptions: [{ ...presentSubscription(subscription), signing_secret: signingSecret }] };
      },
    );

    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/v1/webhooks/subscriptions',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['subscriptions'],
          summary: 'List subscriptions, newest first',
          querystring: ListQuery,
          response: {
            200: Type.Object({ subscriptions: Type.Array(ShownView), next_cursor: NextCursor }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const q = request.query;
        const page = await ctx.store.listSubscriptions(request.principal.accountId, {
          limit: q.limit ?? 20,
          cursor: q.cursor,
          eventType: q.event_type,
          status: q.status as Subscription['status'] | undefined,
        });
        const ids = page.items.map((s) => s.id);
        const lastOf = await lastDeliveries(ctx.store, request.principal.accountId, ids);
        const circuitOf = await circuitsFor(ctx.store, request.principal.accountId, ids);
        return {
          subscriptions: page.items.map((s) => ({
            ...presentSubscription(s),
            last_delivery: lastOf(s.id),
            circuit: circuitOf(s.id),
          })),
          next_cursor: page.nextCursor,
        };
      },
    );

    const One = Type.Object({ subscriptions: Type.Array(UpdatedView) });

    app.get<{ Params: Static<typeof IdParams> }>(
      '/v1/webhooks/subscriptions/:id',
      {
        config: { scope: 'read' },
        schema: {
          tags: ['subscriptions'],
          summary: 'One subscription',
          params: IdParams,
          response: { 200: Type.Object({ subscriptions: Type.Array(ShownView) }), ...errors(401, 403, 404) },
        },
      },
      async (request) => {
        const accountId = request.principal.accountId;
        const sub = await ctx.store.getSubscription(accountId, request.params.id);
        if (!sub) throw notFound('subscription');
        const lastOf = await lastDeliveries(ctx.store, accountId, [sub.id]);
        const circuitOf = await circuitsFor(ctx.store, accountId, [sub.id]);
        return {
          subscriptions: [{ ...presentSubscription(sub), last_delivery: lastOf(sub.id), circuit: circuitOf(sub.id) }],
        };
      },
    );

    app.patch<{ Params: Static<typeof IdParams>; Body: Static<typeof PatchBody> }>(
      '/v1/webhooks/subscriptions/:id',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary:
            'Change target_url, event_type or event_types, status (active | paused), secret_token, rate_limit_per_second or ordering',
          params: IdParams,
          body: PatchBody,
          response: { 200: One, ...errors(400, 401, 403, 404, 409) },
        },
      },
      async (request) => {
        const body = request.body;
        const eventTypes = eventTypesFrom(body);
        const targetUrl =
          body.target_url === undefined
            ? undefined
            : await checkTargetUrlResolved(body.target_url, 'target_url', ctx.targetPolicy, ctx.resolve);
        const sub = await ctx.store.updateSubscription(
          request.principal.accountId,
          request.params.id,
          {
            targetUrl,
            eventTypes,
            status: body.status as 'active' | 'paused' | undefined,
            rateLimitPerSecond: body.rate_limit_per_second,
            ordering: body.ordering as Subscription['ordering'] | undefined,
            secretTokenSealed:
              body.secret_token === undefined
                ? undefined
                : body.secret_token === null
                  ? null
                  : ctx.secrets.seal(
                      body.secret_token,
                      subscriptionSeal('secret_token', {
                        id: request.params.id,
                        account_id: request.principal.accountId,
                      }),
                    ),
          },
          Date.now(),
        );
        if (!sub) throw notFound('subscription');
        const circuitOf = await circuitsFor(ctx.store, sub.account_id, [sub.id]);
        return { subscriptions: [{ ...presentSubscription(sub), circuit: circuitOf(sub.id) }] };
      },
    );

    app.delete<{ Params: Static<typeof IdParams> }>(
      '/v1/webhooks/subscriptions/:id',
      {
        config: { scope: 'write' },
        schema: {
          tags: ['subscriptions'],
          summary: 'Delete a subscription; deliveries not yet made are cancelled',
          params: IdParams,
          response: { 204: Type.Null(), ...errors(401, 403, 404) },
        },
      },
      async (request, reply) => {
        const deleted = await ctx.store.deleteSubscription(request.principal.accountId, request.params.id, Date.now());
        if (!deleted) throw notFound('subscription');
        return reply.code(204).send();
      },
    );
  };
}
